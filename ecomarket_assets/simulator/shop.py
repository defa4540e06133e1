"""A seeded, vectorised shop simulator with known ground truth.

Generative story (all NumPy, no loop per event):

* Users belong to a latent persona (taste vector + category mix) and a price
  band (price sensitivity); each has a personal category preference drawn
  around the persona's, an activity rate, a sign-up day and a churn day.
* Sessions are Poisson processes per (user, category) whose rate is
  activity x preference x weekly/yearly seasonality x category season, while
  the user is active (signed up and not churned).
* Each session views 1 + Poisson(3) products of its category, chosen with
  probability proportional to popularity x trend x launch x promotion x
  taste fit x price fit; a view becomes a cart and a cart a purchase with
  probabilities that depend on quality, promotion and stock.
* Purchases are returned at a category rate; some are reviewed with a star
  rating driven by quality, and text that agrees with the stars.

Because product choice depends on the user only through (persona, price band),
the expected units per product-day are computed exactly and written as the
ground-truth demand rate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets.schemas import CATALOG, CUSTOMERS, REVIEWS
from ecomarket_assets.simulator import vocabulary as vocab
from ecomarket_assets.simulator.shift import MarketShift, apply_shift
from ecomarket_assets.source_tables import SourceTables

N_PERSONAS = 6
PRICE_SENSITIVITY = np.array([0.3, 1.0, 2.0])  # per price band: low, medium, high
MEAN_EXTRA_VIEWS = 3.0  # session length = 1 + Poisson(3)
TASTE_WEIGHT = 0.7
WEEKDAY_FACTOR = np.array([1.05, 1.0, 0.97, 1.0, 0.92, 0.95, 1.11])  # Mon..Sun
DEFAULT_START = dt.date(2025, 6, 5)  # 180 days to 2025-12-01: summer sale, Black Friday, churn hold-out


@dataclass(frozen=True)
class SimConfig:
    n_users: int = 3_000
    n_products: int = 400
    n_days: int = 180
    start_date: dt.date = DEFAULT_START
    seed: int = 7
    new_user_share: float = 0.3
    mean_sessions_per_week: float = 1.4
    mean_lifetime_days: float = 240.0
    # Real trackers misfire: this share of events is sent twice, and as many name a delisted product.
    glitch_share: float = 0.0005
    # A market shift from this day on (see simulator/shift.py); -1 = none.
    shift_day: int = -1
    shift_price_factor: float = 1.3

    @property
    def end_date(self) -> dt.date:
        """Last simulated day (inclusive)."""
        return self.start_date + dt.timedelta(days=self.n_days - 1)

    def fingerprint(self) -> str:
        values = asdict(self) | {"start_date": self.start_date.isoformat(), "version": SIMULATOR_VERSION}
        if self.shift_day < 0:  # unshifted shops keep the fingerprint (and staging) they had before shifts existed
            values = {k: v for k, v in values.items() if not k.startswith("shift_")}
        return "-".join(f"{k}={values[k]}" for k in sorted(values))


SIMULATOR_VERSION = 1


@dataclass
class SimulatedShop:
    tables: SourceTables
    truth: dict[str, pd.DataFrame] = field(default_factory=dict)


# --------------------------------------------------------------------------- calendar


def _days(cfg: SimConfig) -> pd.DatetimeIndex:
    return pd.date_range(cfg.start_date, periods=cfg.n_days, freq="D", tz="UTC")


def site_sale_events(years: list[int]) -> list[tuple[str, pd.Timestamp, int, float, float]]:
    """The shop's announced site-wide sales: (name, first day, days, discount, traffic boost).

    Public because a shop knows its own sales calendar in advance: the demand
    forecast reads it as a known-future feature.
    """
    events = []
    for year in years:
        nov = pd.date_range(f"{year}-11-01", f"{year}-11-30", tz="UTC")
        events.append(("black_friday_to_cyber_monday", nov[nov.weekday == 4][3], 4, 0.2, 1.8))
        events.append(("summer_sale", pd.Timestamp(f"{year}-07-01", tz="UTC"), 7, 0.15, 1.3))
    return events


def _site_sales(days: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Site-wide discount and traffic boost: Black Friday to Cyber Monday, a summer sale."""
    discount = np.zeros(len(days))
    traffic = np.ones(len(days))
    for _, start, n, off, boost in site_sale_events(sorted(set(days.year))):
        window = (days >= start) & (days < start + pd.Timedelta(days=n))
        discount[window] = off
        traffic[window] = boost
    return discount, traffic


