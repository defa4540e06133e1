"""The incremental refresh of `demand_training_set` equals a full rebuild, day after day, on both engines.

A 76-day simulated shop is ingested once; each test copies its raw_events day files into a fresh data
directory one day at a time, refreshing after each, as the nightly run would see them arrive.
"""

import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.compute import ComputeResource, Engine
from ecomarket_assets.defs.forecasting import assets as forecast_assets
from ecomarket_assets.defs.forecasting import checks as forecast_checks
from ecomarket_assets.forecasting import features as ft
from ecomarket_assets.forecasting import training as tr
from ecomarket_assets.forecasting.panel import (
    EVENT_COLUMNS,
    SalesPanel,
    event_days,
    panel_from_layout,
)
from ecomarket_assets.forecasting.refresh import refresh_demand_state
from ecomarket_assets.forecasting.store import ForecastStore
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.storage import DataLayout, read_frame, write_frame
from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS

SIM = {"sim_users": 300, "sim_products": 40, "sim_days": 76, "sim_start": "2025-08-01", "sim_seed": 9}
RANGE = partition_range_tags("2025-08-01", "2025-10-15")
SOURCE = ShopSourceResource(**SIM)
RTOL = 1e-9


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> DataLayout:
    root = tmp_path_factory.mktemp("incremental") / "data"
    resources = {"data_dir": DataDirResource(path=str(root)), "source": SOURCE, "compute": ComputeResource()}
    assert dg.materialize(ALL_ASSETS, resources=resources, selection=["catalog"]).success
    assert dg.materialize(ALL_ASSETS, resources=resources, selection=["raw_events"], tags=RANGE).success
    layout = DataLayout(root)
    assert len(event_days(layout)) >= 70
    return layout


def _arrive(source: DataLayout, target: DataLayout, days: list[str]) -> None:
    """Copy the catalog and these raw_events day files into `target`, as ingestion would have written them."""
    catalog = target.table("catalog")
    if not catalog.exists():
        catalog.parent.mkdir(parents=True)
        shutil.copy(source.table("catalog"), catalog)
    for day in days:
        target.raw_events_day(day).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source.raw_events_day(day), target.raw_events_day(day))


def assert_same_panel(got: SalesPanel, expected: SalesPanel) -> None:
    np.testing.assert_array_equal(got.product_ids, expected.product_ids)
    pd.testing.assert_index_equal(got.days, expected.days)
    for name in ("units", "views", "price", "list_price"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=RTOL, equal_nan=True, err_msg=name)
    np.testing.assert_array_equal(got.category, expected.category)
    assert got.calendar == expected.calendar


