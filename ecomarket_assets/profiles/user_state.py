"""The running per-user state behind `user_features`, folded one day a night (see `profiles.state`).

Everything `features.summarize_activity` reduces from all stored days is kept as running sums:
per-user totals with 7/30/90-day windows, first/last seen and ordered, events per hour and weekday,
and per (user, product) interaction sums with a recency-decayed engagement weight. Category, brand
and price index are looked up in the catalog only when features are built, so a catalog change
needs no rebuild: incremental and full give the same features with any catalog.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ecomarket_assets.compute import Engine
from ecomarket_assets.profiles.features import (
    INTERACTION_SUMS,
    WINDOWS,
    features_from_summary,
    preference_sums,
    raw_engagement,
    with_catalog,
)
from ecomarket_assets.profiles.state import RefreshReport, RunningSums, refresh_state

STATE_NAME = "user_activity"  # stored under <data>/state/user_activity/
WINDOW_COLUMNS = [f"{k}_{d}d" for d in WINDOWS for k in ("events", "orders")]


def _user_rows(users):
    buying = users["orders"] > 0
    return users.assign(order_day=buying.astype("int64"), order_date=users["date"].astype("datetime64[ns]").where(buying))


def _weekday_rows(users):
    return users.assign(weekday=users["date"].astype("datetime64[ns]").dt.weekday)


def _hour_rows(hours):
    return hours


def _product_rows(interactions):
    carted = interactions["carts"] > 0
    return interactions.assign(carted_rows=carted.astype("int64"),
                               abandoned_rows=(carted & (interactions["purchase_units"] == 0)).astype("int64"),
                               engagement=raw_engagement(interactions))


USER_PARTS = {
    "users": RunningSums(
        "users", ("user_id",), _user_rows,
        {**{c: ("sum", c) for c in ("events", "sessions", "orders", "revenue")}, "order_days": ("sum", "order_day"),
         "first_seen": ("min", "first_time"), "last_seen": ("max", "last_time"),
         "first_order_date": ("min", "order_date"), "last_order_date": ("max", "order_date")},
        {f"{k}_{d}d": (k, 0, d) for d in WINDOWS for k in ("events", "orders")},
    ),
    "hours": RunningSums("hours", ("user_id", "hour"), _hour_rows, {"events": ("sum", "events")}),
    "weekdays": RunningSums("users", ("user_id", "weekday"), _weekday_rows, {"events": ("sum", "events")}),
    "products": RunningSums(
        "interactions", ("user_id", "product_id"), _product_rows,
        {**{c: ("sum", c) for c in [*INTERACTION_SUMS, "carted_rows", "abandoned_rows"]},
         "weight": ("decayed", "engagement")},
    ),
}


def refresh_user_state(layout, engine: Engine | None = None, full_rebuild: bool = False,
                       as_of: dt.date | None = None) -> tuple[dict[str, pd.DataFrame], RefreshReport]:
    """The user state as of `as_of` (default: the newest stored activity day), folded or rebuilt, and what it did."""
    if as_of is None:
        days = layout.activity_days()
        if not days:
            raise FileNotFoundError("no user_daily_activity partitions: materialize user_daily_activity first")
        as_of = dt.date.fromisoformat(days[-1])
    return refresh_state(layout, STATE_NAME, USER_PARTS, as_of, engine, full_rebuild)


def summary_from_state(state: dict[str, pd.DataFrame], catalog: pd.DataFrame) -> dict:
    """The per-user tables of `features.summarize_activity`, from the state instead of every stored day."""
    users, products = state["users"], state["products"]
    rhythm = users.loc[users["order_days"] > 0, ["first_order_date", "last_order_date", "order_days"]]
    rhythm = rhythm.astype({"first_order_date": "datetime64[ns]", "last_order_date": "datetime64[ns]"})
    per_user = products.groupby(level="user_id")[[*INTERACTION_SUMS, "carted_rows", "abandoned_rows"]].sum()
    pairs = products.reset_index()
    return {
        "totals": users[["events", "sessions", "orders", "revenue", *WINDOW_COLUMNS]],
        "seen": users[["first_seen", "last_seen"]],
        "rhythm": rhythm,
        "per_user": per_user,
        "by_hour": state["hours"]["events"],
        "by_weekday": state["weekdays"]["events"],
        **preference_sums(with_catalog(pairs, pairs["weight"], catalog)),
    }


def features_from_state(state: dict[str, pd.DataFrame], customers: pd.DataFrame, catalog: pd.DataFrame,
                        as_of: dt.date) -> pd.DataFrame:
    """`features.user_features` as of the state's day, from the state."""
    return features_from_summary(summary_from_state(state, catalog), customers, as_of)
