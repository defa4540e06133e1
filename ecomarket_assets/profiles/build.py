"""Assemble the user portrait: features + RFM + predictions + next-order date (+ interest embedding).

The prediction columns come from BG/NBD + Gamma-Gamma or the supervised model, per column, as `selection` chose
on the shop's validation window, with calibrated totals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ecomarket_assets.profiles import predictive, selection
from ecomarket_assets.profiles.activity import DailyActivity
from ecomarket_assets.profiles.rfm import rfm_table


@dataclass
class Portrait:
    profiles: pd.DataFrame
    backtest: predictive.Backtest | None
    params: dict[str, float]
    selection: selection.Selection
    models_made: dt.date


@dataclass
class Predicted:
    table: pd.DataFrame  # user_id, the prediction columns of `predictive.fit_predict`, as served
    backtest: predictive.Backtest | None
    params: dict[str, float]
    selection: selection.Selection
    models_made: dt.date  # when the choice and the serving model were made (earlier than as_of on a reused night)


def predict(activity: DailyActivity, users: pd.Index, as_of: dt.date, horizon: int = predictive.HORIZON_DAYS,
            truth_users: pd.DataFrame | None = None, kept: Path | None = None, refit: bool = False) -> Predicted:
    """Churn, purchases and value for `users` as `user_profiles` serves them (the benchmarks score this too).

    `kept`: a folder where the model choice and the serving model are kept between nights (`selection.save`);
    they are reused while younger than `selection.REFIT_DAYS` (unless `refit`), then chosen and fitted again."""
    evaluation = predictive.backtest(activity, users, as_of, horizon, truth_users)
    rates = evaluation.never_buyer_rates if evaluation else predictive.never_buyer_rates_from_history(activity, as_of, horizon)
    predictions = predictive.fit_predict(activity, users, as_of, horizon, rates)
    reused = selection.load(kept, as_of) if kept is not None and not refit else None
    if reused is not None:
        chosen, model, made = reused
    else:
        chosen = (selection.choose(evaluation.scored, activity.users, as_of - dt.timedelta(days=horizon), horizon)
                  if evaluation else selection.Selection(note="BG/NBD everywhere: too little history for a validation window"))
        model, made = selection.fit_serving(chosen, activity.users, as_of, horizon), as_of
        if kept is not None:
            selection.save(kept, chosen, model, as_of)
    table = selection.apply(predictions.table, chosen, model, activity.users, as_of)
    table["churn_band"] = predictive.churn_band(table["churn_probability"])
    return Predicted(table, evaluation, predictions.params, chosen, made)


def build_profiles(features: pd.DataFrame, activity: DailyActivity, as_of: dt.date,
                   horizon: int = predictive.HORIZON_DAYS, truth_users: pd.DataFrame | None = None,
                   kept: Path | None = None, refit: bool = False) -> Portrait:
    users = pd.Index(features["user_id"])
    frame = features.set_index("user_id")
    frame = frame.join(rfm_table(frame["days_since_last_order"], frame["orders"], frame["revenue"]))
    predicted = predict(activity, users, as_of, horizon, truth_users, kept, refit)
    frame = frame.join(predicted.table.set_index("user_id"))
    frame["expected_next_order_date"] = predictive.next_order_date(frame["last_order_date"], frame["days_between_orders"], as_of)
    frame.insert(0, "as_of", as_of)
    return Portrait(frame.reset_index(), predicted.backtest, predicted.params, predicted.selection,
                    predicted.models_made)
