"""Running (user, product) state behind `interactions.user_product_summary`, one per cutoff lag.

A cutoff's history is every day before it, so its state is as of the day before the cutoff. The
cutoffs of a `CutoffPlan` sit at fixed lags behind the newest day (serving: 0, hold-out: one label
window, training: further windows), so each lag keeps its own state under
`<data>/state/user_product/lag=<days>/` and moves one day a night like the user state
(`profiles.state`). Ages are kept as dates and turned into days before the cutoff when read.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ecomarket_assets.compute import Engine
from ecomarket_assets.profiles.features import HALF_LIFE_DAYS, raw_engagement
from ecomarket_assets.profiles.state import RefreshReport, RunningSums, refresh_state
from ecomarket_assets.recommender.interactions import PAIR_REDUCTIONS


def _pair_rows(interactions):
    bought = interactions["purchase_units"] > 0
    day = interactions["date"].astype("datetime64[ns]")
    return interactions.assign(one=1, engagement=raw_engagement(interactions).astype("float64"),
                               bought=bought.astype("int64"), viewed=(interactions["views"] > 0).astype("int64"),
                               day=day, bought_day=day.where(bought))


# Window ages count from the state's day, one less than from the cutoff `user_product_summary` counts from.
PAIRS = RunningSums(
    "interactions", ("user_id", "product_id"), _pair_rows,
    {"rows": ("sum", "one"), "engagement": ("decayed", "engagement"), "purchase_days": ("sum", "bought"),
     "views": ("sum", "views"), "first_day": ("min", "day"), "last_day": ("max", "day"),
     "first_bought_day": ("min", "bought_day"), "last_bought_day": ("max", "bought_day")},
    {"bought_7d": ("bought", 0, 6), "bought_28d": ("bought", 0, 27), "bought_prev_28d": ("bought", 6, 34),
     "bought_90d": ("bought", 0, 90), "viewed_28d": ("viewed", 0, 27)},
)


def pairs_at(state: pd.DataFrame, cutoff: dt.date) -> pd.DataFrame:
    """`user_product_summary(interactions, cutoff)` from the pair state as of the day before `cutoff`."""
    end = pd.Timestamp(cutoff)

    def age(column: str) -> pd.Series:
        return (end - state[column].astype("datetime64[ns]")).dt.days

    out = state.assign(
        engagement=state["engagement"] * np.exp(-np.log(2) / HALF_LIFE_DAYS),
        purchase_days=state["purchase_days"].astype("float64"), views=state["views"].astype("float64"),
        last_seen=age("last_day") + 1, last_bought=(age("last_bought_day") + 1).astype("float64"),
        first_seen=age("first_day"), first_bought=age("first_bought_day").astype("float64"),
    )
    return out[list(PAIR_REDUCTIONS)]


def state_name(lag: int) -> str:
    return f"user_product/lag={lag}"


def refresh_pair_state(layout, cutoff: dt.date, engine: Engine | None = None, full_rebuild: bool = False,
                       last_day: dt.date | None = None) -> tuple[pd.DataFrame, RefreshReport]:
    """The (user, product) summary at `cutoff` from the state of its lag behind `last_day` (default: newest day)."""
    if last_day is None:
        last_day = dt.date.fromisoformat(layout.activity_days()[-1])
    as_of = cutoff - dt.timedelta(days=1)
    state, report = refresh_state(layout, state_name((last_day - as_of).days), {"pairs": PAIRS}, as_of, engine,
                                  full_rebuild)
    return pairs_at(state["pairs"], cutoff), report
