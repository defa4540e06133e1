"""Churn, purchases and value learned from the shop's own past cutoffs (LightGBM), beside BG/NBD + Gamma-Gamma.

BG/NBD assumes a steady purchase rhythm and a silent dropout; a shop's customers also answer to the season,
to browsing and to how their last orders went. Here each past cutoff `t` (every `step` days, as long as the
`horizon` days after it are known) gives one row per customer who had bought by `t`: features from the days
up to `t`, labels from the days after it. The model trained on those rows predicts at `as_of` with the same
meaning as the BG/NBD columns: P(no purchase in `horizon` days), purchase days and revenue in `horizon` days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

STEP_DAYS = 14
MAX_CUTOFFS = 12
MIN_HISTORY_DAYS = 28
PARAMS = {"learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 40, "feature_fraction": 0.9,
          "lambda_l2": 1.0, "num_threads": 2, "verbose": -1, "seed": 7, "deterministic": True}
ROUNDS = 200
MAX_TRAINING_ROWS = 60_000  # a seeded sample beyond this: CDNOW's 12 cutoffs x 23,570 buyers fit 4x faster
OBJECTIVES = {"label_no_purchase": "binary", "label_purchases": "poisson", "label_revenue": "tweedie"}


def cutoff_features(users: pd.DataFrame, cutoff: dt.date) -> pd.DataFrame:
    """One row per customer with an order by `cutoff`, from the per-user daily table up to it."""
    end = cutoff.isoformat()
    past = users[users["date"] <= end]
    dates = pd.to_datetime(past["date"])
    age = (pd.Timestamp(cutoff) - dates).dt.days
    frame = past.assign(age=age.to_numpy(), bought=(past["orders"] > 0).to_numpy())
    buying = frame[frame["bought"]]
    by_user, by_buyer = frame.groupby("user_id"), buying.groupby("user_id")
    out = pd.DataFrame({
        "days_since_last_order": by_buyer["age"].min(),
        "days_since_first_order": by_buyer["age"].max(),
        "purchase_days": by_buyer["age"].size(),
        "orders": by_buyer["orders"].sum(),
        "revenue": by_buyer["revenue"].sum(),
    })
    out["order_value"] = out["revenue"] / out["orders"]
    out["mean_gap_days"] = ((out["days_since_first_order"] - out["days_since_last_order"])
                            / (out["purchase_days"] - 1).where(out["purchase_days"] > 1))
    for days in (30, 90):
        recent = buying[buying["age"] < days].groupby("user_id")
        out[f"purchase_days_{days}"] = recent["age"].size().reindex(out.index).fillna(0)
        out[f"revenue_{days}"] = recent["revenue"].sum().reindex(out.index).fillna(0.0)
    active = frame[frame["age"] < 30].groupby("user_id")
    out["active_days_30"] = active["age"].size().reindex(out.index).fillna(0)
    out["events_30"] = active["events"].sum().reindex(out.index).fillna(0)
    out["days_since_last_visit"] = by_user["age"].min().reindex(out.index)
    out["days_since_first_visit"] = by_user["age"].max().reindex(out.index)
    out["days_of_history"] = (pd.Timestamp(cutoff) - pd.Timestamp(users["date"].min())).days + 1
    window_start = pd.Timestamp(cutoff) + pd.Timedelta(days=1)
    out["window_month"] = window_start.month  # the target window's season, learnable once a year is stored
    out["window_week_of_year"] = int(window_start.isocalendar().week)
    return out.astype(float)


def labels(users: pd.DataFrame, cutoff: dt.date, horizon: int, index: pd.Index) -> pd.DataFrame:
    """Purchase days and revenue in the `horizon` days after `cutoff`, for the customers in `index`."""
    end = (cutoff + dt.timedelta(days=horizon)).isoformat()
    window = users[(users["date"] > cutoff.isoformat()) & (users["date"] <= end) & (users["orders"] > 0)]
    grouped = window.groupby("user_id")
    out = pd.DataFrame({"label_purchases": grouped["date"].nunique(), "label_revenue": grouped["revenue"].sum()})
    out = out.reindex(index).fillna(0.0)
    out["label_no_purchase"] = (out["label_purchases"] == 0).astype(float)
    return out


def training_cutoffs(users: pd.DataFrame, as_of: dt.date, horizon: int, step: int = STEP_DAYS,
                     limit: int = MAX_CUTOFFS) -> list[dt.date]:
    """Cutoffs whose `horizon` days are all known at `as_of`, newest first, each with enough history before it."""
    first = dt.date.fromisoformat(users["date"].min())
    latest = as_of - dt.timedelta(days=horizon)
    cutoffs = [latest - dt.timedelta(days=step * k) for k in range(limit)]
    return [c for c in cutoffs if (c - first).days + 1 >= MIN_HISTORY_DAYS]


@dataclass
class SupervisedModel:
    boosters: dict  # target -> lgb.Booster
    feature_names: list[str]
    cutoffs: list[dt.date]
    rows: int

    def predict(self, users: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
        """churn_probability, predicted_purchases, predicted_clv per customer with an order by `as_of`."""
        features = cutoff_features(users, as_of)[self.feature_names]
        return pd.DataFrame({
            "churn_probability": self.boosters["label_no_purchase"].predict(features),
            "predicted_purchases": self.boosters["label_purchases"].predict(features),
            "predicted_clv": self.boosters["label_revenue"].predict(features),
        }, index=features.index)


def fit(users: pd.DataFrame, as_of: dt.date, horizon: int) -> SupervisedModel | None:
    """Trained on every usable past cutoff; None when no cutoff has both history and a known future."""
    import lightgbm as lgb

    cutoffs = training_cutoffs(users, as_of, horizon)
    if not cutoffs:
        return None
    parts = []
    for cutoff in cutoffs:
        features = cutoff_features(users, cutoff)
        parts.append(features.join(labels(users, cutoff, horizon, features.index)))
    table = pd.concat(parts, ignore_index=True)
    if len(table) > MAX_TRAINING_ROWS:
        table = table.sample(MAX_TRAINING_ROWS, random_state=PARAMS["seed"])
    names = [c for c in table.columns if c not in OBJECTIVES]
    boosters = {}
    for target, objective in OBJECTIVES.items():
        data = lgb.Dataset(table[names], label=table[target].to_numpy(), free_raw_data=False)
        boosters[target] = lgb.train({**PARAMS, "objective": objective}, data, num_boost_round=ROUNDS)
    return SupervisedModel(boosters, names, cutoffs, len(table))  # rows: those trained on, after any sampling


def score(predicted: pd.DataFrame, actual: pd.DataFrame) -> dict[str, float]:
    """Churn AUC, purchases Spearman and MAE, predicted / real totals; `actual` as `labels` gives it."""
    from sklearn.metrics import roc_auc_score

    joined = predicted.join(actual, how="inner")
    gone = joined["label_no_purchase"].astype(bool)
    purchases, revenue = joined["label_purchases"], joined["label_revenue"]
    return {
        "churn_auc": float(roc_auc_score(gone, joined["churn_probability"])) if gone.nunique() == 2 else float("nan"),
        "purchases_spearman": float(joined["predicted_purchases"].corr(purchases, method="spearman")),
        "purchases_mae": float((joined["predicted_purchases"] - purchases).abs().mean()),
        "purchases_total_ratio": float(joined["predicted_purchases"].sum() / max(purchases.sum(), 1e-9)),
        "revenue_mae": float((joined["predicted_clv"] - revenue).abs().mean()),
        "revenue_total_ratio": float(joined["predicted_clv"].sum() / max(revenue.sum(), 1e-9)),
    }
