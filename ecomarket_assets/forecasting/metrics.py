"""Accuracy metrics for the daily demand-forecast backtest.

Arrays follow the forecasting convention: actuals and forecasts are (P, H)
(products x forecast days), the history is (P, T) with NaN before a product's
first day. A NaN actual means "not observed" and is ignored together with the
matching forecast; a NaN forecast where the actual is known is a bug upstream
and propagates into the metric instead of being hidden.

Metrics are pooled over all products (WAPE, bias, coverage) so that big sellers
weigh more, which is what stock and revenue care about; MASE is the mean of
per-product scaled errors, so every product counts the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WEEK = 7
METRIC_COLUMNS = [
    "wape_day",
    "mase_day",
    "bias_day",
    "wape_week",
    "mase_week",
    "bias_week",
    "coverage_day",
    "coverage_week",
]


def _pair(actual: np.ndarray, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float arrays plus the mask of observed (non-NaN) actuals; shapes must match."""
    actual = np.asarray(actual, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    if actual.shape != forecast.shape:
        raise ValueError(f"shape mismatch: actual {actual.shape} vs forecast {forecast.shape}")
    return actual, forecast, ~np.isnan(actual)


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error: sum|a - f| / sum a over observed actuals.

    Robust to the many zero-sales days that make MAPE explode. nan when the
    observed actuals sum to 0 (nothing sold, so no scale).
    """
    actual, forecast, observed = _pair(actual, forecast)
    total = actual[observed].sum()
    if total == 0:
        return float("nan")
    return float(np.abs(actual[observed] - forecast[observed]).sum() / total)


def bias(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Signed relative error sum(f - a) / sum a: > 0 over-forecasts (overstock), < 0 under."""
    actual, forecast, observed = _pair(actual, forecast)
    total = actual[observed].sum()
    if total == 0:
        return float("nan")
    return float((forecast[observed] - actual[observed]).sum() / total)


def coverage(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of observed actuals inside [lo, hi] (bounds included); nan without actuals.

    For an 80% interval a well-calibrated model scores about 0.80.
    """
    actual, lo, observed = _pair(actual, lo)
    hi = np.asarray(hi, dtype=float)
    if hi.shape != actual.shape:
        raise ValueError(f"shape mismatch: actual {actual.shape} vs hi {hi.shape}")
    if not observed.any():
        return float("nan")
    a = actual[observed]
    return float(((lo[observed] <= a) & (a <= hi[observed])).mean())


def seasonal_naive_scale(history: np.ndarray, season: int = WEEK) -> np.ndarray:
    """Per product in-sample MAE of the lag-`season` naive forecast, (P,).

    Only pairs (t - season, t) where both days are observed count. nan when a
    product has no such pair (fewer than season + 1 observed days).
    """
    history = np.asarray(history, dtype=float)
    if history.ndim != 2:
        raise ValueError(f"history must be 2-D (products, days), got shape {history.shape}")
    if season < 1:
        raise ValueError(f"season must be >= 1, got {season}")
    diffs = np.abs(history[:, season:] - history[:, :-season])
    valid = ~np.isnan(diffs)
    counts = valid.sum(axis=1)
    sums = np.where(valid, diffs, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(history), np.nan), where=counts > 0)


@dataclass
class MaseResult:
    """MASE with its bookkeeping.

    value: mean of per_product over the products that count (nan if none).
    per_product (P,): horizon MAE / seasonal-naive scale, nan where excluded.
    n_excluded: products dropped for a zero or undefined scale (never sold
    anything that varied week over week, or fewer than season + 1 observed days).
    n_no_actual: products with a usable scale but no observed actual in the
    horizon (nothing to score), also left out of value.
    """

    value: float
    per_product: np.ndarray
    n_excluded: int
    n_no_actual: int


def mase_result(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int = WEEK
) -> MaseResult:
    """Mean absolute scaled error per product, see MaseResult for what is excluded.

    The scale is the product's own in-sample seasonal-naive MAE, so 1.0 means
    "as good as same weekday last week was in the past" and products of very
    different volumes are comparable.
    """
    actual, forecast, observed = _pair(actual, forecast)
    if actual.ndim != 2:
        raise ValueError(f"actual must be 2-D (products, days), got shape {actual.shape}")
    scale = seasonal_naive_scale(history, season)
    if scale.shape[0] != actual.shape[0]:
        raise ValueError(f"history has {scale.shape[0]} products, actual {actual.shape[0]}")
    errors = np.where(observed, np.abs(actual - forecast), 0.0)
    counts = observed.sum(axis=1)
    mae = np.divide(errors.sum(axis=1), counts, out=np.full(len(actual), np.nan), where=counts > 0)
    usable_scale = np.isfinite(scale) & (scale > 0)
    keep = usable_scale & (counts > 0)
    per_product = np.full(len(actual), np.nan)
    per_product[keep] = mae[keep] / scale[keep]
    value = float(per_product[keep].mean()) if keep.any() else float("nan")
    return MaseResult(
        value=value,
        per_product=per_product,
        n_excluded=int((~usable_scale).sum()),
        n_no_actual=int((usable_scale & (counts == 0)).sum()),
    )


def mase(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int = WEEK
) -> float:
    """Mean over products of MASE; use mase_result for per-product values and exclusions."""
    return mase_result(actual, forecast, history, season).value


def weekly(array: np.ndarray) -> np.ndarray:
    """Sum (P, H) daily values per consecutive 7-day block -> (P, H // 7).

    Block k is days 7k .. 7k+6 of the horizon. A block with any NaN day is NaN
    (a partial week is not comparable), so weekly metrics ignore it.
    """
    array = np.asarray(array, dtype=float)
    days = array.shape[-1]
    if days % WEEK:
        raise ValueError(f"the number of days ({days}) must be a multiple of {WEEK}")
    return array.reshape(*array.shape[:-1], days // WEEK, WEEK).sum(axis=-1)


def weekly_history(history: np.ndarray) -> np.ndarray:
    """Sum a (P, T) history in 7-day blocks that END on the last history day.

    The leading T % 7 days (an incomplete block) are dropped; blocks that
    contain a NaN day come out NaN and are skipped by the MASE scale. The blocks
    line up with the forecast weeks, which start the day after the history.
    """
    history = np.asarray(history, dtype=float)
    if history.ndim != 2:
        raise ValueError(f"history must be 2-D (products, days), got shape {history.shape}")
    n_days = history.shape[1]
    return weekly(history[:, n_days % WEEK :])


def evaluate(
    actual: np.ndarray,
    forecast: np.ndarray,
    history: np.ndarray,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
    season: int = WEEK,
    lo_week: np.ndarray | None = None,
    hi_week: np.ndarray | None = None,
) -> dict[str, float]:
    """Day- and week-level WAPE, MASE and bias (plus day and week coverage when lo/hi are given).

    Week level: actual and forecast summed per 7-day block (H must be a multiple
    of 7) and MASE scaled by the last-week naive (season 1) on the weekly-summed
    history (see weekly_history). Pass both lo and hi or neither. `lo_week`/`hi_week`
    (P, H // 7) are the method's own week bounds: coverage_week scores them, and
    coverage_week_summed_days the week sums of the daily bounds (without them,
    coverage_week is that sum).
    """
    if (lo is None) != (hi is None) or (lo_week is None) != (hi_week is None):
        raise ValueError("pass both bounds of a level, or neither")
    if lo_week is not None and lo is None:
        raise ValueError("week bounds need the daily ones")
    actual_week = weekly(actual)
    forecast_week = weekly(forecast)
    history_week = weekly_history(history)
    result = {
        "wape_day": wape(actual, forecast),
        "mase_day": mase(actual, forecast, history, season),
        "bias_day": bias(actual, forecast),
        "wape_week": wape(actual_week, forecast_week),
        "mase_week": mase(actual_week, forecast_week, history_week, season=1),
        "bias_week": bias(actual_week, forecast_week),
    }
    if lo is not None:
        result["coverage_day"] = coverage(actual, lo, hi)
        # Week sums: zero days no longer decide it. Against the summed daily bounds it reads high (a sum of daily
        # P10s lies below the week's own P10, the P90s above, unless days move together), hence own week bounds.
        summed = coverage(actual_week, weekly(lo), weekly(hi))
        result["coverage_week"] = summed if lo_week is None else coverage(actual_week, lo_week, hi_week)
        if lo_week is not None:
            result["coverage_week_summed_days"] = summed
        # Where the misses are: with most product-days at zero and P10 = 0, nothing can fall
        # below, so coverage reads high although the upper bound may be well calibrated.
        known = ~np.isnan(actual)
        result["below_p10_day"] = float((actual[known] < lo[known]).mean()) if known.any() else float("nan")
        result["above_p90_day"] = float((actual[known] > hi[known]).mean()) if known.any() else float("nan")
        result["zero_actual_share"] = float((actual[known] == 0).mean()) if known.any() else float("nan")
    return result


def metrics_table(rows: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per method (index 'method'), metric columns in the evaluate() order.

    coverage_day appears when any method has it (nan for those without);
    unknown metric keys follow in first-seen order. When a row named
    "seasonal_naive" exists, wape_vs_seasonal_naive = wape_day / its wape_day - 1
    (negative = better than the floor).
    """
    present = {key for metrics in rows.values() for key in metrics}
    columns = [c for c in METRIC_COLUMNS if c in present]
    for metrics in rows.values():
        columns += [k for k in metrics if k not in columns]
    table = pd.DataFrame.from_dict(rows, orient="index", dtype=float)
    table = table.reindex(columns=columns)
    table.index.name = "method"
    if "seasonal_naive" in table.index and "wape_day" in table.columns:
        table["wape_vs_seasonal_naive"] = (
            table["wape_day"] / table.loc["seasonal_naive", "wape_day"] - 1
        )
    if "weekday_mean" in table.index and "wape_day" in table.columns:
        table["wape_vs_weekday_mean"] = table["wape_day"] / table.loc["weekday_mean", "wape_day"] - 1
        if "wape_week" in table.columns:
            table["wape_week_vs_weekday_mean"] = table["wape_week"] / table.loc["weekday_mean", "wape_week"] - 1
    return table
