"""The next 28 days for every active product, with roll-ups that add up."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ecomarket_assets.forecasting.features import (
    HORIZON,
    EmbeddingBasis,
    build_features,
    forecast_rows,
)
from ecomarket_assets.forecasting.panel import SalesPanel

ACTIVE_WINDOW = 28
Z80 = 1.2815515655446004  # standard normal quantile of 0.9


def active_products(panel: SalesPanel, origin: int, window: int = ACTIVE_WINDOW) -> np.ndarray:
    """Panel rows with a sale or a view in the last `window` days (a dead product gets no forecast)."""
    start = max(origin - window + 1, 0)
    recent = np.nan_to_num(panel.units[:, start : origin + 1]).sum(axis=1) + panel.views[:, start : origin + 1].sum(axis=1)
    return np.flatnonzero((panel.first_day <= origin) & (recent > 0))


def product_forecast(panel: SalesPanel, predict: Callable[[pd.DataFrame], pd.DataFrame],
                     basis: EmbeddingBasis | None, horizon: int = HORIZON) -> pd.DataFrame:
    """One row per active product and day after the panel's last day."""
    origin = panel.units.shape[1] - 1
    products = active_products(panel, origin)
    p, d, h = forecast_rows(panel, origin, products, horizon)
    predicted = predict(build_features(panel, p, d, h, basis)).reset_index(drop=True)
    frame = pd.DataFrame({
        "product_id": panel.product_ids[p],
        "category": panel.category[p],
        "date": panel.date_of(d).date,
        "horizon": h,
    })
    return pd.concat([frame, predicted[["forecast", "expected_units", "p10", "p50", "p90"]]], axis=1)


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
