"""User features in three layers (basic, behaviour, preference) from daily aggregates.

Everything is computed "as of" a day from `DailyActivity` rows dated on or
before it, so a backtest can rebuild the profile a shop had on any past day.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
from scipy import sparse

from ecomarket_assets.compute import Engine, group_reduce
from ecomarket_assets.profiles.activity import DailyActivity

# Engagement weights by event type: a purchase says more about taste than a view.
WEIGHTS = {"views": 1.0, "carts": 3.0, "purchase_units": 5.0}
HALF_LIFE_DAYS = 30.0
WINDOWS = (7, 30, 90)
PRICE_BANDS = (0.85, 1.15)  # price index below / above: budget / premium


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def until(activity: DailyActivity, as_of: dt.date) -> DailyActivity:
    cutoff = as_of.isoformat()
    return DailyActivity(*(getattr(activity, n)[getattr(activity, n)["date"] <= cutoff] for n in ("interactions", "users", "hours")))


def _age_days(dates: pd.Series, as_of: dt.date) -> pd.Series:
    return (pd.Timestamp(as_of) - pd.to_datetime(dates)).dt.days


def engagement(interactions: pd.DataFrame, as_of: dt.date) -> pd.Series:
    """Recency-weighted engagement of each (user, product, day) row."""
    return raw_engagement(interactions) * np.exp(-np.log(2) * _age_days(interactions["date"], as_of) / HALF_LIFE_DAYS)


# --------------------------------------------------------------------------- the event-heavy part, on any engine


def summarize_activity(interactions, users, hours, catalog: pd.DataFrame, as_of: dt.date) -> dict:
    """Reduce the daily activity tables (pandas or Dask frames) to small per-user tables.

    Everything that grows with events (one row per user, product and day) is summed here, with
    expressions that run unchanged on pandas and on Dask; the feature layers below read only the
    per-user results, so both engines give the same features.
    """
    cutoff = as_of.isoformat()
    interactions = interactions[interactions["date"] <= cutoff]
    users = users[users["date"] <= cutoff]
    hours = hours[hours["date"] <= cutoff]
    age = (pd.Timestamp(as_of) - users["date"].astype("datetime64[ns]")).dt.days
    windows = {f"{k}_{d}d": users[k].where(age < d, 0) for d in WINDOWS for k in ("events", "orders")}
    totals = group_reduce(users.assign(**windows), "user_id", ["events", "sessions", "orders", "revenue", *windows])
    seen = group_reduce(users, "user_id", first_seen=("first_time", "min"), last_seen=("last_time", "max"))
    buying = users[users["orders"] > 0]
    rhythm = group_reduce(buying, "user_id", first_order_date=("date", "min"), last_order_date=("date", "max"),
                          order_days=("date", "count"))
    carted = interactions["carts"] > 0
    counted = interactions.assign(carted_rows=carted.astype("int64"),
                                  abandoned_rows=(carted & (interactions["purchase_units"] == 0)).astype("int64"))
    per_user = group_reduce(counted, "user_id", [*INTERACTION_SUMS, "carted_rows", "abandoned_rows"])
    by_hour = group_reduce(hours, ["user_id", "hour"], "events")
    weekday = users.assign(weekday=users["date"].astype("datetime64[ns]").dt.weekday)
    by_weekday = group_reduce(weekday, ["user_id", "weekday"], "events")
    days_old = (pd.Timestamp(as_of) - interactions["date"].astype("datetime64[ns]")).dt.days
    weight = raw_engagement(interactions) * np.exp(-np.log(2) * days_old / HALF_LIFE_DAYS)
    preference = preference_sums(with_catalog(interactions, weight, catalog))
    return {"totals": totals, "seen": seen, "rhythm": rhythm, "per_user": per_user, "by_hour": by_hour,
            "by_weekday": by_weekday, **preference}


INTERACTION_SUMS = ["views", "carts", "purchase_units", "purchase_value", "return_units", "return_value"]


def raw_engagement(interactions):
    """Views, carts and purchased units weighted by what they say about taste (not yet decayed)."""
    return sum(interactions[col] * w for col, w in WEIGHTS.items())


def with_catalog(rows, weight, catalog: pd.DataFrame):
    """(user_id, product_id) rows as user_id, `weight`, and the product's category, brand and price index.

    Catalog columns are looked up with `map` (row by row, no join), so on Dask the small catalog goes
    to every partition instead of the interactions being shuffled.
    """
    products = catalog.drop_duplicates("product_id").set_index("product_id")
    price_index = products["price"] / products["category"].map(products.groupby("category")["price"].median())
    product = rows["product_id"]
    return rows[["user_id"]].assign(
        weight=weight,
        category=product.map(products["category"]),
        brand=product.map(products["brand"]),
        price_index=product.map(price_index),
    )


def preference_sums(rows) -> dict:
    """Per user: engagement weight by category and by brand, and the weight-averaged price index's parts."""
    by_category = group_reduce(rows, ["user_id", "category"], "weight")
    branded = rows[rows["brand"].notnull() & (rows["weight"] > 0)]  # notnull: the spelling pandas and Dask share
    by_brand = group_reduce(branded, ["user_id", "brand"], "weight")
    priced = rows[rows["price_index"].notnull() & (rows["weight"] > 0)]
    price = group_reduce(priced.assign(weighted_index=priced["price_index"] * priced["weight"]), "user_id",
                         ["weighted_index", "weight"])
    return {"by_category": by_category, "by_brand": by_brand, "price": price}


