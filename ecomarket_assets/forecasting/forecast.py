"""The next 28 days for every product that can sell, with week totals and roll-ups that add up.

Which column for what:
- `forecast`: the point forecast to judge a product-day or product-week by (lowest WAPE): the model, with
  the weekday-mean rule blended in at the weight chosen on the tuning windows. It runs low in total (WAPE
  rewards forecasting low on intermittent days), so do not add it up for stock or revenue plans.
- `expected_units`: `forecast` x the level factor found on the tuning windows, the column whose sums should
  match real units (roll-ups, stock, revenue); its per-product error is larger.
- `p10`/`p90` per day: an 80 % interval for one product-day (most days are 0, so its coverage is decided by
  zero ties). Do not add daily bounds up: their sum is too wide for a week.
- `product_weeks` (demand_forecast_weekly.parquet): per product and week (horizon days 1-7, 8-14, ...), the
  summed `forecast`/`expected_units` and the week's own `p10_week`/`p90_week`, calibrated on week sums of the
  tuning windows to cover 80 %.

Every product seen by the origin is forecast, also one quiet for `ACTIVE_WINDOW` days (the model learned
from such days: its forecast is the low rate of the product's longer history, features `mean_112`,
`days_since_sale`); `quiet_products` counts them. A catalog product never seen in the events is forecast
from its text neighbours' first weeks (`new_product_forecast`, `method` = text_neighbours); its week
bounds use the model's week offsets, which were not fitted on such products.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ecomarket_assets.forecasting.baselines import weekday_mean
from ecomarket_assets.forecasting.features import (
    HORIZON,
    EmbeddingBasis,
    build_features,
    forecast_rows,
)
from ecomarket_assets.forecasting.metrics import weekly
from ecomarket_assets.forecasting.model import IntervalCalibration, week_interval, with_rule
from ecomarket_assets.forecasting.panel import SalesPanel

ACTIVE_WINDOW = 28
Z80 = 1.2815515655446004  # standard normal quantile of 0.9


def active_products(panel: SalesPanel, origin: int, window: int = ACTIVE_WINDOW) -> np.ndarray:
    """Panel rows with a sale or a view in the last `window` days (a dead product gets no forecast)."""
    start = max(origin - window + 1, 0)
    recent = np.nan_to_num(panel.units[:, start : origin + 1]).sum(axis=1) + panel.views[:, start : origin + 1].sum(axis=1)
    return np.flatnonzero((panel.first_day <= origin) & (recent > 0))


def quiet_products(panel: SalesPanel, origin: int, window: int = ACTIVE_WINDOW) -> np.ndarray:
    """Panel rows seen by `origin` but without a sale or a view in the last `window` days."""
    return np.setdiff1d(np.flatnonzero(panel.first_day <= origin), active_products(panel, origin, window))


def product_forecast(panel: SalesPanel, predict: Callable[[pd.DataFrame], pd.DataFrame],
                     basis: EmbeddingBasis | None, horizon: int = HORIZON,
                     calibration: IntervalCalibration | None = None) -> pd.DataFrame:
    """One row per product and day after the panel's last day, for every product seen so far (quiet ones too:
    leaving them out dropped 4 % of Online Retail's units from the forecast).

    With the model's `calibration`, `forecast` blends in the weekday-mean rule at the weight chosen on the
    tuning windows (the registered pyfunc returns the model's own forecast: the rule needs the history)."""
    origin = panel.units.shape[1] - 1
    p, d, h = forecast_rows(panel, origin, horizon=horizon)
    predicted = predict(build_features(panel, p, d, h, basis)).reset_index(drop=True)
    if calibration is not None:
        rule = weekday_mean(panel.units[p[::horizon], : origin + 1], horizon)
        predicted = with_rule(predicted, rule, calibration)
    frame = pd.DataFrame({
        "product_id": panel.product_ids[p],
        "category": panel.category[p],
        "date": panel.date_of(d).date,
        "horizon": h,
    })
    columns = ["forecast", "expected_units", "p10", "p50", "p90"]
    return pd.concat([frame, predicted[columns]], axis=1).assign(method="model")


NEIGHBOURS = 10
LAUNCH_DAYS = 28


def launch_days(panel: SalesPanel, days: int = LAUNCH_DAYS) -> np.ndarray:
    """(P, days) units of each product's first `days` days in the panel (NaN past the panel's end)."""
    first = np.minimum(panel.first_day, panel.units.shape[1])
    index = first[:, None] + np.arange(days)[None, :]
    padded = np.hstack([panel.units, np.full((len(first), days), np.nan)])
    return padded[np.arange(len(first))[:, None], index]


def new_product_forecast(panel: SalesPanel, basis: EmbeddingBasis | None, catalog: pd.DataFrame,
                         horizon: int = HORIZON, k: int = NEIGHBOURS) -> pd.DataFrame:
    """Catalog products with a text embedding and no event yet, forecast from their `k` text neighbours.

    Each day gets the mean, and P10/P50/P90, of the neighbours' daily units over their own first
    `LAUNCH_DAYS` days (what similar products sold when they were new); neighbours are the nearest seen
    products by cosine in the embedding basis. No model has scored these rows, and no backtest either (a
    product without history has nothing to compare against); `method` marks them."""
    columns = ["product_id", "category", "date", "horizon", "forecast", "expected_units", "p10", "p50", "p90",
               "method"]
    if basis is None:
        return pd.DataFrame(columns=columns)
    unseen = np.setdiff1d(catalog["product_id"].to_numpy(dtype=object), panel.product_ids)
    unseen = unseen[~np.isnan(basis.lookup(unseen)).any(axis=1)] if len(unseen) else unseen
    seen = basis.lookup(panel.product_ids)
    usable = ~np.isnan(seen).any(axis=1)
    if not len(unseen) or not usable.any():
        return pd.DataFrame(columns=columns)
    nearest = _nearest(basis.lookup(unseen), seen[usable], min(k, int(usable.sum())))
    launch = launch_days(panel)[usable]
    origin = panel.units.shape[1] - 1
    stats = []
    for row in nearest:
        units = launch[row].ravel()
        units = units[~np.isnan(units)]
        stats.append([units.mean(), *np.quantile(units, [0.1, 0.5, 0.9])] if len(units) else [0.0] * 4)
    stats = np.repeat(np.asarray(stats, dtype=float), horizon, axis=0)
    category = catalog.set_index("product_id")["category"].reindex(unseen).fillna("unknown").to_numpy(dtype=object)
    steps = np.tile(np.arange(1, horizon + 1), len(unseen))
    return pd.DataFrame({
        "product_id": np.repeat(unseen, horizon), "category": np.repeat(category, horizon),
        "date": panel.date_of(origin + steps).date, "horizon": steps, "forecast": stats[:, 0],
        "expected_units": stats[:, 0], "p10": stats[:, 1], "p50": stats[:, 2], "p90": stats[:, 3],
        "method": "text_neighbours",
    })[columns]


def _nearest(queries: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Row indexes of the `k` candidates with the highest cosine similarity to each query, (Q, k)."""
    def unit(m: np.ndarray) -> np.ndarray:
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

    similarity = unit(queries.astype(float)) @ unit(candidates.astype(float)).T
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def product_weeks(forecast: pd.DataFrame, calibration: IntervalCalibration) -> pd.DataFrame:
    """Per product and forecast week: summed forecast and expected units, and the week's own P10/P90.

    `forecast` is `product_forecast`'s frame (product-major, horizons 1..H, H a multiple of 7)."""
    horizon = int(forecast["horizon"].max())
    shape = (len(forecast) // horizon, horizon)
    if shape[0] * horizon != len(forecast) or horizon % 7:
        raise ValueError("every product needs horizons 1..H, H a multiple of 7")
    days = {c: forecast[c].to_numpy(dtype=float).reshape(shape) for c in ("forecast", "expected_units", "p10", "p90")}
    low, high = week_interval(days["p10"], days["p90"], calibration)
    weeks = horizon // 7
    first = forecast.iloc[::7]  # the first day of each product-week
    return pd.DataFrame({
        "product_id": first["product_id"].to_numpy(),
        "category": first["category"].to_numpy(),
        "week": np.tile(np.arange(1, weeks + 1), shape[0]),
        "date_from": first["date"].to_numpy(),
        "date_to": forecast["date"].to_numpy()[6::7],
        "forecast": weekly(days["forecast"]).ravel(),
        "expected_units": weekly(days["expected_units"]).ravel(),
        "p10_week": low.ravel(),
        "p90_week": high.ravel(),
    })


def rollups(forecast: pd.DataFrame) -> pd.DataFrame:
    """Category and total per day: `forecast` is the exact sum of product forecasts.

    Quantiles do not add, so the roll-up's 80% interval treats products as
    independent, each with the spread implied by its own P10-P90 interval.
    """
    frame = forecast.assign(variance=((forecast["p90"] - forecast["p10"]) / (2 * Z80)) ** 2, total="all")
    parts = []
    for level, key in (("category", "category"), ("total", "total")):
        grouped = frame.groupby([key, "date"], as_index=False).agg(
            forecast=("forecast", "sum"), expected_units=("expected_units", "sum"), variance=("variance", "sum"),
            products=("product_id", "nunique"))
        spread = Z80 * np.sqrt(grouped["variance"])
        grouped["p10"] = np.maximum(grouped["forecast"] - spread, 0.0)
        grouped["p90"] = grouped["forecast"] + spread
        parts.append(grouped.rename(columns={key: "key"}).assign(level=level).drop(columns="variance"))
    columns = ["level", "key", "date", "forecast", "expected_units", "p10", "p90", "products"]
    return pd.concat(parts, ignore_index=True)[columns]


def rising_products(panel: SalesPanel, forecast: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Products whose next 28 days are forecast furthest above their last 28 days (what campaigns can push)."""
    origin = panel.units.shape[1] - 1
    recent = pd.Series(np.nansum(panel.units[:, max(origin - 27, 0) : origin + 1], axis=1), index=panel.product_ids)
    ahead = forecast.groupby("product_id")["forecast"].sum()
    frame = pd.DataFrame({"next_28_days": ahead, "last_28_days": recent.reindex(ahead.index)})
    frame["change"] = frame["next_28_days"] - frame["last_28_days"]
    return frame.sort_values("change", ascending=False).head(top).round(1).rename_axis("product_id").reset_index()
