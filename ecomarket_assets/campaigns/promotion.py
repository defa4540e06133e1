"""Scoring campaign_uplift versions on sends neither learned from, for the champion/challenger decision.

Both versions rank the same fresh completed sends; the Qini coefficient of each ranking (incremental
conversions above random targeting, from the randomised control groups) decides.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ecomarket_assets.campaigns.uplift import MIN_SENDS_PER_ARM, UpliftModel, evaluate_targeting
from ecomarket_assets.mlops.promotion import MetricRule, PromotionPolicy

# Qini decides (relative to the champion's, so a 2 % better ranking is needed); the incremental conversions
# when messaging the best-scored 30 % must not drop by more than 5 %.
POLICY = PromotionPolicy(
    primary=MetricRule("qini", higher_is_better=True),
    guards=(MetricRule("incremental_at_30pct", higher_is_better=True, tolerance=0.05),),
    margin=0.02,
    min_holdout_days=1,
)


def fresh_sends(sends: pd.DataFrame, start: dt.date) -> tuple[pd.DataFrame, str]:
    """Completed sends from `start` on, or (empty, why) when either arm is too small to compare rankings."""
    fresh = sends[sends["complete"] & (pd.to_datetime(sends["send_date"]).dt.date >= start)].reset_index(drop=True)
    treated = int((fresh["group"] == "treatment").sum())
    control = len(fresh) - treated
    if min(treated, control) < MIN_SENDS_PER_ARM:
        return fresh.iloc[:0], (f"completed sends from {start} on: {treated} treatment and {control} control; "
                                f"the comparison needs {MIN_SENDS_PER_ARM} per arm")
    return fresh, ""


def score_version(model: UpliftModel, sends: pd.DataFrame) -> dict[str, float]:
    """Qini and incremental conversions at 30 % of one version's ranking of `sends`."""
    uplift = evaluate_targeting(model, sends).summary.set_index("method").loc["uplift"]
    return {"qini": float(uplift["qini"]), "incremental_at_30pct": float(uplift["incremental_at_30pct"]),
            "sends": float(len(sends))}