# --------------------------------------------------------------------------- feature layers from the summary


def basic_layer(seen: pd.DataFrame, customers: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    frame = customers.set_index("user_id")[["country", "signup_time", "email_opt_in", "sms_opt_in", "push_opt_in"]]
    frame = frame.join(seen, how="outer")
    end = pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)
    start = frame["signup_time"].where(frame["signup_time"].notna(), frame["first_seen"])
    start = pd.concat([start, frame["first_seen"]], axis=1).min(axis=1)
    frame["tenure_days"] = ((end - start).dt.total_seconds() / 86_400).round(1)
    for flag in ("email_opt_in", "sms_opt_in", "push_opt_in"):
        frame[flag] = frame[flag].astype("boolean")
    return frame


def behaviour_layer(summary: dict, as_of: dt.date) -> pd.DataFrame:
    per_user = summary["per_user"]
    window_cols = [f"{k}_{d}d" for d in WINDOWS for k in ("events", "orders")]
    totals = summary["totals"]
    frame = totals[["events", "sessions", "orders", "revenue"]].join(per_user[INTERACTION_SUMS], how="outer").fillna(0)
    carted = per_user["carted_rows"]
    frame["cart_abandonment_rate"] = (per_user["abandoned_rows"] / carted.where(carted > 0)).dropna()
    frame["avg_order_value"] = frame["revenue"] / frame["orders"].where(frame["orders"] > 0)
    frame["return_rate"] = (frame["return_units"] / frame["purchase_units"].where(frame["purchase_units"] > 0)).clip(upper=1)
    frame = frame.join(_order_rhythm(summary["rhythm"], as_of))
    frame = frame.join(totals[window_cols])
    frame["preferred_hour"] = _first_max(summary["by_hour"])
    frame["preferred_weekday"] = _first_max(summary["by_weekday"])
    frame[window_cols] = frame[window_cols].fillna(0).astype("int64")
    return frame


def _first_max(counts: pd.Series) -> pd.Series:
    """Per user, the key with the most events (the smallest such key on a tie)."""
    ordered = counts.sort_index()
    return ordered.groupby(level=0).idxmax().map(lambda k: k[1])


