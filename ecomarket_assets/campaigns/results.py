"""Campaign outcomes and uplift: treatment against control, with confidence intervals.

A send converts when its recipient places an order in [send_time, send_time +
measurement_days); its revenue is the value of those orders. Control members
get no message, so their purchases are what treatment would have done anyway.
Only sends whose window has closed by the last observed day are measured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95


OUTCOME_COLUMNS = ("outcome_orders", "outcome_revenue", "converted", "complete", "window_end")


def attribute_outcomes(lists: pd.DataFrame, purchases: pd.DataFrame, observed_until: pd.Timestamp) -> pd.DataFrame:
    """Lists plus converted / outcome_orders / outcome_revenue per send, and whether its window is complete.

    `purchases`: canonical purchase events (user_id, event_time, order_id, quantity, unit_price). The outcome
    columns have names of their own: lists carry the profile's `orders` and `revenue` as model features, and an
    outcome written over them would hand the uplift model its own label.
    """
    clash = sorted(set(OUTCOME_COLUMNS) & set(lists.columns))
    if clash:
        raise ValueError(f"lists already have outcome columns {clash}: outcomes would overwrite them")
    sends = lists.reset_index(drop=True).copy()
    sends["window_end"] = sends["send_time"] + pd.to_timedelta(sends["measurement_days"], unit="D")
    sends["complete"] = sends["window_end"] <= observed_until
    buys = purchases[["user_id", "event_time", "order_id"]].assign(
        value=purchases["quantity"].astype("float64") * purchases["unit_price"].astype("float64"))
    joined = sends[["user_id", "send_time", "window_end"]].reset_index().merge(buys, on="user_id")
    inside = joined[(joined["event_time"] >= joined["send_time"]) & (joined["event_time"] < joined["window_end"])]
    per_send = inside.groupby("index").agg(orders=("order_id", "nunique"), revenue=("value", "sum"))
    sends["outcome_orders"] = per_send["orders"].reindex(sends.index).fillna(0).astype("int64")
    sends["outcome_revenue"] = per_send["revenue"].reindex(sends.index).fillna(0.0)
    sends["converted"] = sends["outcome_orders"] > 0
    return sends


def difference_ci(treated: np.ndarray, control: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """Difference of means with a Welch t interval: (difference, low, high, two-sided p-value)."""
    n_t, n_c = len(treated), len(control)
    if n_t < 2 or n_c < 2:
        return float("nan"), float("nan"), float("nan"), float("nan")
    diff = treated.mean() - control.mean()
    var_t, var_c = treated.var(ddof=1) / n_t, control.var(ddof=1) / n_c
    se = np.sqrt(var_t + var_c)
    if se == 0:
        return float(diff), float(diff), float(diff), 1.0 if diff == 0 else 0.0
    df = (var_t + var_c) ** 2 / (var_t**2 / (n_t - 1) + var_c**2 / (n_c - 1)) if var_t + var_c > 0 else n_t + n_c - 2
    t = stats.t.ppf(0.5 + confidence / 2, df)
    p = 2 * stats.t.sf(abs(diff / se), df)
    return float(diff), float(diff - t * se), float(diff + t * se), float(p)


def uplift_table(outcomes: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group: conversion and revenue per recipient by arm, uplift with CI, incremental conversions and revenue."""
    rows = []
    for key, part in outcomes[outcomes["complete"]].groupby(by, sort=True):
        treated, control = part[part["group"] == "treatment"], part[part["group"] == "control"]
        conv, conv_lo, conv_hi, conv_p = difference_ci(treated["converted"].to_numpy(float), control["converted"].to_numpy(float))
        rev, rev_lo, rev_hi, _ = difference_ci(treated["outcome_revenue"].to_numpy(float), control["outcome_revenue"].to_numpy(float))
        n_t = len(treated)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row |= {"treatment": n_t, "control": len(control),
                "conversion_treatment": treated["converted"].mean(), "conversion_control": control["converted"].mean(),
                "uplift": conv, "uplift_low": conv_lo, "uplift_high": conv_hi, "p_value": conv_p,
                "revenue_per_recipient_treatment": treated["outcome_revenue"].mean(),
                "revenue_per_recipient_control": control["outcome_revenue"].mean(),
                "revenue_uplift": rev, "revenue_uplift_low": rev_lo, "revenue_uplift_high": rev_hi,
                "incremental_conversions": conv * n_t, "incremental_revenue": rev * n_t,
                "incremental_revenue_low": rev_lo * n_t, "incremental_revenue_high": rev_hi * n_t,
                "cost": part["cost"].sum()}
        if "true_uplift" in part:
            row |= {"true_uplift": part["true_uplift"].mean(), "true_revenue_uplift": part["true_revenue_uplift"].mean()}
            measurable = not np.isnan(conv_lo)  # NA, not False, when an arm is too small for an interval
            row["true_within_ci"] = bool(conv_lo <= row["true_uplift"] <= conv_hi) if measurable else pd.NA
            row["true_revenue_within_ci"] = bool(rev_lo <= row["true_revenue_uplift"] <= rev_hi) if measurable else pd.NA
        rows.append(row)
    return pd.DataFrame(rows)
