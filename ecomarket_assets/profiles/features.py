"""User features in three layers (basic, behaviour, preference) from daily aggregates.

Everything is computed "as of" a day from `DailyActivity` rows dated on or
before it, so a backtest can rebuild the profile a shop had on any past day.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

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
    raw = sum(interactions[col] * w for col, w in WEIGHTS.items())
    return raw * np.exp(-np.log(2) * _age_days(interactions["date"], as_of) / HALF_LIFE_DAYS)


def basic_layer(users: pd.DataFrame, customers: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    seen = users.groupby("user_id").agg(first_seen=("first_time", "min"), last_seen=("last_time", "max"))
    frame = customers.set_index("user_id")[["country", "signup_time", "email_opt_in", "sms_opt_in", "push_opt_in"]]
    frame = frame.join(seen, how="outer")
    end = pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)
    start = frame["signup_time"].where(frame["signup_time"].notna(), frame["first_seen"])
    start = pd.concat([start, frame["first_seen"]], axis=1).min(axis=1)
    frame["tenure_days"] = ((end - start).dt.total_seconds() / 86_400).round(1)
    for flag in ("email_opt_in", "sms_opt_in", "push_opt_in"):
        frame[flag] = frame[flag].astype("boolean")
    return frame


def behaviour_layer(activity: DailyActivity, as_of: dt.date) -> pd.DataFrame:
    inter, users, hours = activity.interactions, activity.users, activity.hours
    per_user = inter.groupby("user_id")[["views", "carts", "purchase_units", "purchase_value", "return_units", "return_value"]].sum()
    totals = users.groupby("user_id")[["events", "sessions", "orders", "revenue"]].sum()
    frame = totals.join(per_user, how="outer").fillna(0)
    carted = inter[inter["carts"] > 0]
    frame["cart_abandonment_rate"] = (carted["purchase_units"] == 0).groupby(carted["user_id"]).mean()
    frame["avg_order_value"] = frame["revenue"] / frame["orders"].where(frame["orders"] > 0)
    frame["return_rate"] = (frame["return_units"] / frame["purchase_units"].where(frame["purchase_units"] > 0)).clip(upper=1)
    frame = frame.join(_order_rhythm(users, as_of))
    age = _age_days(users["date"], as_of)
    for days in WINDOWS:
        recent = users[age < days]
        frame[f"events_{days}d"] = recent.groupby("user_id")["events"].sum()
        frame[f"orders_{days}d"] = recent.groupby("user_id")["orders"].sum()
    by_hour = hours.groupby(["user_id", "hour"])["events"].sum()
    frame["preferred_hour"] = by_hour.groupby(level=0).idxmax().map(lambda k: k[1])
    weekday = pd.to_datetime(users["date"]).dt.weekday
    by_weekday = users.assign(weekday=weekday).groupby(["user_id", "weekday"])["events"].sum()
    frame["preferred_weekday"] = by_weekday.groupby(level=0).idxmax().map(lambda k: k[1])
    window_cols = [f"{k}_{d}d" for d in WINDOWS for k in ("events", "orders")]
    frame[window_cols] = frame[window_cols].fillna(0).astype("int64")
    return frame


def _order_rhythm(users: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    buying = users[users["orders"] > 0]
    days = pd.to_datetime(buying["date"])
    rhythm = days.groupby(buying["user_id"]).agg(["min", "max", "nunique"])
    rhythm.columns = ["first_order_date", "last_order_date", "order_days"]
    gaps = (rhythm["last_order_date"] - rhythm["first_order_date"]).dt.days
    rhythm["days_between_orders"] = gaps / (rhythm["order_days"] - 1).where(rhythm["order_days"] > 1)
    rhythm["days_since_last_order"] = (pd.Timestamp(as_of) - rhythm["last_order_date"]).dt.days
    return rhythm


def preference_layer(interactions: pd.DataFrame, catalog: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    products = catalog.set_index("product_id")
    rows = interactions.assign(weight=engagement(interactions, as_of)).join(products[["category", "brand", "price"]], on="product_id")
    by_cat = rows.pivot_table(index="user_id", columns="category", values="weight", aggfunc="sum", fill_value=0.0)
    affinity = by_cat.div(by_cat.sum(axis=1).where(lambda s: s > 0), axis=0)
    affinity.columns = [f"affinity_{slug(c)}" for c in affinity.columns]
    frame = affinity.copy()
    frame["top_category"] = by_cat.idxmax(axis=1).where(by_cat.sum(axis=1) > 0)
    frame["favourite_brands"] = _top_brands(rows)
    category_median = products.groupby("category")["price"].median()
    rows["price_index"] = rows["price"] / rows["category"].map(category_median)
    priced = rows[rows["price_index"].notna() & (rows["weight"] > 0)]
    weighted = (priced["price_index"] * priced["weight"]).groupby(priced["user_id"]).sum()
    frame["price_index"] = weighted / priced.groupby("user_id")["weight"].sum()
    frame["price_band"] = pd.cut(frame["price_index"], [-np.inf, PRICE_BANDS[0], PRICE_BANDS[1], np.inf],
                                 labels=["budget", "mid", "premium"]).astype(object)
    return frame


def _top_brands(rows: pd.DataFrame, n: int = 3) -> pd.Series:
    branded = rows[rows["brand"].notna() & (rows["weight"] > 0)]
    if branded.empty:
        return pd.Series(dtype=object)
    scores = branded.groupby(["user_id", "brand"])["weight"].sum().sort_values(ascending=False)
    return scores.groupby(level=0).head(n).reset_index().groupby("user_id")["brand"].agg("; ".join)


def user_features(activity: DailyActivity, customers: pd.DataFrame, catalog: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """One row per user (customers and anyone seen in events) as of the end of `as_of`."""
    activity = until(activity, as_of)
    frame = basic_layer(activity.users, customers, as_of)
    frame = frame.join(behaviour_layer(activity, as_of)).join(preference_layer(activity.interactions, catalog, as_of))
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
    summed = np.zeros((len(users), vectors.shape[1]), dtype=np.float64)
    np.add.at(summed, user_idx, vectors[rows["row"].astype(int).to_numpy()] * rows["weight"].to_numpy()[:, None])
    summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)
    return pd.DataFrame({"user_id": users, "interest_embedding": list(summed.astype(np.float32))})


def until_rows(frame: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    return frame[frame["date"] <= as_of.isoformat()]
