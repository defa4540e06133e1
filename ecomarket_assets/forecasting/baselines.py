"""Baseline demand forecasts that every learned model must beat in the backtest.

All functions read a history of shape (P, T): P products x T consecutive days of
units sold, a real 0 on zero-sales days and NaN before a product's first day (so a
row is a NaN prefix followed by numbers; a cold product has only a few numbers and
a product that never appeared is all NaN). They return forecasts of shape (P, H)
for the H days after the last history day (day indexes T .. T+H-1).

The baselines are deliberately simple and deterministic: their job is to give the
backtest a floor ("same weekday last week", "recent average") and a classical
statistical reference (AutoETS) with prediction intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def _check_history(history: np.ndarray, horizon: int) -> np.ndarray:
    """Return the history as a 2-D float array; fail early on shape mistakes."""
    history = np.asarray(history, dtype=float)
    if history.ndim != 2:
        raise ValueError(f"history must be 2-D (products, days), got shape {history.shape}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    return history


def _observed_mean(history: np.ndarray) -> np.ndarray:
    """Mean over each product's observed days, 0 for a product never observed.

    Used as the fallback whenever a baseline has no value to copy: the product's
    own level is a better guess than 0, and 0 is the only guess without data.
    """
    observed = ~np.isnan(history)
    counts = observed.sum(axis=1)
    sums = np.where(observed, history, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.zeros(len(history)), where=counts > 0)


def seasonal_naive(history: np.ndarray, horizon: int, season: int = 7) -> np.ndarray:
    """Same weekday last week: day T+h copies history[:, T - season + (h % season)].

    With season=7 this is the classic retail floor: it already knows the weekly
    pattern and the current level, so a model that loses to it learned nothing.
    A copied day that is NaN (product not yet observed then, or T < season) falls
    back to the product's mean over its observed days, and to 0 for a product
    that was never observed.
    """
    history = _check_history(history, horizon)
    if season < 1:
        raise ValueError(f"season must be >= 1, got {season}")
    n_products, n_days = history.shape
    source = n_days - season + (np.arange(horizon) % season)
    values = np.full((n_products, horizon), np.nan)
    valid = source >= 0
    values[:, valid] = history[:, source[valid]]
    fallback = np.broadcast_to(_observed_mean(history)[:, None], values.shape)
    return np.where(np.isnan(values), fallback, values)


def _last_observed_mask(history: np.ndarray, window: int) -> np.ndarray:
    """Mask of each product's last `window` observed (non-NaN) days."""
    observed = ~np.isnan(history)
    # Count observed days from the end: 1 on the last observed day, 2 on the one before...
    from_end = np.cumsum(observed[:, ::-1], axis=1)[:, ::-1]
    return observed & (from_end <= window)


def moving_average(history: np.ndarray, horizon: int, window: int = 28) -> np.ndarray:
    """Flat forecast at the mean of each product's last `window` observed days.

    The recent level without any weekly shape: the floor for products whose
    weekday pattern is noise. NaN days are skipped (a cold product averages the
    days it has); a product never observed gets 0.
    """
    history = _check_history(history, horizon)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    recent = _last_observed_mask(history, window)
    counts = recent.sum(axis=1)
    sums = np.where(recent, history, 0.0).sum(axis=1)
    level = np.divide(sums, counts, out=np.zeros(len(history)), where=counts > 0)
    return np.repeat(level[:, None], horizon, axis=1)