def _seasonality(days: pd.DatetimeIndex, site_traffic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global daily factor (weekday, yearly, sales) and per-category monthly season (C x D)."""
    doy = days.dayofyear.to_numpy()
    yearly = 1 + 0.2 * np.cos(2 * np.pi * (doy - 355) / 365.25)
    overall = WEEKDAY_FACTOR[days.weekday.to_numpy()] * yearly * site_traffic
    month_pos = days.month.to_numpy() - 1 + (days.day.to_numpy() - 1) / days.days_in_month.to_numpy()
    by_category = []
    for spec in vocab.CATEGORIES:
        season = np.array(spec.monthly_season) / np.mean(spec.monthly_season)
        ring = np.append(season, season[0])  # interpolate smoothly across months, wrapping Dec -> Jan
        by_category.append(np.interp(month_pos, np.arange(13), ring))
    return overall, np.array(by_category)


def _windows(rng: np.random.Generator, n_items: int, n_days: int, rate_per_day: float, min_len: int, max_len: int) -> np.ndarray:
    """Boolean item x day mask of random windows (promotions, stock-outs)."""
    mask = np.zeros((n_items, n_days), dtype=bool)
    counts = rng.poisson(rate_per_day * n_days, n_items)
    items = np.repeat(np.arange(n_items), counts)
    starts = rng.integers(0, n_days, len(items))
    lengths = rng.integers(min_len, max_len + 1, len(items))
    for offset in range(max_len):  # loop over window length, not events
        live = offset < lengths
        day = starts[live] + offset
        ok = day < n_days
        mask[items[live][ok], day[ok]] = True
    return mask


# --------------------------------------------------------------------------- catalog


def _make_catalog(rng: np.random.Generator, cfg: SimConfig) -> pd.DataFrame:
    specs = vocab.CATEGORIES
    shares = np.array([s.share for s in specs])
    n = cfg.n_products
    category = np.concatenate([np.arange(len(specs)), rng.choice(len(specs), n - len(specs), p=shares / shares.sum())])
    category.sort()  # products grouped by category: each category is a contiguous slice
    rows = []
    tier = rng.choice(3, n, p=[0.35, 0.45, 0.2])
    for i in range(n):  # one loop per product (hundreds), not per event
        spec = specs[category[i]]
        noun = rng.choice(list(spec.nouns))
        modifier = rng.choice(spec.modifiers)
        adjective = rng.choice(vocab.ADJECTIVES)
        brand = spec.brands[tier[i]]
        features = rng.choice(spec.features, 2, replace=False)
        use = rng.choice(spec.uses)
        title = f"{brand} {adjective.capitalize()} {modifier.title()} {noun.title()}"
        description = f"A {adjective} {modifier} {noun} by {brand}. {features[0]} {features[1]} Perfect for {use}."
        base = spec.nouns[noun] * vocab.BRAND_TIER_MULTIPLIER[tier[i]] * rng.lognormal(0, 0.15)
        price = max(np.floor(base) + 0.99, 1.99)
        rows.append((title, description, spec.name, brand, price, noun))
    frame = pd.DataFrame(rows, columns=["title", "description", "category", "brand", "price", "noun"])
    frame.insert(0, "product_id", [f"P{i:05d}" for i in range(n)])
    frame["category_idx"] = category
    frame["tier"] = tier
    frame["quality"] = rng.normal(0, 1, n) + 0.35 * (tier - 1)
    frame["popularity"] = rng.lognormal(0, 1.0, n) * np.exp(0.25 * frame["quality"])
    frame["trend_per_year"] = rng.normal(0, 0.8, n)
    launched_before = rng.random(n) < 0.85
    frame["launch_day"] = np.where(launched_before, -rng.integers(1, 720, n), rng.integers(0, cfg.n_days, n))
    frame["consumable"] = [specs[c].consumable for c in category]
    return frame


# --------------------------------------------------------------------------- users


def _make_users(rng: np.random.Generator, cfg: SimConfig) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    n, n_cat = cfg.n_users, len(vocab.CATEGORIES)
    persona_mix = rng.dirichlet(np.full(n_cat, 0.6), N_PERSONAS)
    persona_taste = rng.normal(0, 1, (N_PERSONAS, 3))
    persona = rng.integers(0, N_PERSONAS, n)
    band = rng.choice(3, n, p=[0.3, 0.45, 0.25])
    pref = rng.gamma(6 * persona_mix[persona] + 0.05)  # Dirichlet around the persona's mix
    pref /= pref.sum(axis=1, keepdims=True)
    new = rng.random(n) < cfg.new_user_share
    signup_day = np.where(new, rng.uniform(0, cfg.n_days, n), -rng.uniform(1, 900, n))
    active_from = np.ceil(np.maximum(signup_day, 0)).astype(int)
    churn_day = np.maximum(signup_day, 0) + rng.exponential(cfg.mean_lifetime_days, n)
    users = pd.DataFrame(
        {
            "user_id": [f"U{i:07d}" for i in range(n)],
            "persona": persona,
            "price_band": band,
            "price_sensitivity": PRICE_SENSITIVITY[band],
            "activity_per_day": rng.gamma(0.9, cfg.mean_sessions_per_week / 7 / 0.9, n),
            "preferred_hour": np.round(np.clip(rng.normal(19, 3.5, n), 0, 23.99), 2),
            "signup_day": signup_day,
            "active_from_day": active_from,
            "churn_day": np.floor(churn_day).astype(int),
            "country": rng.choice(vocab.COUNTRIES, n, p=vocab.COUNTRY_WEIGHTS),
            "email_opt_in": rng.random(n) < 0.65,
            "sms_opt_in": rng.random(n) < 0.3,
            "push_opt_in": rng.random(n) < 0.4,
        }
    )
    return users, pref, persona_taste


# --------------------------------------------------------------------------- per product-day world


@dataclass
class _World:
    price: np.ndarray  # P x D price paid that day
    promo: np.ndarray  # P x D bool
    in_stock: np.ndarray  # P x D bool
    choice_weight: np.ndarray  # G x D x P unnormalised choice weight
    p_cart: np.ndarray  # bands x D x P
    p_buy: np.ndarray  # D x P (0 when out of stock)
    mean_qty: np.ndarray  # P


def _make_world(rng: np.random.Generator, cfg: SimConfig, catalog: pd.DataFrame, persona_taste: np.ndarray, site_discount: np.ndarray) -> _World:
    n_p, n_d = len(catalog), cfg.n_days
    promo = _windows(rng, n_p, n_d, 1 / 45, 4, 10)
    depth = rng.uniform(0.1, 0.3, n_p)[:, None]
    discount = np.maximum(np.where(promo, depth, 0.0), site_discount[None, :])
    price = catalog["price"].to_numpy()[:, None] * (1 - discount)
    in_stock = ~_windows(rng, n_p, n_d, 1 / 150, 2, 9)
    day = np.arange(n_d)[None, :]
    launched = day >= catalog["launch_day"].to_numpy()[:, None]
    fresh = 1 + 0.6 * ((day - catalog["launch_day"].to_numpy()[:, None]) < 21)
    trend = np.exp(catalog["trend_per_year"].to_numpy()[:, None] * (day - n_d / 2) / 365)
    base = catalog["popularity"].to_numpy()[:, None] * trend * launched * fresh * np.where(discount > 0, 1.5, 1.0)

    style = rng.normal(0, 1, (n_p, 3))
    catalog["style_0"], catalog["style_1"], catalog["style_2"] = style.T
    cat_median = catalog.groupby("category_idx")["price"].transform("median").to_numpy()
    rel_price = np.log(price / cat_median[:, None])  # P x D
    taste = np.exp(TASTE_WEIGHT * persona_taste @ style.T)  # personas x P
    sens = PRICE_SENSITIVITY
    weights = np.empty((N_PERSONAS * 3, n_d, n_p))
    for persona in range(N_PERSONAS):
        for band in range(3):
            price_fit = np.exp(-sens[band] * rel_price)  # P x D
            weights[persona * 3 + band] = (base * price_fit * taste[persona][:, None]).T
    quality = catalog["quality"].to_numpy()[:, None]
    p_cart = np.stack([(_sigmoid(-2.3 + 0.3 * quality + 0.7 * (discount > 0) - 0.4 * s * rel_price)).T for s in sens])
    p_buy = (_sigmoid(-0.1 + 0.3 * quality + 0.4 * (discount > 0)) * in_stock).T
    mean_qty = 1 + np.where(catalog["consumable"], 0.8, 0.15)
    return _World(price, promo | (site_discount[None, :] > 0), in_stock, weights, p_cart, p_buy, mean_qty)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# --------------------------------------------------------------------------- sessions and events


def _category_bounds(catalog: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    idx = catalog["category_idx"].to_numpy()
    cats = np.arange(len(vocab.CATEGORIES))
    return np.searchsorted(idx, cats, "left"), np.searchsorted(idx, cats, "right")


def _sessions(rng: np.random.Generator, cfg: SimConfig, users: pd.DataFrame, pref: np.ndarray, day_rate: np.ndarray) -> pd.DataFrame:
    """Session start (user, category, day) drawn from per-(user, category) Poisson processes."""
    cum = np.concatenate([np.zeros((day_rate.shape[0], 1)), np.cumsum(day_rate, axis=1)], axis=1)  # C x (D+1)
    lo_day = np.clip(users["active_from_day"].to_numpy(), 0, cfg.n_days)
    hi_day = np.clip(users["churn_day"].to_numpy(), 0, cfg.n_days)
    hi_day = np.maximum(hi_day, lo_day)
    lo, hi = cum[:, lo_day].T, cum[:, hi_day].T  # U x C
    counts = rng.poisson(users["activity_per_day"].to_numpy()[:, None] * pref * (hi - lo))
    user_idx, cat_idx = np.nonzero(counts)
    reps = counts[user_idx, cat_idx]
    user_idx, cat_idx = np.repeat(user_idx, reps), np.repeat(cat_idx, reps)
    x = lo[user_idx, cat_idx] + rng.random(len(user_idx)) * (hi[user_idx, cat_idx] - lo[user_idx, cat_idx])
    day = np.empty(len(x), dtype=np.int64)
    for c in range(cum.shape[0]):
        sel = cat_idx == c
        day[sel] = np.searchsorted(cum[c], x[sel], side="right") - 1
    day = np.clip(day, 0, cfg.n_days - 1)
    hour = (users["preferred_hour"].to_numpy()[user_idx] + rng.normal(0, 2.5, len(x))) % 24
    start = day * 86_400 + (hour * 3600).astype(np.int64)
    order = np.lexsort((start, user_idx))
    return pd.DataFrame({"user": user_idx[order], "category": cat_idx[order], "day": day[order], "start_s": start[order]})


def _views(rng: np.random.Generator, sessions: pd.DataFrame, users: pd.DataFrame, world: _World, bounds: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    n_groups, n_days, n_p = world.choice_weight.shape
    length = 1 + rng.poisson(MEAN_EXTRA_VIEWS, len(sessions))
    sess = np.repeat(np.arange(len(sessions)), length)
    position = np.arange(len(sess)) - np.repeat(np.cumsum(length) - length, length)
    user = sessions["user"].to_numpy()[sess]
    group = (users["persona"].to_numpy() * 3 + users["price_band"].to_numpy())[user]
    day = sessions["day"].to_numpy()[sess]
    cat = sessions["category"].to_numpy()[sess]
    flat = np.concatenate([[0.0], np.cumsum(world.choice_weight.ravel())])
    row = (group * n_days + day) * n_p
    lo, hi = flat[row + bounds[0][cat]], flat[row + bounds[1][cat]]
    x = lo + rng.random(len(sess)) * (hi - lo)
    product = np.searchsorted(flat, x, side="right") - 1 - row
    product = np.clip(product, bounds[0][cat], bounds[1][cat] - 1)
    gaps = rng.exponential(70, len(sess)).astype(np.int64) + 5
    offset = _within_group_cumsum(gaps, length)
    return pd.DataFrame(
        {"session": sess, "position": position, "user": user, "group": group, "day": day, "product": product,
         "time_s": sessions["start_s"].to_numpy()[sess] + offset}
    )


def _within_group_cumsum(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    total = np.cumsum(values)
    starts = np.cumsum(lengths) - lengths
    before = np.repeat(total[starts] - values[starts], lengths)
    return total - before


def _funnel(rng: np.random.Generator, views: pd.DataFrame, users: pd.DataFrame, world: _World, catalog: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    band = users["price_band"].to_numpy()[views["user"].to_numpy()]
    day, product = views["day"].to_numpy(), views["product"].to_numpy()
    carted = rng.random(len(views)) < world.p_cart[band, day, product]
    carts = views[carted]
    bought = rng.random(len(carts)) < world.p_buy[carts["day"].to_numpy(), carts["product"].to_numpy()]
    purchases = carts[bought].copy()
    extra = np.where(catalog["consumable"].to_numpy()[purchases["product"].to_numpy()], 0.8, 0.15)
    purchases["quantity"] = 1 + rng.poisson(extra)
    # one order line per product: a product bought twice in a session is one line with both units
    units = purchases.groupby(["session", "product"], sort=False)["quantity"].transform("sum")
    purchases = purchases.assign(quantity=units).drop_duplicates(["session", "product"], keep="first")
    return carts, purchases


def _after_purchase(rng: np.random.Generator, cfg: SimConfig, purchases: pd.DataFrame, catalog: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns and reviews: both happen days after the purchase and only inside the window."""
    product = purchases["product"].to_numpy()
    quality = catalog["quality"].to_numpy()[product]
    rate = np.array([vocab.CATEGORIES[c].return_rate for c in catalog["category_idx"].to_numpy()])[product]
    returned = rng.random(len(purchases)) < rate * np.where(quality < -1, 2.0, 1.0)
    horizon = cfg.n_days * 86_400
    returns = purchases[returned].copy()
    returns["time_s"] = returns["time_s"] + rng.integers(3, 22, len(returns)) * 86_400 + rng.integers(0, 36_000, len(returns))
    returns = returns[returns["time_s"] < horizon]
    review_prob = np.where(returned, 0.35, 0.08)
    reviewed = rng.random(len(purchases)) < review_prob
    reviews = purchases[reviewed].copy()
    reviews["returned"] = returned[reviewed]
    stars = np.round(3.7 + 0.9 * quality[reviewed] - 1.8 * reviews["returned"] + rng.normal(0, 0.8, reviewed.sum()))
    reviews["rating"] = np.clip(stars, 1, 5).astype(np.int8)
    reviews["time_s"] = reviews["time_s"] + rng.integers(2, 21, len(reviews)) * 86_400 + rng.integers(0, 36_000, len(reviews))
    reviews = reviews[reviews["time_s"] < horizon]
    return returns, reviews


def _review_text(rng: np.random.Generator, reviews: pd.DataFrame, catalog: pd.DataFrame) -> list[str]:
    nouns = catalog["noun"].to_numpy()[reviews["product"].to_numpy()]
    picks = rng.random(len(reviews))
    texts = []
    for rating, noun, pick in zip(reviews["rating"].to_numpy(), nouns, picks, strict=True):  # one per review
        templates = vocab.REVIEW_TEMPLATES[int(rating)]
        texts.append(templates[int(pick * len(templates))].format(noun=noun))
    return texts


# --------------------------------------------------------------------------- assembling tables


def _ids(prefix: str, numbers: np.ndarray) -> np.ndarray:
    """Fast 'prefix + number' strings via Arrow (C++), as a NumPy object array."""
    import pyarrow.compute as pc

    text = pc.cast(pa.array(numbers, type=pa.int64()), pa.string())
    return pc.binary_join_element_wise(prefix, text, "").to_numpy(zero_copy_only=False)


def _event_frame(kind: str, frame: pd.DataFrame, cfg: SimConfig, world: _World,
                 channel: np.ndarray | None, order: bool, session: bool) -> pd.DataFrame:
    day = np.clip(frame["time_s"].to_numpy() // 86_400, 0, cfg.n_days - 1)
    product = frame["product"].to_numpy()
    n = len(frame)
    return pd.DataFrame(
        {
            "time_s": frame["time_s"].to_numpy(),
            "user": frame["user"].to_numpy(),
            "session": frame["session"].to_numpy() if session else np.full(n, -1),
            "event_type": kind,
            "product": product,
            "quantity": frame["quantity"].to_numpy() if "quantity" in frame else np.ones(n, dtype=np.int64),
            "unit_price": np.full(n, np.nan) if kind == "review" else np.round(world.price[product, day], 2),
            "order": frame["session"].to_numpy() if order else np.full(n, -1),
            "channel_idx": channel if channel is not None else np.full(n, -1),
        }
    )


def simulate(cfg: SimConfig = SimConfig()) -> SimulatedShop:
    """Generate a whole shop: canonical tables plus ground truth."""
    rng = np.random.default_rng(cfg.seed)
    days = _days(cfg)
    site_discount, site_traffic = _site_sales(days)
    overall, by_category = _seasonality(days, site_traffic)
    day_rate = overall[None, :] * by_category  # C x D
    catalog = _make_catalog(rng, cfg)
    users, pref, persona_taste = _make_users(rng, cfg)
    world = _make_world(rng, cfg, catalog, persona_taste, site_discount)
    bounds = _category_bounds(catalog)

    sessions = _sessions(rng, cfg, users, pref, day_rate)
    session_channel = rng.choice(len(vocab.CHANNELS), len(sessions), p=[0.5, 0.25, 0.12, 0.05, 0.08])
    views = _views(rng, sessions, users, world, bounds)
    carts, purchases = _funnel(rng, views, users, world, catalog)
    carts = carts.assign(time_s=carts["time_s"] + 20)
    session_end = views.groupby("session")["time_s"].max()
    purchases = purchases.assign(time_s=session_end.reindex(purchases["session"]).to_numpy() + 60)
    returns, reviewed = _after_purchase(rng, cfg, purchases, catalog)

    parts = [
        _event_frame("view", views, cfg, world, session_channel[views["session"].to_numpy()], False, True),
        _event_frame("cart", carts, cfg, world, session_channel[carts["session"].to_numpy()], False, True),
        _event_frame("purchase", purchases, cfg, world, session_channel[purchases["session"].to_numpy()], True, True),
        _event_frame("return", returns, cfg, world, None, True, False),
        _event_frame("review", reviewed.assign(quantity=1), cfg, world, None, False, False),
    ]
    events = pd.concat(parts, ignore_index=True)
    events = events[events["time_s"] < cfg.n_days * 86_400]  # the window closes at midnight of its last day
    events = events.sort_values("time_s", kind="stable", ignore_index=True)
    canonical, glitches = _tracker_glitches(rng, _canonical_events(events, cfg, users, catalog), cfg.glitch_share)
    listed = catalog[CATALOG.names].copy()
    if cfg.shift_day >= 0:
        canonical, listed = apply_shift(canonical, listed, cfg.start_date, MarketShift(cfg.shift_day, cfg.shift_price_factor))
    tables = SourceTables(
        events=canonical,
        catalog=listed,
        customers=_customers(users, cfg),
        reviews=_reviews(reviewed, rng, cfg, users, catalog),
        notes={"simulator": cfg.fingerprint(), "sessions": len(sessions), **glitches},
    )
    truth = _truth(cfg, users, pref, catalog, world, day_rate, days)
    return SimulatedShop(tables=tables, truth=truth)


def _timestamps(cfg: SimConfig, seconds: np.ndarray) -> pd.Series:
    origin = pd.Timestamp(cfg.start_date, tz="UTC")
    return pd.Series(origin + pd.to_timedelta(seconds, unit="s")).astype("datetime64[us, UTC]")


def _canonical_events(events: pd.DataFrame, cfg: SimConfig, users: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    channel = np.array((*vocab.CHANNELS, None), dtype=object)[events["channel_idx"].to_numpy()]
    session, order = events["session"].to_numpy(), events["order"].to_numpy()
    session_ids = np.where(session >= 0, _ids("S", session), None)
    order_ids = np.where(order >= 0, _ids("O", order), None)
    frame = pd.DataFrame(
        {
            "event_id": _ids("E", np.arange(len(events))),
            "event_time": _timestamps(cfg, events["time_s"].to_numpy()),
            "user_id": users["user_id"].to_numpy()[events["user"].to_numpy()],
            "session_id": session_ids,
            "event_type": events["event_type"].to_numpy(),
            "product_id": catalog["product_id"].to_numpy()[events["product"].to_numpy()],
            "quantity": events["quantity"].to_numpy().astype(np.int32),
            "unit_price": events["unit_price"].to_numpy(),
            "order_id": order_ids,
            "channel": channel,
        }
    )
    return frame


def _tracker_glitches(rng: np.random.Generator, events: pd.DataFrame, share: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """Double-fired events (same event_id) and events naming a delisted product, for ingestion to catch."""
    n = int(round(len(events) * share))
    if n == 0:
        return events, {"double_fired_events": 0, "delisted_product_events": 0}
    doubled = events.iloc[np.sort(rng.choice(len(events), n, replace=False))]
    delisted = rng.choice(len(events), n, replace=False)
    events = events.copy()
    events.loc[delisted, "product_id"] = "DELISTED-" + events.loc[delisted, "product_id"].astype(str)
    merged = pd.concat([events, doubled], ignore_index=True).sort_values("event_time", kind="stable", ignore_index=True)
    return merged, {"double_fired_events": n, "delisted_product_events": n}


def _customers(users: pd.DataFrame, cfg: SimConfig) -> pd.DataFrame:
    frame = users[["user_id", "country", "email_opt_in", "sms_opt_in", "push_opt_in"]].copy()
    frame.insert(1, "signup_time", _timestamps(cfg, (users["signup_day"].to_numpy() * 86_400).astype(np.int64)))
    return frame[CUSTOMERS.names]


def _reviews(reviewed: pd.DataFrame, rng: np.random.Generator, cfg: SimConfig, users: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    reviewed = reviewed.sort_values("time_s", kind="stable")
    return pd.DataFrame(
        {
            "review_id": _ids("R", np.arange(len(reviewed))),
            "review_time": _timestamps(cfg, reviewed["time_s"].to_numpy()).to_numpy(),
            "user_id": users["user_id"].to_numpy()[reviewed["user"].to_numpy()],
            "product_id": catalog["product_id"].to_numpy()[reviewed["product"].to_numpy()],
            "rating": reviewed["rating"].to_numpy().astype(np.int8),
            "text": _review_text(rng, reviewed, catalog),
        }
    )[REVIEWS.names]


# --------------------------------------------------------------------------- ground truth


def _truth(cfg: SimConfig, users: pd.DataFrame, pref: np.ndarray, catalog: pd.DataFrame, world: _World,
           day_rate: np.ndarray, days: pd.DatetimeIndex) -> dict[str, pd.DataFrame]:
    n_groups, n_d, n_p = world.choice_weight.shape
    n_cat = pref.shape[1]
    group = users["persona"].to_numpy() * 3 + users["price_band"].to_numpy()
    lo = np.clip(users["active_from_day"].to_numpy(), 0, n_d)
    hi = np.maximum(np.clip(users["churn_day"].to_numpy(), 0, n_d), lo)
    # Expected sessions per (group, category, day): activity x preference while active.
    weight = users["activity_per_day"].to_numpy()[:, None] * pref  # U x C
    diff = np.zeros((n_groups, n_cat, n_d + 1))
    for c in range(n_cat):
        np.add.at(diff[:, c, :], (group, lo), weight[:, c])
        np.add.at(diff[:, c, :], (group, hi), -weight[:, c])
    active_mass = np.cumsum(diff, axis=2)[:, :, :n_d] * day_rate[None, :, :]  # G x C x D
    expected_views = active_mass * (1 + MEAN_EXTRA_VIEWS)
    starts, ends = _category_bounds(catalog)
    cat_of = catalog["category_idx"].to_numpy()
    choice = np.zeros_like(world.choice_weight)
    for c in range(n_cat):
        block = world.choice_weight[:, :, starts[c]:ends[c]]
        total = block.sum(axis=2, keepdims=True)
        choice[:, :, starts[c]:ends[c]] = np.divide(block, total, out=np.zeros_like(block), where=total > 0)
    band_of_group = np.arange(n_groups) % 3
    conversion = world.p_cart[band_of_group] * world.p_buy[None, :, :]  # G x D x P
    views_gdp = np.transpose(expected_views, (0, 2, 1))[:, :, cat_of]  # G x D x P
    units = (views_gdp * choice * conversion).sum(axis=0) * world.mean_qty[None, :]  # D x P
    demand = pd.DataFrame(
        {
            "date": np.repeat(days.date, n_p),
            "product_id": np.tile(catalog["product_id"].to_numpy(), n_d),
            "expected_units": units.ravel(),
            "price": world.price.T.ravel(),
            "promo": world.promo.T.ravel(),
            "in_stock": world.in_stock.T.ravel(),
        }
    )
    time_avg_choice = (choice * views_gdp).sum(axis=1) / np.maximum(views_gdp.sum(axis=1), 1e-12)  # G x P
    product_choice = pd.DataFrame(
        {
            "persona": np.repeat(np.arange(n_groups) // 3, n_p),
            "price_band": np.repeat(band_of_group, n_p),
            "product_id": np.tile(catalog["product_id"].to_numpy(), n_groups),
            "choice_prob": time_avg_choice.ravel(),
        }
    )
    origin = pd.Timestamp(cfg.start_date)
    truth_users = users[["user_id", "persona", "price_band", "price_sensitivity", "activity_per_day", "preferred_hour"]].copy()
    truth_users["signup_date"] = (origin + pd.to_timedelta(np.floor(users["signup_day"]), unit="D")).dt.date
    truth_users["churn_date"] = (origin + pd.to_timedelta(users["churn_day"], unit="D")).dt.date
    categories = [s.name for s in vocab.CATEGORIES]
    preferences = pd.DataFrame(
        {"user_id": np.repeat(users["user_id"].to_numpy(), n_cat), "category": np.tile(categories, len(users)), "preference": pref.ravel()}
    )
    products = catalog[["product_id", "category", "quality", "popularity", "trend_per_year", "launch_day", "consumable",
                        "style_0", "style_1", "style_2"]].copy()
    return {
        "demand": demand,
        "users": truth_users,
        "user_category_preferences": preferences,
        "product_choice": product_choice,
        "products": products,
    }


AFFINITY_TRUTH = ("users", "user_category_preferences", "product_choice", "products")  # tables it reads


def true_product_affinity(truth: dict[str, pd.DataFrame], user_ids: list[str] | None = None) -> pd.DataFrame:
    """P(user picks product | a session) = preference for its category x group choice probability."""
    users = truth["users"] if user_ids is None else truth["users"][truth["users"]["user_id"].isin(user_ids)]
    prefs = truth["user_category_preferences"].merge(users[["user_id", "persona", "price_band"]], on="user_id")
    choice = truth["product_choice"].merge(truth["products"][["product_id", "category"]], on="product_id")
    merged = prefs.merge(choice, on=["persona", "price_band", "category"])
    merged["affinity"] = merged["preference"] * merged["choice_prob"]
    return merged[["user_id", "product_id", "affinity"]]