def _order_rhythm(rhythm: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    rhythm = rhythm.copy()
    rhythm["first_order_date"] = pd.to_datetime(rhythm["first_order_date"])
    rhythm["last_order_date"] = pd.to_datetime(rhythm["last_order_date"])
    gaps = (rhythm["last_order_date"] - rhythm["first_order_date"]).dt.days
    rhythm["days_between_orders"] = gaps / (rhythm["order_days"] - 1).where(rhythm["order_days"] > 1)
    rhythm["days_since_last_order"] = (pd.Timestamp(as_of) - rhythm["last_order_date"]).dt.days
    return rhythm[["first_order_date", "last_order_date", "order_days", "days_between_orders", "days_since_last_order"]]


def preference_layer(summary: dict) -> pd.DataFrame:
    by_cat = summary["by_category"].unstack("category", fill_value=0.0).sort_index(axis=1)
    affinity = by_cat.div(by_cat.sum(axis=1).where(lambda s: s > 0), axis=0)
    affinity.columns = [f"affinity_{slug(c)}" for c in affinity.columns]
    frame = affinity.copy()
    # ties within 1e-9 (relative) go to the first category by name: a day-by-day fold sums in another order
    scaled = by_cat.div(by_cat.max(axis=1).where(lambda s: s > 0), axis=0).round(9)
    frame["top_category"] = scaled.idxmax(axis=1).where(by_cat.sum(axis=1) > 0)
    frame["favourite_brands"] = _top_brands(summary["by_brand"])
    price = summary["price"]
    frame["price_index"] = price["weighted_index"] / price["weight"]
    frame["price_band"] = pd.cut(frame["price_index"], [-np.inf, PRICE_BANDS[0], PRICE_BANDS[1], np.inf],
                                 labels=["budget", "mid", "premium"]).astype(object)
    return frame


def _top_brands(by_brand: pd.Series, n: int = 3) -> pd.Series:
    """The n brands with the most engagement per user (ties by brand name), '; '-joined."""
    if by_brand.empty:
        return pd.Series(dtype=object)
    scores = by_brand.rename("weight").reset_index()
    # Rounded: the same sums added in another order (another engine) must not reorder equal brands.
    scores = scores.assign(rank_weight=scores["weight"].round(9)).sort_values(
        ["user_id", "rank_weight", "brand"], ascending=[True, False, True], kind="stable")
    return scores.groupby("user_id").head(n).groupby("user_id")["brand"].agg("; ".join)


def user_features(activity: DailyActivity, customers: pd.DataFrame, catalog: pd.DataFrame, as_of: dt.date,
                  engine: Engine | None = None, frames: dict | None = None) -> pd.DataFrame:
    """One row per user (customers and anyone seen in events) as of the end of `as_of`.

    `frames` (interactions, users, hours as Dask frames) with a Dask `engine` reduce on the cluster;
    otherwise `activity` is reduced in this process.
    """
    engine = engine or Engine("local")
    tables = frames if frames is not None else activity.as_dict()
    lazy = summarize_activity(tables["interactions"], tables["users"], tables["hours"], catalog, as_of)
    summary = engine.compute_many(lazy)
    return features_from_summary(summary, customers, as_of)


def features_from_summary(summary: dict, customers: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    frame = basic_layer(summary["seen"], customers, as_of)
    frame = frame.join(behaviour_layer(summary, as_of)).join(preference_layer(summary))
    counts = ["events", "sessions", "orders", "views", "carts", "purchase_units", "return_units"]
    frame[counts] = frame[counts].fillna(0).astype("int64")
    frame[["revenue", "purchase_value", "return_value"]] = frame[["revenue", "purchase_value", "return_value"]].fillna(0.0)
    frame["historic_clv"] = frame["revenue"] - frame["return_value"]
    frame.index.name = "user_id"
    return frame.reset_index().sort_values("user_id", ignore_index=True)


def interest_embeddings(interactions: pd.DataFrame, product_ids: pd.Series, vectors: np.ndarray, as_of: dt.date) -> pd.DataFrame:
    """Each user's interest vector: engagement-weighted mean of the products' text embeddings, unit length."""
    index = pd.Series(np.arange(len(product_ids)), index=pd.Index(product_ids))
    rows = until_rows(interactions, as_of)
    rows = rows.assign(weight=engagement(rows, as_of), row=rows["product_id"].map(index))
    rows = rows[rows["row"].notna() & (rows["weight"] > 0)]
    users, user_idx = np.unique(rows["user_id"].to_numpy(), return_inverse=True)
    # users x products weights (duplicates summed), times the vectors: one sparse product instead of np.add.at
    # over rows x dimensions (3.6 s of a night on Online Retail)
    weights = sparse.csr_matrix((rows["weight"].to_numpy(dtype=np.float64), (user_idx, rows["row"].astype(int).to_numpy())),
                                shape=(len(users), len(product_ids)))
    summed = np.asarray(weights @ np.asarray(vectors, dtype=np.float64))
    summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)
    return pd.DataFrame({"user_id": users, "interest_embedding": list(summed.astype(np.float32))})


def until_rows(frame: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    return frame[frame["date"] <= as_of.isoformat()]