def weekday_mean(history: np.ndarray, horizon: int, weeks: int = 8) -> np.ndarray:
    """Mean of the same weekday over the last `weeks` weeks: day T+h gets the mean of days T-7k+(h % 7), k=1..weeks.

    The rule a shop's planner uses, and on Online Retail the hardest simple rival (the weekly shape of
    seasonal naive without its one-week noise). NaN days are skipped; a weekday with no observed day in the
    window falls back to the product's mean over its observed days, and to 0 for a product never observed.
    """
    history = _check_history(history, horizon)
    if weeks < 1:
        raise ValueError(f"weeks must be >= 1, got {weeks}")
    n_products, n_days = history.shape
    span = 7 * weeks
    recent = np.full((n_products, span), np.nan)
    take = min(span, n_days)
    if take:
        recent[:, span - take:] = history[:, n_days - take:]
    by_weekday = recent.reshape(n_products, weeks, 7)  # column c: the weekday of day T - 7 + c
    counts = (~np.isnan(by_weekday)).sum(axis=1)
    sums = np.nansum(by_weekday, axis=1)
    fallback = np.broadcast_to(_observed_mean(history)[:, None], counts.shape)
    pattern = np.where(counts > 0, sums / np.maximum(counts, 1), fallback)
    return pattern[:, np.arange(horizon) % 7]


@dataclass
class EtsForecast:
    """AutoETS point forecasts and central prediction intervals, all (P, H), clipped at 0.

    fallback (P,) is True for products where ETS did not run (fewer than
    2 * season observed days, or the fit failed / returned non-finite values);
    those rows hold the moving average with empirical-residual intervals instead.
    """

    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    fallback: np.ndarray
    level: float


def _fallback_forecast(
    history: np.ndarray, horizon: int, window: int, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moving average with intervals from the empirical quantiles of its residuals.

    Residuals are the last `window` observed days minus their mean, so the band
    is the spread of recent daily sales around the flat forecast: e.g. the
    10%..90% quantiles for level=80. One observed day gives lo = hi = mean and
    a never-observed product gets 0, 0, 0. Computed per row (only used for the
    few products ETS cannot take).
    """
    flat = moving_average(history, 1, window=window)[:, 0]
    recent = _last_observed_mask(history, window)
    alpha = (1.0 - level / 100.0) / 2.0
    lo_level = flat.copy()
    hi_level = flat.copy()
    for row in np.flatnonzero(recent.any(axis=1)):
        residuals = history[row, recent[row]] - flat[row]
        lo_offset, hi_offset = np.quantile(residuals, [alpha, 1.0 - alpha])
        lo_level[row] += lo_offset
        hi_level[row] += hi_offset

    def grid(values: np.ndarray) -> np.ndarray:
        return np.repeat(values[:, None], horizon, axis=1)

    return grid(flat), grid(lo_level), grid(hi_level)


def _long_frame(history: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    """(unique_id, ds, y) frame: each selected row from its first observed day to T-1.

    unique_id is the row index and ds the day index, so the output maps straight
    back to the (P, H) grid. Interior NaNs break the data convention and are
    filled with 0 (a day without sales) so that every series ends on day T-1.
    """
    observed = ~np.isnan(history[rows])
    first = observed.argmax(axis=1)
    n_days = history.shape[1]
    lengths = n_days - first
    unique_id = np.repeat(rows, lengths)
    starts = np.repeat(first - np.cumsum(lengths) + lengths, lengths)
    ds = np.arange(lengths.sum()) + starts
    y = np.nan_to_num(history[unique_id, ds], nan=0.0)
    return pd.DataFrame({"unique_id": unique_id, "ds": ds, "y": y})


def _run_statsforecast(
    frame: pd.DataFrame, horizon: int, season: int, level: float, model: str, n_jobs: int
) -> pd.DataFrame:
    """One batched StatsForecast call for all series (imported lazily: ~3 s import)."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    forecaster = StatsForecast(
        models=[AutoETS(season_length=season, model=model, alias="ets")], freq=1, n_jobs=n_jobs
    )
    # statsforecast names the interval columns after the level: ask for 80, not 80.0.
    level_arg = int(level) if float(level).is_integer() else level
    # AutoETS tries models with as many parameters as points on short series; their
    # zero-dof variance divides by zero and the model is discarded, which is fine.
    with np.errstate(divide="ignore", invalid="ignore"):
        return forecaster.forecast(df=frame, h=horizon, level=[level_arg])


