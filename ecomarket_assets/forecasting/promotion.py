"""Scoring demand-model versions on the same fresh hold-out, for the champion/challenger decision."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ecomarket_assets.forecasting import metrics
from ecomarket_assets.forecasting import training as tr
from ecomarket_assets.forecasting.features import HORIZON
from ecomarket_assets.forecasting.model import DemandModel
from ecomarket_assets.forecasting.panel import SalesPanel
from ecomarket_assets.mlops.promotion import MetricRule, PromotionPolicy

# WAPE decides; the weekly WAPE, the bias and the P10-P90 interval must not get worse by more than these.
POLICY = PromotionPolicy(
    primary=MetricRule("wape", higher_is_better=False),
    guards=(MetricRule("wape_week", higher_is_better=False, tolerance=0.02),
            MetricRule("abs_bias", higher_is_better=False, tolerance=0.05, absolute=True),
            MetricRule("coverage_gap", higher_is_better=False, tolerance=0.05, absolute=True)),
    margin=0.01,
)
NOMINAL_COVERAGE = 0.8


def holdout_window(panel: SalesPanel, first_day: dt.date, horizon: int = HORIZON) -> tuple[int, int]:
    """(origin index, horizon): forecast from the day before `first_day` over the days the panel has after it."""
    days = pd.DatetimeIndex(panel.days).tz_localize(None).normalize()
    origin = int(days.searchsorted(pd.Timestamp(first_day))) - 1
    if origin < 0:
        raise ValueError(f"hold-out starts {first_day}, before the panel's first day {days[0].date()}")
    return origin, min(horizon, len(days) - 1 - origin)


def score_version(panel: SalesPanel, model: DemandModel, origin: int, horizon: int) -> dict[str, float]:
    """Hold-out metrics of one version; its own embedding basis builds its features."""
    fold = tr.fold_data(panel, origin, model.basis, horizon=horizon)
    predicted = model.predict(fold.features)
    shape = fold.actual.shape
    forecast = predicted["forecast"].to_numpy().reshape(shape)
    weeks = horizon // 7
    weekly = (lambda a: a[:, : weeks * 7].reshape(shape[0], weeks, 7).sum(axis=2)) if weeks else (lambda a: a)
    coverage = metrics.coverage(fold.actual, predicted["p10"].to_numpy().reshape(shape),
                                predicted["p90"].to_numpy().reshape(shape))
    return {
        "wape": metrics.wape(fold.actual, forecast),
        "wape_week": metrics.wape(weekly(fold.actual), weekly(forecast)),
        "abs_bias": abs(metrics.bias(fold.actual, forecast)),
        "coverage_gap": abs(coverage - NOMINAL_COVERAGE),
        "products": float(shape[0]),
        "units": float(np.nansum(fold.actual)),
    }
