"""A live stream of shop events with known cart truth, and how abandoned carts answer a reminder.

`live_stream(catalog, customers, start, minutes)` plays the next `minutes` of a shop: sessions arrive as a
Poisson process (`sessions_per_minute`) at uniform times; each belongs to a known customer (drawn by a
per-user activity) or, with `new_user_share`, to a new user id seen for the first time (a sign-up, listed in
`LiveStream.signups` with consent flags). A session picks one category by the user's taste and views
1 + Poisson(3) products of it, chosen by popularity x price fit (price-sensitive users prefer the cheaper
products of the category), a few seconds to a minute apart. Each view goes to the cart with a probability
that rises with the user's intent and falls with relative price for price-sensitive users; a session with a
cart buys it (all cart lines, one order) one to eight minutes after its last event with
`sigmoid(-0.9 + 0.8 intent - 0.5 sensitivity log(value / median))`: that purchase is in the stream (the
"bought during the wait" case a cart-reminder flow must exit on); the other carts are abandoned. Sessions
are fitted inside the window (moved earlier, or squeezed when longer than the window), so every event
time lies in [start, start + minutes).

User traits are a pure function of the user id (a stable hash, not the seed), so a user keeps the same
taste, price sensitivity (0.3 / 1.0 / 2.0 for 30 / 45 / 25 % of users, as in shop.py), activity and
intent in every stream; the seed draws sessions, views and outcomes. Product popularity is a stable hash of
the product id too (the canonical catalog carries no popularity).

The true response of an abandoned cart over the response window (default 24 h after the cart):

* without a reminder the user orders the cart with ``p_buy_without = sigmoid(-1.6 + 0.7 intent +
  0.4 log activity)``: engaged, high-intent users come back on their own;
* a reminder shifts the log-odds by ``0.35 + 0.35 (sensitivity - 1) + 0.3 clip(log(value / median cart
  value), -1.5, 1.5) + 0.3 [new user]``: price-sensitive users and big carts respond more (the spirit of
  simulator/campaigns.py), a new user who lost the basket is helped by a reminder; users who would very
  likely come back anyway (``p_buy_without >= 0.45``) and are price-insensitive are put off (-0.4, the
  "sleeping dogs");
* ``true_uplift = p_buy_with_reminder - p_buy_without``, about +8 points on average (see the tests).

`respond(sends, carts, window=...)` draws the orders: a treated send orders with `p_buy_with_reminder`, a
control send with `p_buy_without` (a window other than the stream's converts each probability through a
constant hazard), at a time after the send from that hazard; `unsent=True` also draws orders of the
abandoned carts no send names (not messaged: no consent, suppressed, capped) with `p_buy_without` after the
cart. Orders are the cart's lines at the cart's prices with new ids `RO-<session_id>`.

`python -m ecomarket_assets.simulator.live --collector URL --key KEY --minutes 10 [--speed 1]` posts a
stream to the event collector in real time and writes the cart truth to
`<data>/simulator/live/<start>/carts.parquet` (and the sign-ups beside it). With `--speed S` the stream's
times are squeezed by S around its start (sessions and the waits inside them included), so every event is
stamped with the wall-clock time it is sent: a collector or flow never sees an event from the future, and
the truth file holds the same squeezed times. The response window (hours) is not squeezed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecomarket_assets.schemas import CUSTOMERS, EVENTS, MAX_UNIT_PRICE
from ecomarket_assets.simulator import vocabulary as vocab

RESPONSE_WINDOW = pd.Timedelta(hours=24)
PRICE_SENSITIVITY = np.array([0.3, 1.0, 2.0])  # per price band, as in shop.py
BAND_SHARES = np.array([0.3, 0.45, 0.25])
MEAN_EXTRA_VIEWS = 3.0
CHANNEL_SHARES = (0.5, 0.25, 0.12, 0.05, 0.08)  # vocab.CHANNELS: web, app, email, sms, ads (as in shop.py)
OPT_IN = {"email_opt_in": 0.65, "sms_opt_in": 0.3, "push_opt_in": 0.4}  # new users' consent, as in shop.py

# the true response of an abandoned cart (module docstring)
BASE_WITHOUT = -1.6
INTENT_WITHOUT = 0.7
ACTIVITY_WITHOUT = 0.4
BASE_LIFT = 0.35
PRICE_LIFT = 0.35
VALUE_LIFT = 0.3
NEW_USER_LIFT = 0.3
SLEEPING_DOG_LIFT = -0.4
SLEEPING_DOG_P = 0.45

LINE_COLUMNS = ["product_ids", "quantities", "unit_prices"]  # the cart's lines, aligned lists
CART_COLUMNS = ["user_id", "session_id", "cart_time", *LINE_COLUMNS, "cart_value", "bought_in_session",
                "abandoned", "p_buy_without", "p_buy_with_reminder", "true_uplift", "price_sensitivity",
                "new_user", "response_hours"]


@dataclass
class LiveStream:
    events: pd.DataFrame  # canonical events (schemas.EVENTS), event_time in [start, start + minutes), sorted
    carts: pd.DataFrame  # one row per session with a cart: CART_COLUMNS (the truth; see the module docstring)
    signups: pd.DataFrame  # new users first seen in the stream (schemas.CUSTOMERS), signup_time = first event
    start: pd.Timestamp
    minutes: float


# --------------------------------------------------------------------------- stable per-id traits


def _uniform(ids: pd.Series, salt: int) -> np.ndarray:
    """A uniform draw in (0, 1) per id that depends on the id and the salt only (splitmix64 of a hash)."""
    x = pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15) * np.uint64(salt + 1)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _normal(ids: pd.Series, salt: int) -> np.ndarray:
    u1, u2 = _uniform(ids, salt), _uniform(ids, salt + 1000)
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


def user_traits(user_ids: pd.Series, n_categories: int) -> pd.DataFrame:
    """Stable latent traits per user id: price sensitivity, activity, intent, category taste (n_categories)."""
    ids = pd.Series(user_ids, dtype=object).reset_index(drop=True)
    band = np.searchsorted(np.cumsum(BAND_SHARES), _uniform(ids, 1), side="right").clip(0, 2)
    taste = np.exp(1.3 * np.column_stack([_normal(ids, 10 + c) for c in range(n_categories)]))
    frame = pd.DataFrame({"user_id": ids, "price_sensitivity": PRICE_SENSITIVITY[band],
                          "activity": np.exp(0.8 * _normal(ids, 2)), "intent": _normal(ids, 3)})
    frame["taste"] = list(taste / taste.sum(axis=1, keepdims=True))
    return frame


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# --------------------------------------------------------------------------- the stream


def _products(catalog: pd.DataFrame) -> pd.DataFrame:
    """Listed products sorted by category, with a usable price, popularity and log price vs. the category."""
    frame = catalog.dropna(subset=["product_id"]).drop_duplicates("product_id")
    frame = frame[["product_id", "category", "price"]].copy()
    frame["category"] = frame["category"].fillna("other").astype(str)
    price = pd.to_numeric(frame["price"], errors="coerce")
    price = price.where((price > 0) & (price <= MAX_UNIT_PRICE))
    price = price.fillna(price.groupby(frame["category"]).transform("median")).fillna(price.median())
    frame["price"] = price.fillna(10.0).round(2)
    frame = frame.sort_values(["category", "product_id"], ignore_index=True)
    frame["popularity"] = np.exp(_normal(frame["product_id"], 20))
    frame["rel_price"] = np.log(frame["price"] / frame.groupby("category")["price"].transform("median"))
    return frame


def _fit_in_window(rng: np.random.Generator, span: float, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Session start seconds and a squeeze factor, so each session ends before `span - 1`. A start is drawn
    uniformly over the starts that fit (not clipped to the last one: clipping piled every long session's last
    event, its purchase, on the same second at the window's end)."""
    room = max(span - 1.0, 0.0)
    squeeze = np.where(lengths > room, room / np.maximum(lengths, 1e-9), 1.0)
    starts = rng.random(len(lengths)) * np.maximum(room - lengths * squeeze, 0.0)
    return starts, squeeze