def _ets_block(
    history: np.ndarray,
    rows: np.ndarray,
    horizon: int,
    season: int,
    level: float,
    model: str,
    n_jobs: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ETS mean/lo/hi (len(rows), H) for the given rows plus a per-row 'failed' flag.

    The whole batch goes through one StatsForecast call; if that raises (one bad
    series fails the batch), each series is retried alone so that only the
    failing ones are flagged.
    """
    frame = _long_frame(history, rows)
    try:
        outputs = [_run_statsforecast(frame, horizon, season, level, model, n_jobs)]
    except Exception:
        outputs = []
        for row in rows:
            try:
                single = frame[frame["unique_id"] == row]
                outputs.append(_run_statsforecast(single, horizon, season, level, model, 1))
            except Exception:
                continue
    shape = (len(rows), horizon)
    mean, lo, hi = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    position = pd.Series(np.arange(len(rows)), index=rows)
    for out in outputs:
        out = out.reset_index() if "unique_id" not in out.columns else out
        lo_col = next(c for c in out.columns if "-lo-" in c)
        hi_col = next(c for c in out.columns if "-hi-" in c)
        r = position.loc[out["unique_id"].to_numpy()].to_numpy()
        h = out["ds"].to_numpy() - history.shape[1]
        mean[r, h] = out["ets"].to_numpy()
        lo[r, h] = out[lo_col].to_numpy()
        hi[r, h] = out[hi_col].to_numpy()
    failed = ~(np.isfinite(mean) & np.isfinite(lo) & np.isfinite(hi)).all(axis=1)
    return mean, lo, hi, failed


def auto_ets(
    history: np.ndarray,
    horizon: int,
    season: int = 7,
    level: float = 80,
    *,
    model: str = "ZZZ",
    fallback_window: int = 28,
    n_jobs: int = 1,
) -> EtsForecast:
    """Per-product AutoETS (statsforecast) with a `level`% central prediction interval.

    The classical statistical reference: each product gets its own
    error/trend/season form chosen by AICc, so it adapts to level shifts and
    weekly shape without features. All products go through ONE batched
    StatsForecast call on a long (unique_id, ds, y) frame of each row's
    non-NaN part.

    Products with fewer than 2 * season observed days (too short to estimate a
    weekly season), or whose fit fails or returns non-finite values, get the
    moving average over `fallback_window` days with intervals from the empirical
    quantiles of its residuals (see `_fallback_forecast`) and fallback=True.

    model: the AutoETS search space ("ZZZ" = everything, the statsforecast
    default). The trend models dominate the cost: 3000 products x 250 days x
    H=28 took 227 s with "ZZZ" and 38 s with "ZNZ" (no trend, which also never
    extrapolates a trend over the horizon) on one core. n_jobs > 1 fits in
    worker processes ("ZZZ" with n_jobs=2: 126 s).
    Mean, lo and hi are clipped at 0 (units sold are never negative).
    """
    history = _check_history(history, horizon)
    if season < 1:
        raise ValueError(f"season must be >= 1, got {season}")
    if not 0 < level < 100:
        raise ValueError(f"level must be in (0, 100), got {level}")
    n_products = history.shape[0]
    mean, lo, hi = _fallback_forecast(history, horizon, fallback_window, level)
    fallback = np.ones(n_products, dtype=bool)

    n_observed = (~np.isnan(history)).sum(axis=1)
    rows = np.flatnonzero(n_observed >= 2 * season)
    if len(rows) and horizon > 0:
        ets_mean, ets_lo, ets_hi, failed = _ets_block(
            history, rows, horizon, season, level, model, n_jobs
        )
        ok = ~failed
        mean[rows[ok]] = ets_mean[ok]
        lo[rows[ok]] = ets_lo[ok]
        hi[rows[ok]] = ets_hi[ok]
        fallback[rows[ok]] = False
    elif horizon == 0:
        fallback[rows] = False

    return EtsForecast(
        mean=np.clip(mean, 0.0, None),
        lo=np.clip(lo, 0.0, None),
        hi=np.clip(hi, 0.0, None),
        fallback=fallback,
        level=float(level),
    )