def assert_same_rows(got: tr.TrainingSet, expected: tr.TrainingSet) -> None:
    for name in ("product_index", "target_day", "horizon"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    np.testing.assert_allclose(got.target, expected.target, rtol=RTOL)
    pd.testing.assert_frame_equal(got.features, expected.features, check_exact=False, rtol=RTOL)


def assert_matches_full_rebuild(layout: DataLayout, engine: Engine) -> None:
    """The stored state equals both a rebuild from the events and today's whole-history code path."""
    store = ForecastStore(layout)
    incremental = store.read_panel()
    stored = store.read_training_set(incremental, None)
    whole = panel_from_layout(layout, SOURCE.sales_calendar, engine)  # every event, aggregated on the engine
    assert_same_panel(incremental, whole)
    assert_same_rows(stored, tr.make_training_set(whole, None))
    rebuilt = refresh_demand_state(layout, SOURCE.sales_calendar, engine, full_rebuild=True)
    assert rebuilt.refresh == "full" and rebuilt.days_aggregated == len(event_days(layout))
    assert_same_panel(rebuilt.panel, whole)
    assert_same_rows(store.read_training_set(rebuilt.panel, None), stored)


def _day_by_day(source: DataLayout, target: DataLayout, engine: Engine, start: int) -> list:
    days = event_days(source)
    _arrive(source, target, days[:start])
    reports = [refresh_demand_state(target, SOURCE.sales_calendar, engine)]
    for day in days[start:]:
        _arrive(source, target, [day])
        reports.append(refresh_demand_state(target, SOURCE.sales_calendar, engine))
    return reports


def test_day_by_day_refresh_equals_a_full_rebuild_on_local(ingested, tmp_path):
    target = DataLayout(tmp_path / "data")
    reports = _day_by_day(ingested, target, Engine("local"), start=30)
    first, nightly = reports[0], reports[1:]
    assert first.refresh == "full" and first.reason == "no stored refresh state" and first.days_aggregated == 30
    assert len(nightly) >= 40
    for report in nightly:
        assert report.refresh == "incremental" and report.days_aggregated == 1 and report.reason == "1 new days"
        new_day = report.panel.days[-1]
        assert report.rows_from == str(new_day.date())
        assert (pd.to_datetime(report.appended["target_date"]) == new_day).all()
        assert report.feature_rows_appended == int((report.panel.first_day < len(report.panel.days) - 1).sum())
    assert nightly[-1].feature_rows == sum(r.feature_rows_appended for r in reports)
    assert_matches_full_rebuild(target, Engine("local"))

    again = refresh_demand_state(target, SOURCE.sales_calendar)
    assert (again.reason, again.days_aggregated, again.feature_rows_appended) == ("no new raw_events days", 0, 0)


def test_a_changed_past_day_is_aggregated_again_and_rows_from_it_recomputed(ingested, tmp_path):
    target = DataLayout(tmp_path / "data")
    days = event_days(ingested)
    _arrive(ingested, target, days)
    refresh_demand_state(target, SOURCE.sales_calendar)
    changed = days[50]
    events = read_frame(target.raw_events_day(changed))
    bought = events["event_type"] == "purchase"
    assert bought.sum() > 5
    events.loc[bought, "quantity"] += 2  # a late correction of that day's orders
    events = events[~(events.index.isin(events.index[bought][:3]))]  # and three orders dropped
    write_frame(events, target.raw_events_day(changed))

    report = refresh_demand_state(target, SOURCE.sales_calendar)
    assert report.refresh == "incremental" and report.days_aggregated == 1
    assert report.reason.startswith("1 stored raw_events days changed") and report.rows_from == changed
    assert set(pd.to_datetime(report.appended["target_date"]).dt.date.astype(str)) == set(days[50:])
    assert_matches_full_rebuild(target, Engine("local"))

    shutil.rmtree(target.raw_events_day(days[60]).parent)  # a day taken out (re-ingestion in progress, say)
    report = refresh_demand_state(target, SOURCE.sales_calendar)
    assert (report.days_aggregated, report.days_removed, report.rows_from) == (0, 1, days[60])
    assert_matches_full_rebuild(target, Engine("local"))


def test_a_changed_list_price_recomputes_every_row_from_the_stored_aggregates(ingested, tmp_path):
    target = DataLayout(tmp_path / "data")
    _arrive(ingested, target, event_days(ingested))
    refresh_demand_state(target, SOURCE.sales_calendar)
    catalog = read_frame(target.table("catalog"))
    catalog.loc[0, "price"] *= 1.5
    write_frame(catalog, target.table("catalog"))
    report = refresh_demand_state(target, SOURCE.sales_calendar)
    assert report.refresh == "incremental" and report.days_aggregated == 0
    assert report.reason.startswith("list price or category changed for 1 stored products")
    assert report.feature_rows_appended == report.feature_rows
    assert_matches_full_rebuild(target, Engine("local"))


@pytest.mark.slow  # starts a Dask cluster; `make test-slow` (CI) runs it
def test_day_by_day_refresh_equals_a_full_rebuild_on_dask(ingested, tmp_path):
    """Each day file aggregated in its own task on a 2-worker LocalCluster; compared with the whole history
    aggregated on the cluster (which test_dask_engine holds equal to the local engine's)."""
    target = DataLayout(tmp_path / "data")
    with ComputeResource(engine="dask", workers=2).session() as engine:
        reports = _day_by_day(ingested, target, engine, start=60)
        assert [r.days_aggregated for r in reports] == [60] + [1] * (len(reports) - 1)
        assert all(r.refresh == "incremental" for r in reports[1:])
        assert_matches_full_rebuild(target, engine)


def test_horizons_are_a_function_of_product_date_and_seed():
    ids = np.array(["A", "B", "A", "A"], dtype=object)
    dates = pd.DatetimeIndex(["2025-01-01", "2025-01-01", "2025-01-02", "2025-01-01"])
    h = ft.row_horizon(ids, dates)
    assert h[0] == h[3] and ((h >= 1) & (h <= ft.HORIZON)).all()
    np.testing.assert_array_equal(ft.row_horizon(ids[[3, 1]], dates[[3, 1]]), h[[3, 1]])  # not of its neighbours
    many = ft.row_horizon(np.array([f"P{i}" for i in range(5_000)], dtype=object),
                          pd.date_range("2024-01-01", periods=5_000))
    counts = np.bincount(many, minlength=ft.HORIZON + 1)[1:]
    assert counts.min() > 100 and not (ft.row_horizon(ids, dates, seed=1) == h).all()


def test_materializing_twice_refreshes_incrementally_and_full_rebuild_redoes_it(ingested, tmp_path):
    target = DataLayout(tmp_path / "data")
    days = event_days(ingested)
    _arrive(ingested, target, days[:-1])
    resources = {"data_dir": DataDirResource(path=str(target.root)), "source": SOURCE, "compute": ComputeResource()}
    assets = [forecast_assets.demand_training_set, *dg.load_asset_checks_from_modules([forecast_checks])]

    def materialize(**config) -> dict:
        run_config = {"ops": {"demand_training_set": {"config": config}}} if config else None
        result = dg.materialize(assets, resources=resources, selection=["demand_training_set"], run_config=run_config)
        assert result.success
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert checks["demand_training_set_reconciles"].passed
        meta = result.asset_materializations_for_node("demand_training_set")[0].metadata
        return {k: v.value for k, v in meta.items()}

    first = materialize()
    assert first["refresh"] == "full" and first["days_aggregated"] == len(days) - 1
    _arrive(ingested, target, days[-1:])
    second = materialize()
    assert (second["refresh"], second["reason"], second["days_aggregated"]) == ("incremental", "1 new days", 1)
    assert second["last_day"] == days[-1] and second["rows_from"] == days[-1]
    assert 0 < second["feature_rows_appended"] < first["feature_rows_appended"]
    assert second["feature_rows"] == first["feature_rows"] + second["feature_rows_appended"]
    assert {"aggregate_seconds", "panel_seconds", "features_seconds", "write_seconds"} <= set(second)
    store = ForecastStore(target)
    incremental = store.read_features()
    full = materialize(full_rebuild=True)
    assert (full["refresh"], full["reason"], full["days_aggregated"]) == ("full", "full_rebuild requested", len(days))
    assert full["feature_rows"] == second["feature_rows"] and full["features"] == second["features"]
    pd.testing.assert_frame_equal(store.read_features(), incremental, check_exact=False, rtol=RTOL)
    assert list(incremental.columns[:2]) == ["product_id", "target_date"] and incremental.columns[-1] == "units"

    day = target.raw_events_day(days[-1])  # a file that changes without its refresh fails the check
    events = read_frame(day, columns=EVENT_COLUMNS)
    write_frame(events.iloc[: len(events) // 2], day)
    evaluation = forecast_checks.demand_training_set_reconciles(data_dir=resources["data_dir"])
    assert not evaluation.passed and evaluation.metadata["stale_or_missing_days"].value == 1