def live_stream(catalog: pd.DataFrame, customers: pd.DataFrame, start: pd.Timestamp, minutes: float, *,
                sessions_per_minute: float = 20.0, new_user_share: float = 0.05, seed: int = 0,
                response_window: pd.Timedelta = RESPONSE_WINDOW) -> LiveStream:
    """The next `minutes` of the shop from `start` (see the module docstring); canonical catalog and customers."""
    if minutes <= 0 or sessions_per_minute < 0 or not 0 <= new_user_share <= 1:
        raise ValueError("minutes > 0, sessions_per_minute >= 0 and 0 <= new_user_share <= 1")
    start = pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else pd.Timestamp(start, tz="UTC")
    start = start.floor("ms")
    tag = f"{start:%Y%m%dT%H%M%S}{start.microsecond // 1000:03d}s{seed}"
    rng = np.random.default_rng(seed)
    products = _products(catalog)
    if products.empty:
        raise ValueError("the catalog lists no product")
    categories = products["category"].unique()
    bounds = np.searchsorted(products["category"].to_numpy(), categories, "left"), \
        np.searchsorted(products["category"].to_numpy(), categories, "right")
    known = customers["user_id"].dropna().astype(str).drop_duplicates().reset_index(drop=True)

    # sessions: who, when, which category, which channel
    n = int(rng.poisson(sessions_per_minute * minutes))
    new = rng.random(n) < (new_user_share if len(known) else 1.0)
    who = np.empty(n, dtype=object)
    if len(known):
        activity = np.exp(0.8 * _normal(known, 2))
        who[~new] = known.to_numpy()[rng.choice(len(known), int((~new).sum()), p=activity / activity.sum())]
    who[new] = [f"LU{tag}-{i:05d}" for i in range(int(new.sum()))]
    traits = user_traits(pd.Series(who), len(categories))
    taste = np.stack(traits["taste"].to_numpy()) if n else np.zeros((0, len(categories)))
    category = (rng.random(n)[:, None] > np.cumsum(taste, axis=1)).sum(axis=1).clip(0, len(categories) - 1)
    channel = rng.choice(len(vocab.CHANNELS), n, p=CHANNEL_SHARES)
    sens, intent = traits["price_sensitivity"].to_numpy(), traits["intent"].to_numpy()

    # views: popularity x price fit inside the session's category
    length = 1 + rng.poisson(MEAN_EXTRA_VIEWS, n)
    sess = np.repeat(np.arange(n), length)
    band = np.searchsorted(PRICE_SENSITIVITY, sens)
    rel = products["rel_price"].to_numpy()
    weight = products["popularity"].to_numpy()[None, :] * np.exp(-PRICE_SENSITIVITY[:, None] * rel[None, :])
    flat = np.concatenate([[0.0], np.cumsum(weight.ravel())])
    row = band[sess] * len(products)
    lo, hi = flat[row + bounds[0][category[sess]]], flat[row + bounds[1][category[sess]]]
    product = np.searchsorted(flat, lo + rng.random(len(sess)) * (hi - lo), side="right") - 1 - row
    product = np.clip(product, bounds[0][category[sess]], bounds[1][category[sess]] - 1)
    gaps = np.where(np.arange(len(sess)) == np.repeat(np.cumsum(length) - length, length), 0.0,
                    5 + rng.exponential(40, len(sess)))
    offset = np.cumsum(gaps) - np.repeat((np.cumsum(gaps))[np.cumsum(length) - length], length)
    views = pd.DataFrame({"session": sess, "product": product, "offset": offset})

    # carts: per view, then one cart line per (session, product)
    p_cart = _sigmoid(-1.9 + 0.5 * intent[sess] - 0.4 * sens[sess] * rel[product])
    carts = views[rng.random(len(views)) < p_cart].drop_duplicates(["session", "product"]).copy()
    carts["offset"] += rng.uniform(5, 30, len(carts))
    carts["quantity"] = 1 + rng.poisson(0.2, len(carts))
    carts["price"] = products["price"].to_numpy()[carts["product"].to_numpy()]
    per_session = carts.assign(value=carts["quantity"] * carts["price"]).groupby("session").agg(
        cart_offset=("offset", "max"), cart_value=("value", "sum"))
    carted = per_session.index.to_numpy()
    value = per_session["cart_value"].to_numpy()
    median_value = float(np.median(value)) if len(value) else 1.0
    log_value = np.log(value / median_value)
    p_now = _sigmoid(-0.9 + 0.8 * intent[carted] - 0.5 * sens[carted] * log_value)
    bought = rng.random(len(carted)) < p_now
    last_view = views.groupby("session")["offset"].max().to_numpy()
    buy_offset = np.maximum(last_view[carted], per_session["cart_offset"].to_numpy()) + rng.uniform(60, 480, len(carted))

    # fit every session (its purchase included) inside the window
    session_end = last_view.copy()
    session_end[carted] = np.maximum(session_end[carted], np.where(bought, buy_offset, per_session["cart_offset"]))
    origin, squeeze = _fit_in_window(rng, minutes * 60.0, session_end)
    purchases = carts[np.isin(carts["session"], carted[bought])].copy()
    purchases["offset"] = pd.Series(buy_offset, index=carted).reindex(purchases["session"]).to_numpy()

    def stamp(frame: pd.DataFrame) -> np.ndarray:
        s = frame["session"].to_numpy()
        return origin[s] + frame["offset"].to_numpy() * squeeze[s]

    parts = []
    for kind, frame in (("view", views), ("cart", carts), ("purchase", purchases)):
        s, p = frame["session"].to_numpy(), frame["product"].to_numpy()
        parts.append(pd.DataFrame({
            "seconds": stamp(frame), "kind_order": ["view", "cart", "purchase"].index(kind),
            "user_id": who[s], "session": s, "event_type": kind, "product_id": products["product_id"].to_numpy()[p],
            "quantity": frame["quantity"].to_numpy() if "quantity" in frame else np.ones(len(frame), dtype=np.int64),
            "unit_price": products["price"].to_numpy()[p],
            "order_id": np.array([f"LO{tag}-{i}" for i in s], dtype=object) if kind == "purchase" else None,
            "channel": np.array(vocab.CHANNELS, dtype=object)[channel[s]],
        }))
    events = pd.concat(parts, ignore_index=True).sort_values(["seconds", "kind_order", "session"], kind="stable",
                                                             ignore_index=True)
    session_ids = np.array([f"LS{tag}-{i:06d}" for i in range(n)], dtype=object)
    event_time = start + pd.to_timedelta(np.round(events["seconds"].to_numpy() * 1e6).astype(np.int64), unit="us")
    canonical = pd.DataFrame({
        "event_id": [f"LE{tag}-{i:07d}" for i in range(len(events))],
        "event_time": pd.Series(event_time).astype("datetime64[us, UTC]"),
        "user_id": events["user_id"].to_numpy(),
        "session_id": session_ids[events["session"].to_numpy()],
        "event_type": events["event_type"].to_numpy(),
        "product_id": events["product_id"].to_numpy(),
        "quantity": events["quantity"].to_numpy().astype(np.int32),
        "unit_price": events["unit_price"].to_numpy().astype(np.float64),
        "order_id": events["order_id"].to_numpy(),
        "channel": events["channel"].to_numpy(),
    })[EVENTS.names]

    # the truth of each cart
    c_sens, c_intent = sens[carted], intent[carted]
    new_user = new[carted]
    activity = traits["activity"].to_numpy()[carted]
    base = BASE_WITHOUT + INTENT_WITHOUT * c_intent + ACTIVITY_WITHOUT * np.log(np.where(new_user, 1.0, activity))
    p_without = _sigmoid(base)
    lift = (BASE_LIFT + PRICE_LIFT * (c_sens - 1) + VALUE_LIFT * np.clip(log_value, -1.5, 1.5)
            + NEW_USER_LIFT * new_user)
    lift = np.where((p_without >= SLEEPING_DOG_P) & (c_sens < 0.5), SLEEPING_DOG_LIFT, lift)
    p_with = _sigmoid(base + lift)
    cart_seconds = origin[carted] + per_session["cart_offset"].to_numpy() * squeeze[carted]
    lines = carts.sort_values(["session", "offset"])
    grouped = lines.groupby("session")
    product_lists = grouped["product"].agg(list).reindex(carted)
    truth = pd.DataFrame({
        "user_id": who[carted].astype(object),
        "session_id": session_ids[carted],
        "cart_time": pd.Series(start + pd.to_timedelta(np.round(cart_seconds * 1e6).astype(np.int64), unit="us"))
        .astype("datetime64[us, UTC]"),
        "product_ids": [list(products["product_id"].to_numpy()[p]) for p in product_lists],
        "quantities": [[int(q) for q in qs] for qs in grouped["quantity"].agg(list).reindex(carted)],
        "unit_prices": [[float(x) for x in xs] for xs in grouped["price"].agg(list).reindex(carted)],
        "cart_value": np.round(value, 2),
        "bought_in_session": bought,
        "abandoned": ~bought,
        "p_buy_without": np.where(bought, np.nan, p_without),
        "p_buy_with_reminder": np.where(bought, np.nan, p_with),
        "true_uplift": np.where(bought, np.nan, p_with - p_without),
        "price_sensitivity": c_sens,
        "new_user": new_user,
        "response_hours": response_window / pd.Timedelta(hours=1),
    })
    truth = truth.sort_values(["cart_time", "session_id"], ignore_index=True)[CART_COLUMNS]
    return LiveStream(canonical, truth, _signups(rng, canonical, who[new]), start, float(minutes))


