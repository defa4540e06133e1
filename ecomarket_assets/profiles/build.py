"""Assemble the user portrait: features + RFM + predictions + next-order date (+ interest embedding)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from ecomarket_assets.profiles import predictive
from ecomarket_assets.profiles.activity import DailyActivity
from ecomarket_assets.profiles.rfm import rfm_table


@dataclass
class Portrait:
    profiles: pd.DataFrame
    backtest: predictive.Backtest | None
    params: dict[str, float]


def build_profiles(features: pd.DataFrame, activity: DailyActivity, as_of: dt.date,
                   horizon: int = predictive.HORIZON_DAYS, truth_users: pd.DataFrame | None = None) -> Portrait:
    users = pd.Index(features["user_id"])
    frame = features.set_index("user_id")
    frame = frame.join(rfm_table(frame["days_since_last_order"], frame["orders"], frame["revenue"]))
    evaluation = predictive.backtest(activity, users, as_of, horizon, truth_users)
    rates = evaluation.never_buyer_rates if evaluation else predictive.never_buyer_rates_from_history(activity, as_of, horizon)
    predictions = predictive.fit_predict(activity, users, as_of, horizon, rates)
    frame = frame.join(predictions.table.set_index("user_id"))
    frame["expected_next_order_date"] = predictive.next_order_date(frame["last_order_date"], frame["days_between_orders"], as_of)
    frame.insert(0, "as_of", as_of)
    return Portrait(frame.reset_index(), evaluation, predictions.params)
