"""Predicted purchases, churn risk and CLV over a horizon, and an honest backtest of them.

BG/NBD (purchase rhythm and dropout) with Gamma-Gamma spend, fitted on purchase
days. Users who never ordered are outside those models: they get the rates
observed for never-buyers in the backtest window. The backtest refits at
`as_of - horizon` on data up to then and scores against what happened after.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ecomarket_assets.profiles import clv
from ecomarket_assets.profiles.activity import DailyActivity
from ecomarket_assets.profiles.features import until

HORIZON_DAYS = 90
CHURN_BANDS = (0.4, 0.7)  # churn probability below: low, below: medium, else high


@dataclass
class Predictions:
    table: pd.DataFrame  # user_id, predicted_purchases, probability_alive, churn_probability, churn_band, predicted_clv
    params: dict[str, float] = field(default_factory=dict)


def purchase_days(users: pd.DataFrame) -> pd.DataFrame:
    """One row per user and day with an order: the transactions the CLV models see."""
    buying = users[users["orders"] > 0]
    return pd.DataFrame({"user_id": buying["user_id"].to_numpy(),
                         "event_time": pd.to_datetime(buying["date"]).dt.tz_localize("UTC").to_numpy(),
                         "revenue": buying["revenue"].to_numpy()})


def churn_band(probability: pd.Series) -> pd.Series:
    bands = pd.cut(probability, [-np.inf, CHURN_BANDS[0], CHURN_BANDS[1], np.inf], labels=["low", "medium", "high"])
    return bands.astype(object)


def fit_predict(activity: DailyActivity, all_users: pd.Index, as_of: dt.date, horizon: int = HORIZON_DAYS,
                never_buyer_rates: dict[str, float] | None = None) -> Predictions:
    activity = until(activity, as_of)
    end = pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)
    summary = clv.rfm_summary(purchase_days(activity.users), customer_col="user_id", time_col="event_time",
                              value_col="revenue", calibration_end=end, time_unit="D")
    bg = clv.BetaGeoModel().fit(summary["frequency"], summary["recency"], summary["T"])
    f, r, t = summary["frequency"], summary["recency"], summary["T"]
    out = pd.DataFrame(index=summary.index)
    out["predicted_purchases"] = bg.expected_purchases(horizon, f, r, t)
    out["probability_alive"] = bg.probability_alive(f, r, t)
    out["churn_probability"] = bg.probability_no_purchase(horizon, f, r, t)
    repeaters = (f > 0) & (summary["monetary_value"] > 0)
    gg = clv.GammaGammaModel().fit(f[repeaters], summary["monetary_value"][repeaters])
    first_value = activity.users[activity.users["orders"] > 0].groupby("user_id")["revenue"].mean()
    spend = pd.Series(gg.expected_average_value(f, summary["monetary_value"]), index=summary.index)
    out["expected_order_value"] = spend.where(f > 0, first_value.reindex(summary.index))
    out["predicted_clv"] = out["predicted_purchases"] * out["expected_order_value"]
    out = out.reindex(all_users)
    rates = never_buyer_rates or {}
    never = out["predicted_purchases"].isna()
    out.loc[never, "predicted_purchases"] = rates.get("purchases_per_user", np.nan)
    out.loc[never, "churn_probability"] = 1 - rates.get("share_buying", np.nan)
    out.loc[never, "predicted_clv"] = rates.get("clv_per_user", np.nan)
    out["churn_band"] = churn_band(out["churn_probability"])
    out.index.name = "user_id"
    params = {**{f"bgnbd_{k}": float(v) for k, v in bg.params_.items()}, **{f"gamma_gamma_{k}": float(v) for k, v in gg.params_.items()}}
    return Predictions(out.reset_index(), params)


def next_order_date(last_order: pd.Series, days_between: pd.Series, as_of: dt.date) -> pd.Series:
    """Last order + the user's average gap (population median gap for one-time buyers), never in the past."""
    gap = days_between.fillna(days_between.median() if days_between.notna().any() else 30.0)
    expected = pd.to_datetime(last_order) + pd.to_timedelta(gap.round(), unit="D")
    tomorrow = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    return expected.where(expected.isna() | (expected >= tomorrow), tomorrow).dt.date


def never_buyer_rates_from_history(activity: DailyActivity, as_of: dt.date, horizon: int) -> dict[str, float]:
    """Without a backtest window: the daily first-purchase hazard of visitors who had not bought yet."""
    users = until(activity, as_of).users
    first_seen = pd.to_datetime(users.groupby("user_id")["date"].min())
    buying = users[users["orders"] > 0]
    first_order = pd.to_datetime(buying.groupby("user_id")["date"].min()).reindex(first_seen.index)
    end = first_order.fillna(pd.Timestamp(as_of))
    at_risk_days = ((end - first_seen).dt.days + 1).sum()
    hazard = first_order.notna().sum() / max(at_risk_days, 1)
    share = float(1 - np.exp(-hazard * horizon))
    first_value = float(buying.groupby("user_id")["revenue"].first().mean()) if len(buying) else 0.0
    return {"share_buying": share, "purchases_per_user": share, "clv_per_user": share * first_value}


