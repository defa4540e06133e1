"""Materialize the ingestion assets on a small simulated shop, with broken landing files."""

import json

import dagster as dg
import pandas as pd
import pytest

from ecomarket_assets.defs.ingestion import assets, checks, sensors
from ecomarket_assets.ingestion import checks as check_logic
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.schemas import EVENTS
from ecomarket_assets.storage import DataLayout, read_frame

ALL_ASSETS = [assets.catalog, assets.customers, assets.reviews, assets.raw_events]
ALL_CHECKS = dg.load_asset_checks_from_modules([checks])


def materialize(resources: dict, selection: list[str], **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([*ALL_ASSETS, *ALL_CHECKS], resources=resources, selection=selection, **kwargs)


def checks_by_name(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture
def tables_ready(small_resources):
    result = materialize(small_resources, ["catalog", "customers", "reviews"])
    assert result.success
    assert all(checks_by_name(result).values())
    return small_resources


def test_tables_reconcile_and_match_the_source(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    staged = tables_ready["source"].staged(layout)
    for name in ("catalog", "customers", "reviews"):
        stored = read_frame(layout.table(name))
        assert len(stored) == len(staged.table(name)) > 0
    catalog = read_frame(layout.table("catalog"))
    assert set(catalog["category"]) >= {"kitchen", "garden", "clothing"}


def test_backfill_range_then_a_single_new_day(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    tags = partition_range_tags("2025-11-10", "2025-11-29")
    result = materialize(tables_ready, ["raw_events"], tags=tags)
    assert result.success
    assert len(result.get_asset_materialization_events()) == 20
    assert checks_by_name(result) and all(checks_by_name(result).values())
    staged = tables_ready["source"].staged(layout)
    days = staged.manifest["days"]
    for day in ["2025-11-10", "2025-11-16"]:
        stored = read_frame(layout.raw_events_day(day))
        quarantined = read_frame(layout.quarantine_day("raw_events", day))
        assert len(stored) + len(quarantined) == days[day]["events"] + days[day]["rejects"]
        assert stored["event_time"].dt.strftime("%Y-%m-%d").eq(day).all()
    range_meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert "duplicate_event_id" in range_meta["quarantine_reasons"].value
    assert "unknown_product" in range_meta["quarantine_reasons"].value
    # one new day alone (the simulation's last)
    single = materialize(tables_ready, ["raw_events"], partition_key="2025-11-30")
    assert single.success
    meta = single.get_asset_materialization_events()[0].materialization.metadata
    assert meta["rows_read"].value == meta["rows_kept"].value + meta["rows_quarantined"].value
    assert meta["rows_read"].value == days["2025-11-30"]["events"] + days["2025-11-30"]["rejects"]
    # the simulator's tracker glitches (double-fired events, delisted products) all end in quarantine
    glitches = staged.manifest["notes"]["double_fired_events"] + staged.manifest["notes"]["delisted_product_events"]
    assert glitches > 0 and range_meta["rows_quarantined"].value + meta["rows_quarantined"].value == glitches


def _broken_landing_file(layout: DataLayout, day: str) -> dict[str, int]:
    """A canonical CSV in the landing folder with one row of each kind of defect."""
    catalog = read_frame(layout.table("catalog"))
    known = catalog["product_id"].iloc[0]
    t = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=12)
    base = {"event_time": t, "user_id": "U0000001", "session_id": "L1", "event_type": "purchase", "product_id": known,
            "quantity": 1, "unit_price": 9.99, "order_id": "LO1", "channel": "web"}
    rows = [
        {**base, "event_id": "L-ok-1"},
        {**base, "event_id": "L-ok-2", "event_type": "view"},
        {**base, "event_id": "L-ok-1", "quantity": 2},  # duplicate id of a good row
        {**base, "event_id": "L-neg", "quantity": -4},
        {**base, "event_id": "L-huge", "quantity": 100_000},
        {**base, "event_id": "L-price", "unit_price": -1},
        {**base, "event_id": "L-absurd", "unit_price": 99_999},
        {**base, "event_id": "L-prod", "product_id": "NOPE"},
        {**base, "event_id": "L-type", "event_type": "teleport"},
        {**base, "event_id": "L-late", "event_time": t + pd.Timedelta(days=3)},  # filed under its own day
    ]
    frame = pd.DataFrame(rows)
    frame["event_time"] = frame["event_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = frame.to_csv(index=False) + "L-garbled,not-a-time,U1,S,view,P,1,1.0,,web\n"
    layout.landing.mkdir(parents=True, exist_ok=True)
    (layout.landing / "broken_export.csv").write_text(text)
    return {"duplicate_event_id": 1, "bad_quantity": 2, "bad_price": 2, "unknown_product": 1, "unknown_event_type": 1}


def test_broken_landing_rows_are_quarantined_with_reasons(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    day = "2025-11-12"
    expected = _broken_landing_file(layout, day)
    result = materialize(tables_ready, ["raw_events"], partition_key=day)
    assert result.success and all(checks_by_name(result).values())
    quarantine = read_frame(layout.quarantine_day("raw_events", day))
    from_landing = quarantine[quarantine["event_id"].fillna("").str.startswith("L-")]
    assert from_landing["quarantine_reason"].value_counts().to_dict() == expected
    garbled = quarantine[quarantine["quarantine_reason"].str.startswith("bad_type")]
    assert len(garbled) == 0  # its time is unparseable: it cannot be filed under this day
    kept = read_frame(layout.raw_events_day(day))
    assert {"L-ok-1", "L-ok-2"} <= set(kept["event_id"])
    assert kept.loc[kept.event_id == "L-ok-1", "quantity"].tolist() == [1]  # first copy wins
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["rows_quarantined"].value == sum(expected.values())
    assert meta["rows_read"].value == meta["rows_kept"].value + meta["rows_quarantined"].value


def test_checks_fail_on_corrupted_stored_data(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    day = "2025-11-11"
    assert materialize(tables_ready, ["raw_events"], partition_key=day).success
    path = layout.raw_events_day(day)
    good = read_frame(path)
    corrupted = pd.concat([good, good.head(3)], ignore_index=True)
    corrupted.loc[0, "quantity"] = -7
    corrupted.loc[1, "product_id"] = "P99999"
    EVENTS.to_arrow(corrupted)  # still schema-valid, only the values are wrong
    from ecomarket_assets.storage import write_frame

    write_frame(corrupted, path, EVENTS)
    assert not check_logic.events_rules(layout, [day], ["duplicate_event_id"]).passed
    assert not check_logic.events_rules(layout, [day], ["bad_quantity"]).passed
    assert not check_logic.events_rules(layout, [day], ["unknown_product"]).passed
    assert not check_logic.events_reconciled(layout, tables_ready["source"].event_sources(layout), [day]).passed
    corrupted.drop(columns="channel").to_parquet(path)
    assert not check_logic.events_schema(layout, [day]).passed


def test_blocking_checks_stop_downstream_when_cleaning_is_broken(tables_ready, data_dir, monkeypatch):
    """Simulate a bug in the cleaning code: bad rows reach the stored file, checks must stop the run."""
    from ecomarket_assets.ingestion import pipeline, validation

    layout = DataLayout(data_dir)
    _broken_landing_file(layout, "2025-11-12")
    monkeypatch.setattr(pipeline.validation, "validate_events",
                        lambda events, *a: validation.Validated(kept=events, quarantined=events.iloc[:0].assign(
                            source_record=None, quarantine_reason=None)))

    @dg.asset(deps=[assets.raw_events], partitions_def=assets.raw_events.partitions_def)
    def downstream_probe() -> None:
        raise AssertionError("must not run on bad data")

    result = dg.materialize([*ALL_ASSETS, *ALL_CHECKS, downstream_probe], resources=tables_ready, partition_key="2025-11-12",
                            selection=["raw_events", "downstream_probe"], raise_on_error=False)
    outcome = checks_by_name(result)
    assert not outcome["events_unique_ids"] and not outcome["events_known_products"]
    assert not outcome["events_valid_quantities_and_prices"] and not outcome["events_in_partition"]
    assert outcome["events_reconciled"]  # nothing was lost, the bad rows were just kept
    assert not any(e.asset_key == downstream_probe.key for e in result.get_asset_materialization_events())


def test_landing_sensor_requests_each_new_file_once(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    _broken_landing_file(layout, "2025-11-12")
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, resources=tables_ready)
    first = sensors.landing_files_sensor(context)
    days = sorted(r.partition_key for r in first.run_requests)
    assert days == ["2025-11-12", "2025-11-15"]
    again = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=tables_ready))
    assert again.run_requests == []
    assert "broken_export.csv" in json.loads(first.cursor)