def _signups(rng: np.random.Generator, events: pd.DataFrame, new_ids: np.ndarray) -> pd.DataFrame:
    ids = pd.unique(pd.Series(new_ids, dtype=object))
    first = events.groupby("user_id")["event_time"].min()
    frame = pd.DataFrame({"user_id": ids, "signup_time": first.reindex(ids).to_numpy(),
                          "country": rng.choice(vocab.COUNTRIES, len(ids), p=vocab.COUNTRY_WEIGHTS)})
    for column, share in OPT_IN.items():
        frame[column] = rng.random(len(ids)) < share
    frame["signup_time"] = pd.Series(frame["signup_time"]).astype("datetime64[us, UTC]")
    return frame[CUSTOMERS.names]


def squeezed(stream: LiveStream, speed: float) -> LiveStream:
    """The stream played `speed` times faster: every time moved towards the start by that factor."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    if speed == 1:
        return stream

    def move(times: pd.Series) -> pd.Series:
        return (stream.start + (times - stream.start) / speed).dt.floor("us").astype("datetime64[us, UTC]")

    return replace(stream, events=stream.events.assign(event_time=move(stream.events["event_time"])),
                   carts=stream.carts.assign(cart_time=move(stream.carts["cart_time"])),
                   signups=stream.signups.assign(signup_time=move(stream.signups["signup_time"])),
                   minutes=stream.minutes / speed)


def event_records(events: pd.DataFrame) -> list[dict[str, Any]]:
    """Canonical events as JSON rows for the collector: ISO 8601 UTC times, null for missing values."""
    frame = events[EVENTS.names].astype(object).where(events[EVENTS.names].notna(), None)
    frame["event_time"] = [t.isoformat() for t in events["event_time"]]
    frame["quantity"] = events["quantity"].astype(int).tolist()
    return frame.to_dict("records")


# --------------------------------------------------------------------------- the response to reminders


def _window_probability(p: np.ndarray, hours: np.ndarray, window: pd.Timedelta) -> tuple[np.ndarray, np.ndarray]:
    """P(order within `window`) and the hazard per second, from P within `hours` under a constant hazard."""
    rate = -np.log1p(-np.clip(p, 0, 1 - 1e-9)) / (hours * 3600.0)
    return -np.expm1(-rate * window.total_seconds()), rate


def respond(sends: pd.DataFrame, carts: pd.DataFrame, *, window: pd.Timedelta = RESPONSE_WINDOW, seed: int = 0,
            unsent: bool = False) -> pd.DataFrame:
    """Orders of abandoned carts in the `window` after each send (canonical purchase events, sorted by time).

    `sends`: user_id, session_id (optional or null: the user's latest abandoned cart before send_time),
    send_time (UTC), group (treatment | control), optional channel (of the treated orders; default email).
    A cart named by several sends answers its first one; a send that names no abandoned cart (or a cart
    bought in its session) draws nothing. `unsent=True` also draws, with `p_buy_without` in the `window` after
    the cart, the abandoned carts no send names.
    """
    rng = np.random.default_rng(seed)
    abandoned = carts[carts["abandoned"]].copy()
    abandoned["cart_time"] = pd.to_datetime(abandoned["cart_time"], utc=True).astype("datetime64[us, UTC]")
    sends = sends.copy()
    sends["send_time"] = pd.to_datetime(sends["send_time"], utc=True).astype("datetime64[us, UTC]")
    if "session_id" not in sends:
        sends["session_id"] = None
    named = sends[sends["session_id"].notna()].merge(abandoned, on=["user_id", "session_id"], how="inner")
    latest = sends[sends["session_id"].isna()].drop(columns=["session_id"]).sort_values("send_time")
    if len(latest):
        pool = abandoned.sort_values("cart_time")
        latest = pd.merge_asof(latest, pool, left_on="send_time", right_on="cart_time", by="user_id",
                               allow_exact_matches=False, direction="backward").dropna(subset=["session_id"])
    matched = pd.concat([named, latest], ignore_index=True).sort_values(["send_time", "session_id"])
    matched = matched.drop_duplicates("session_id", keep="first")
    treated = (matched["group"] == "treatment").to_numpy()
    channel = matched["channel"].fillna("email") if "channel" in matched else pd.Series("email", index=matched.index)
    plan = pd.DataFrame({
        "session_id": matched["session_id"].to_numpy(), "user_id": matched["user_id"].to_numpy(),
        "after": matched["send_time"].to_numpy(),
        "p": np.where(treated, matched["p_buy_with_reminder"], matched["p_buy_without"]),
        "hours": matched["response_hours"].to_numpy(dtype=float),
        "channel": np.where(treated, channel.to_numpy(), "web"),
    })
    if unsent:
        rest = abandoned[~abandoned["session_id"].isin(plan["session_id"])]
        plan = pd.concat([plan, pd.DataFrame({
            "session_id": rest["session_id"].to_numpy(), "user_id": rest["user_id"].to_numpy(),
            "after": rest["cart_time"].to_numpy(), "p": rest["p_buy_without"].to_numpy(),
            "hours": rest["response_hours"].to_numpy(dtype=float), "channel": "web"})], ignore_index=True)
    plan = plan.sort_values("session_id", ignore_index=True)  # draws do not depend on the order of the sends
    p, rate = _window_probability(plan["p"].to_numpy(dtype=float), plan["hours"].to_numpy(), window)
    ordered = rng.random(len(plan)) < p
    # time of the order given one in the window: the constant hazard truncated to the window
    u, span = rng.random(len(plan)), window.total_seconds()
    with np.errstate(divide="ignore", invalid="ignore"):
        wait = np.where(rate * span > 1e-9, -np.log1p(-u * -np.expm1(-rate * span)) / rate, u * span)
    wait = np.clip(wait, 1.0, max(span - 1e-3, 1.0))
    plan = plan.assign(wait=wait)[ordered]
    lines = plan.merge(carts[["session_id", *LINE_COLUMNS]], on="session_id").explode(LINE_COLUMNS)
    order_time = pd.to_datetime(lines["after"], utc=True) + pd.to_timedelta(np.round(lines["wait"] * 1e6), unit="us")
    out = pd.DataFrame({
        "event_id": [f"RE-{s}-{i}" for s, i in zip(lines["session_id"], lines.groupby("session_id").cumcount(),
                                                   strict=True)],
        "event_time": order_time.astype("datetime64[us, UTC]").to_numpy(),
        "user_id": lines["user_id"].to_numpy(),
        "session_id": ("RS-" + lines["session_id"].astype(str)).to_numpy(),
        "event_type": "purchase",
        "product_id": lines["product_ids"].to_numpy(),
        "quantity": lines["quantities"].to_numpy().astype(np.int32),
        "unit_price": lines["unit_prices"].to_numpy().astype(np.float64),
        "order_id": ("RO-" + lines["session_id"].astype(str)).to_numpy(),
        "channel": lines["channel"].to_numpy(),
    })
    out["event_time"] = out["event_time"].astype("datetime64[us, UTC]")
    return out.sort_values(["event_time", "event_id"], ignore_index=True)[EVENTS.names]


# --------------------------------------------------------------------------- the command line: post in real time


def live_folder(data_root: Path, start: pd.Timestamp) -> Path:
    """Where a stream's truth is written: `<data>/simulator/live/<start as 20250605T100000Z>/`."""
    return data_root / "simulator" / "live" / f"{start:%Y%m%dT%H%M%S}Z"


def _shop_tables(data_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored catalog and customers of the data directory, or those of the configured simulated shop."""
    from ecomarket_assets.storage import DataLayout, read_frame

    layout = DataLayout(data_root)
    catalog_path, customers_path = layout.table("catalog"), layout.table("customers")
    if catalog_path.exists() and customers_path.exists():
        return read_frame(catalog_path), read_frame(customers_path)
    from ecomarket_assets.resources import ShopSourceResource
    from ecomarket_assets.settings import plain
    from ecomarket_assets.simulator.shop import simulate

    tables = simulate(plain(ShopSourceResource).sim_config()).tables
    return tables.catalog, tables.customers


def post_batch(http: Any, records: list[dict[str, Any]], batch_id: str, *, give_up_seconds: float = 120.0) -> dict:
    """POST one batch; connection errors and 5xx answers are retried with the same `batch_id` (the collector
    stores a batch id once), backing off up to 5 s, for at most `give_up_seconds`."""
    import httpx

    deadline, pause = time.monotonic() + give_up_seconds, 0.2
    while True:
        try:
            answer = http.post("/v1/events", json={"events": records, "batch_id": batch_id})
            if answer.status_code < 500:
                if answer.status_code not in (201, 422):
                    raise SystemExit(f"collector refused batch {batch_id}: {answer.status_code} {answer.text[:300]}")
                return answer.json()
            problem = f"{answer.status_code} {answer.text[:200]}"
        except httpx.TransportError as error:
            problem = repr(error)
        if time.monotonic() + pause > deadline:
            raise SystemExit(f"batch {batch_id} not delivered after {give_up_seconds:.0f} s: {problem}")
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def play(stream: LiveStream, collector: str, key: str, *, batch_prefix: str, max_batch: int = 5_000,
         log: Any = None) -> dict[str, int]:
    """Post the stream's events when their time comes (their times are wall-clock times), a batch every
    second of whatever is due; returns the counts the collector answered."""
    import httpx

    records = event_records(stream.events)
    epoch = pd.Timestamp(0, tz="UTC")
    due = (stream.events["event_time"] - epoch).dt.total_seconds().to_numpy()  # wall-clock seconds
    totals = {"events": len(records), "batches": 0, "accepted": 0, "quarantined": 0, "duplicate_batches": 0}
    sent, tick = 0, time.monotonic()
    with httpx.Client(base_url=collector.rstrip("/"), headers={"X-API-Key": key}, timeout=30) as http:
        while sent < len(records):
            now = time.time()
            upto = int(np.searchsorted(due, now, side="right"))
            while sent < upto:
                part = records[sent:min(upto, sent + max_batch)]
                answer = post_batch(http, part, f"{batch_prefix}-{totals['batches']:06d}")
                totals["batches"] += 1
                totals["accepted"] += int(answer.get("accepted", 0))
                totals["quarantined"] += int(answer.get("quarantined", 0))
                totals["duplicate_batches"] += bool(answer.get("duplicate"))
                sent += len(part)
                if log:
                    log(f"{pd.Timestamp(now, unit='s', tz='UTC'):%H:%M:%S} sent {sent}/{len(records)} "
                        f"(accepted {totals['accepted']}, quarantined {totals['quarantined']})")
            if sent < len(records):  # the next second, or the next due event when none is due by then
                tick = max(tick + 1.0, time.monotonic() + due[sent] - time.time())
                time.sleep(max(tick - time.monotonic(), 0.0))
    return totals


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m ecomarket_assets.simulator.live",
                                     description="Post a simulated live stream of shop events to the collector.")
    parser.add_argument("--collector", default="http://127.0.0.1:8010", help="the collector's base URL")
    parser.add_argument("--key", required=True, help="the collector API key (X-API-Key)")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of stream")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="play S times faster: times are squeezed, so events keep the wall-clock time they are sent")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sessions-per-minute", type=float, default=20.0)
    parser.add_argument("--new-user-share", type=float, default=0.05)
    parser.add_argument("--data-dir", default="", help="data directory (default: ECOMARKET_DATA_DIR or ./data)")
    parser.add_argument("--quiet", action="store_true", help="no line per batch")
    args = parser.parse_args(argv)
    if args.data_dir:
        from ecomarket_assets.storage import data_path

        root = data_path(args.data_dir)
    else:
        from ecomarket_assets.resources import DataDirResource
        from ecomarket_assets.settings import plain

        root = plain(DataDirResource).layout().root
    catalog, customers = _shop_tables(root)
    start = pd.Timestamp.now(tz="UTC").ceil("s") + pd.Timedelta(seconds=1)
    stream = squeezed(live_stream(catalog, customers, start, args.minutes, seed=args.seed,
                                  sessions_per_minute=args.sessions_per_minute,
                                  new_user_share=args.new_user_share), args.speed)
    from ecomarket_assets.storage import write_frame

    folder = live_folder(root, start)
    write_frame(stream.carts, folder / "carts.parquet")
    write_frame(stream.signups, folder / "signups.parquet", CUSTOMERS)
    abandoned = stream.carts[stream.carts["abandoned"]]
    print(f"stream from {start:%Y-%m-%d %H:%M:%S}Z over {stream.minutes * 60:.0f} s: {len(stream.events)} events, "
          f"{len(stream.carts)} carts ({len(abandoned)} abandoned, mean true uplift "
          f"{abandoned['true_uplift'].mean():+.3f}), {len(stream.signups)} sign-ups; truth in {folder}", flush=True)
    log = None if args.quiet else (lambda line: print(line, flush=True))
    totals = play(stream, args.collector, args.key, batch_prefix=f"live-{start:%Y%m%dT%H%M%S}-s{args.seed}", log=log)
    print(f"done: {totals}", flush=True)
    return {"totals": totals, "folder": folder, "start": start, "stream": stream}


if __name__ == "__main__":
    result = main()
    sys.exit(0 if result["totals"]["accepted"] == result["totals"]["events"] else 1)