@dataclass
class Backtest:
    metrics: dict[str, float]
    never_buyer_rates: dict[str, float]
    scored: pd.DataFrame  # per user: predictions at the cutoff and what happened after


def backtest(activity: DailyActivity, all_users: pd.Index, as_of: dt.date, horizon: int = HORIZON_DAYS,
             truth_users: pd.DataFrame | None = None) -> Backtest | None:
    """Fit at as_of - horizon, score on the following horizon days. None if there is too little history."""
    days = sorted(activity.users["date"].unique())
    cutoff = as_of - dt.timedelta(days=horizon)
    if not days or dt.date.fromisoformat(days[0]) > cutoff - dt.timedelta(days=28):
        return None
    future = activity.users[(activity.users["date"] > cutoff.isoformat()) & (activity.users["date"] <= as_of.isoformat())]
    actual = future[future["orders"] > 0].groupby("user_id").agg(actual_purchases=("date", "nunique"), actual_revenue=("revenue", "sum"))
    past_buyers = set(activity.users.loc[(activity.users["orders"] > 0) & (activity.users["date"] <= cutoff.isoformat()), "user_id"])
    known = all_users[all_users.isin(set(activity.users.loc[activity.users["date"] <= cutoff.isoformat(), "user_id"]))]
    never = known[~known.isin(past_buyers)]
    never_actual = actual.reindex(never).fillna(0)
    rates = {"share_buying": float((never_actual["actual_purchases"] > 0).mean()) if len(never) else 0.0,
             "purchases_per_user": float(never_actual["actual_purchases"].mean()) if len(never) else 0.0,
             "clv_per_user": float(never_actual["actual_revenue"].mean()) if len(never) else 0.0}
    buyers = pd.Index(sorted(past_buyers))
    predicted = fit_predict(activity, buyers, cutoff, horizon).table.set_index("user_id")
    scored = predicted.join(actual).fillna({"actual_purchases": 0, "actual_revenue": 0.0})
    scored["no_purchase"] = scored["actual_purchases"] == 0
    metrics = _score(scored, activity, cutoff, horizon)
    if truth_users is not None:
        churned = truth_users.set_index("user_id")["churn_date"].reindex(scored.index)
        truly_gone = pd.to_datetime(churned) <= pd.Timestamp(as_of)
        valid = scored["churn_probability"].notna()
        if truly_gone[valid].nunique() == 2:
            metrics["churn_auc_vs_true_churn"] = float(roc_auc_score(truly_gone[valid],
                                                                     scored.loc[valid, "churn_probability"]))
    return Backtest(metrics, rates, scored.reset_index())


def _score(scored: pd.DataFrame, activity: DailyActivity, cutoff: dt.date, horizon: int) -> dict[str, float]:
    history = until(activity, cutoff).users
    buying = history[history["orders"] > 0]
    first = pd.to_datetime(buying.groupby("user_id")["date"].min())
    span = (pd.Timestamp(cutoff) - first).dt.days + 1
    naive_rate = buying.groupby("user_id")["date"].nunique() / span  # same daily rate as before the cutoff
    naive = (naive_rate * horizon).reindex(scored.index).fillna(0)
    pred, act = scored["predicted_purchases"], scored["actual_purchases"]
    # A model that cannot score a user (NaN, e.g. a degenerate small-shop fit) is counted, not silently ranked.
    valid = scored["churn_probability"].notna()
    churners = scored.loc[valid, "no_purchase"]
    metrics = {
        "backtest_cutoff": cutoff.isoformat(),
        "users_scored": int(len(scored)),
        "users_without_churn_prediction": int((~valid).sum()),
        "churn_auc": float(roc_auc_score(churners, scored.loc[valid, "churn_probability"])) if churners.nunique() == 2 else float("nan"),
        "churn_rate_actual": float(scored["no_purchase"].mean()),
        "churn_probability_mean": float(scored["churn_probability"].mean()),
        "purchases_corr": float(np.corrcoef(pred, act)[0, 1]),
        "purchases_mae": float((pred - act).abs().mean()),
        "purchases_mae_naive": float((naive - act).abs().mean()),
        "purchases_total_predicted": float(pred.sum()),
        "purchases_total_actual": float(act.sum()),
        "revenue_total_predicted": float(scored["predicted_clv"].sum()),
        "revenue_total_actual": float(scored["actual_revenue"].sum()),
    }
    return metrics
