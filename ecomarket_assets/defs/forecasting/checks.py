"""Contracts on the forecasting assets (blocking) and model-quality alarms (WARN)."""

import dagster as dg
import numpy as np
import pandas as pd

from ecomarket_assets.defs.forecasting.assets import (
    demand_backtest,
    demand_forecast,
    demand_training_set,
)
from ecomarket_assets.forecasting.backtest import MODEL
from ecomarket_assets.forecasting.panel import event_days
from ecomarket_assets.forecasting.refresh import stale_days
from ecomarket_assets.forecasting.store import ForecastStore
from ecomarket_assets.resources import DataDirResource
from ecomarket_assets.storage import read_frame

COVERAGE_TOLERANCE = 0.05


@dg.asset_check(asset=demand_training_set, blocking=True,
                description="Units in the panel equal the purchased units of every raw_events day file as it "
                "was aggregated when folded in, and every stored day file is folded in as it is now (same size "
                "and modification time: no event is read again); every product has one row per day from its "
                "first day to the last, with no gaps.")
def demand_training_set_reconciles(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    store = ForecastStore(layout)
    panel = read_frame(store.panel_path)
    folded = (store.read_state() or {"days": {}})["days"]
    days = event_days(layout)
    stale = stale_days(layout, folded, days)
    purchased = float(sum(folded[d]["purchased_units"] for d in days if d in folded))
    dates = pd.to_datetime(panel["date"])
    span = dates.groupby(panel["product_id"]).agg(["min", "max", "size"])
    last = dates.max()
    gaps = int(((span["max"] != last) | ((span["max"] - span["min"]).dt.days + 1 != span["size"])).sum())
    duplicates = int(panel.duplicated(["product_id", "date"]).sum())
    return dg.AssetCheckResult(
        passed=bool(np.isclose(panel["units"].sum(), purchased)) and not stale and gaps == 0 and duplicates == 0,
        metadata={"panel_units": float(panel["units"].sum()), "purchased_units_in_events": purchased,
                  "stale_or_missing_days": len(stale), "products_with_gaps": gaps, "duplicate_rows": duplicates},
    )


@dg.asset_check(asset=demand_forecast, blocking=True,
                description="0 <= P10 <= P50 <= P90, 28 days per product, and roll-ups equal the sum of products.")
def demand_forecast_valid(data_dir: DataDirResource) -> dg.AssetCheckResult:
    store = ForecastStore(data_dir.layout())
    forecast = read_frame(store.forecast / "demand_forecast.parquet")
    rollups = read_frame(store.forecast / "rollups.parquet")
    total = rollups[rollups["level"] == "total"]["forecast"].sum()
    by_category = rollups[rollups["level"] == "category"]["forecast"].sum()
    problems = {
        "unordered_rows": int((~((forecast["p10"] >= 0) & (forecast["p10"] <= forecast["p50"])
                                 & (forecast["p50"] <= forecast["p90"]))).sum()),
        "negative_forecasts": int((forecast["forecast"] < 0).sum()),
        "products_without_28_days": int((forecast.groupby("product_id").size() != 28).sum()),
        "rollup_mismatch": int(not (np.isclose(total, forecast["forecast"].sum())
                                    and np.isclose(by_category, forecast["forecast"].sum())
                                    and np.isclose(rollups.loc[rollups["level"] == "total", "expected_units"].sum(),
                                                   forecast["expected_units"].sum()))),
    }
    return dg.AssetCheckResult(passed=not any(problems.values()), metadata={**problems, "rows": len(forecast)})


@dg.asset_check(asset=demand_backtest, blocking=False,
                description="The model's product-day WAPE beats seasonal naive and AutoETS.")
def demand_model_beats_baselines(data_dir: DataDirResource) -> dg.AssetCheckResult:
    table = read_frame(ForecastStore(data_dir.layout()).backtest / "metrics.parquet").set_index("method")
    wape = table["wape_day"]
    passed = bool(wape[MODEL] < wape["seasonal_naive"] and wape[MODEL] < wape["auto_ets"])
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN,
                               metadata={f"wape_{k}": float(v) for k, v in wape.items()})


@dg.asset_check(asset=demand_backtest, blocking=False,
                description="The P10-P90 interval covers 80% of actual product-days, within 5 points.")
def demand_interval_coverage(data_dir: DataDirResource) -> dg.AssetCheckResult:
    table = read_frame(ForecastStore(data_dir.layout()).backtest / "metrics.parquet").set_index("method")
    coverage = float(table.loc[MODEL, "coverage_day"])
    return dg.AssetCheckResult(passed=abs(coverage - 0.8) <= COVERAGE_TOLERANCE, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"coverage": coverage, "target": 0.8, "tolerance": COVERAGE_TOLERANCE})
