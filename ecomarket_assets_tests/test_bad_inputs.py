"""Bad inputs and faults a new user runs into, driven through the real assets and the landing sensor.

Each test names the input, asserts the outcome (the reason given, counts that reconcile, the other files
still ingested) and that no row is lost.
"""

import gzip
import json
import os

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.ingestion import sensors
from ecomarket_assets.ingestion import landing
from ecomarket_assets.ingestion.adapters import read_canonical, read_online_retail
from ecomarket_assets.ingestion.adapters.dates import DateOrderError
from ecomarket_assets.ingestion.pipeline import reconcile_files
from ecomarket_assets.ingestion.sources import SourceFileError
from ecomarket_assets.partitions import daily_partitions
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.schemas import EVENTS
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets_tests.conftest import SMALL_SIM
from ecomarket_assets_tests.test_ingestion_assets import checks_by_name, materialize

DAY = "2025-11-12"
WHOLE_SHOP = {ASSET_PARTITION_RANGE_START_TAG: "2025-11-10", ASSET_PARTITION_RANGE_END_TAG: "2025-11-30"}


@pytest.fixture
def tables_ready(small_resources):
    result = materialize(small_resources, ["catalog", "customers", "reviews"])
    assert result.success
    return small_resources


def _rows(layout: DataLayout, rows: list[dict]) -> pd.DataFrame:
    """Canonical event rows for a known product; each dict overrides the defaults."""
    product = read_frame(layout.table("catalog"))["product_id"].iloc[0]
    base = {"event_time": f"{DAY}T12:00:00Z", "user_id": "U0000001", "session_id": "L1", "event_type": "view",
            "product_id": product, "quantity": 1, "unit_price": 9.99, "order_id": None, "channel": "web"}
    return pd.DataFrame([{**base, **row} for row in rows])[EVENTS.names]


def _drop(layout: DataLayout, name: str, content: bytes | str) -> None:
    layout.landing.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    (layout.landing / name).write_bytes(data)


def _quarantine_reasons(layout: DataLayout) -> dict[str, dict]:
    folder = layout.root / "quarantine" / "files"
    return {json.loads(p.read_text())["file"]: json.loads(p.read_text()) for p in folder.glob("*.reason.json")}


# --------------------------------------------------------------------------- unreadable files


def _bad_landing_files(layout: DataLayout) -> dict[str, str]:
    """Six files no reader can take, and the words their reason must contain."""
    good_csv = _rows(layout, [{"event_id": f"B-{i}"} for i in range(3000)]).to_csv(index=False)
    whole = gzip.compress(good_csv.encode())
    _drop(layout, "cut.csv.gz", whole[: len(whole) // 2])
    _drop(layout, "noise.parquet", os.urandom(4096))
    _drop(layout, "latin1.csv", _rows(layout, [{"event_id": "X-1", "channel": "café"}]).to_csv(index=False).encode("latin-1"))
    _drop(layout, "no_channel.csv", _rows(layout, [{"event_id": "X-2"}]).drop(columns=["channel"]).to_csv(index=False))
    _drop(layout, "ambiguous.csv", _rows(layout, [{"event_id": "X-3", "event_time": "01/08/2025 10:00"},
                                                  {"event_id": "X-4", "event_time": "03/11/2025 11:00"}]).to_csv(index=False))
    _drop(layout, "events.json", '[{"event_id": "X-5"}]')
    return {"cut.csv.gz": "truncated", "noise.parquet": "parquet", "latin1.csv": "utf-8",
            "no_channel.csv": "columns", "ambiguous.csv": "ECOMARKET_SOURCE_DATE_FORMAT", "events.json": "unsupported"}


def test_unreadable_landing_files_are_quarantined_and_the_good_one_ingested(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    expected = _bad_landing_files(layout)
    _drop(layout, "good.csv", _rows(layout, [{"event_id": "G-1"}, {"event_id": "G-2", "event_type": "cart"}]).to_csv(index=False))

    instance = dg.DagsterInstance.ephemeral()
    tick = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, resources=tables_ready))
    assert [r.partition_key for r in tick.run_requests] == [DAY]  # only the good file's day; the tick did not fail
    reasons = _quarantine_reasons(layout)
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        record = reasons[name]
        assert record["problem"].startswith(f"{name}: ")  # the error names the file
        assert words.lower() in (record["problem"] + record["fix"]).lower(), record
        assert os.path.exists(record["stored_as"]) and not (layout.landing / name).exists()  # moved, not copied
    assert sorted(p.name for p in layout.landing.iterdir()) == ["good.csv"]
    again = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, cursor=tick.cursor,
                                                                 resources=tables_ready))
    assert again.run_requests == []  # the cursor advanced past every file

    result = materialize(tables_ready, ["raw_events"], partition_key=DAY)
    assert result.success
    kept = read_frame(layout.raw_events_day(DAY))
    assert {"G-1", "G-2"} <= set(kept["event_id"])
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["quarantined_files"].value == len(expected)
    assert meta["rows_lost"].value == 0
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["landing_files_quarantined"].passed
    assert evaluations["landing_files_quarantined"].severity == dg.AssetCheckSeverity.WARN
    assert evaluations["events_files_reconciled"].passed


def test_an_unreadable_source_file_is_named_with_its_problem_and_fix(tmp_path, data_dir):
    path = tmp_path / "shop_events.csv.gz"
    path.write_bytes(gzip.compress(b"event_id,event_time\n" + b"a,b\n" * 5000)[:300])
    source = ShopSourceResource(kind="canonical", path=str(path))
    with pytest.raises(SourceFileError) as error:
        source.staged(DataLayout(data_dir))
    message = str(error.value)
    assert str(path) in message and "Fix:" in message


# --------------------------------------------------------------------------- every row accounted for


def test_rows_outside_partitions_undated_and_repeated_across_days_go_to_quarantine(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    day_before_start = (pd.Timestamp(daily_partitions.start) - pd.Timedelta(days=1)).strftime("%Y-%m-%dT10:00:00Z")
    rows = _rows(layout, [
        {"event_id": "K-1"},
        {"event_id": "DUP-1"},
        {"event_id": "DUP-1", "event_time": "2025-11-13T09:00:00Z"},  # the same event again the next day
        {"event_id": "F-2030", "event_time": "2030-01-01T00:00:00Z"},
        {"event_id": "F-1970", "event_time": "1970-01-01T00:00:00Z"},
        {"event_id": "F-before", "event_time": day_before_start},
        {"event_id": "F-undated", "event_time": None},
    ])
    _drop(layout, "odd_dates.csv", rows.to_csv(index=False))

    result = materialize(tables_ready, ["raw_events"], tags=WHOLE_SHOP)
    assert result.success
    assert all(checks_by_name(result).values()), checks_by_name(result)

    sources = tables_ready["source"].event_sources(layout)
    files = reconcile_files(sources, set(daily_partitions.get_partition_keys()), layout)
    assert len(files) == 2
    for file in files:  # rows read = kept + quarantined, for every file
        assert file.lost == 0 and file.not_yet_ingested == 0, file
        assert file.read == file.kept + file.quarantined + file.unfiled
    landed = next(f for f in files if "odd_dates.csv" in f.description)
    assert (landed.read, landed.kept, landed.quarantined, landed.unfiled) == (7, 2, 1, 4)

    unfiled = read_frame(layout.unfiled_quarantine("raw_events", next(s.root.name for s in sources
                                                                      if "odd_dates" in s.manifest["description"])))
    assert unfiled.groupby("quarantine_reason")["event_id"].apply(set).to_dict() == {
        "outside_partitions": {"F-2030", "F-1970", "F-before"}, "missing_time": {None}}
    next_day = read_frame(layout.quarantine_day("raw_events", "2025-11-13"))
    repeated = next_day[next_day["event_id"] == "DUP-1"]
    assert repeated["quarantine_reason"].tolist() == ["duplicate_event_id_across_days"]
    kept_ids = pd.concat([read_frame(layout.raw_events_day(d), columns=["event_id"])
                          for d in pd.date_range("2025-11-10", "2025-11-30").strftime("%Y-%m-%d")])
    assert not kept_ids["event_id"].duplicated().any()  # no event is kept on two days


def test_a_landing_file_deleted_after_ingestion_keeps_its_events(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    _drop(layout, "once.csv", _rows(layout, [{"event_id": "ONCE-1"}, {"event_id": "ONCE-2"}]).to_csv(index=False))
    assert materialize(tables_ready, ["raw_events"], partition_key=DAY).success
    (layout.landing / "once.csv").unlink()
    again = materialize(tables_ready, ["raw_events"], partition_key=DAY)
    assert again.success
    assert {"ONCE-1", "ONCE-2"} <= set(read_frame(layout.raw_events_day(DAY))["event_id"])
    archived = landing.newest_copies(layout.root)
    assert list(archived) == ["once.csv"]


def test_a_new_version_of_a_landing_file_replaces_the_old_one(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    _drop(layout, "daily.csv", _rows(layout, [{"event_id": "V1-1"}]).to_csv(index=False))
    assert materialize(tables_ready, ["raw_events"], partition_key=DAY).success
    _drop(layout, "daily.csv", _rows(layout, [{"event_id": "V2-1"}]).to_csv(index=False))
    assert materialize(tables_ready, ["raw_events"], partition_key=DAY).success
    ids = set(read_frame(layout.raw_events_day(DAY))["event_id"])
    assert "V2-1" in ids and "V1-1" not in ids


# --------------------------------------------------------------------------- day/month order


AMBIGUOUS = "event_id,event_time,user_id,session_id,event_type,product_id,quantity,unit_price,order_id,channel\n" \
            "A-1,01/08/2025 10:00,U1,S1,view,P1,1,2.5,,web\nA-2,03/11/2025 11:30,U1,S1,view,P1,1,2.5,,web\n"


def test_ambiguous_day_month_dates_are_refused_unless_declared(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(AMBIGUOUS)
    with pytest.raises(DateOrderError) as error:
        read_canonical(path)
    assert str(path) in str(error.value) and "ECOMARKET_SOURCE_DATE_FORMAT" in str(error.value)
    assert "event_time" in str(error.value)
    day_first = read_canonical(path, date_format="dayfirst").events["event_time"]
    assert day_first.tolist() == [pd.Timestamp("2025-08-01 10:00", tz="UTC"), pd.Timestamp("2025-11-03 11:30", tz="UTC")]
    month_first = read_canonical(path, date_format="monthfirst").events["event_time"]
    assert month_first.iloc[0] == pd.Timestamp("2025-01-08 10:00", tz="UTC")
    strftime = read_canonical(path, date_format="%d/%m/%Y %H:%M").events["event_time"]
    assert strftime.tolist() == day_first.tolist()


def test_a_date_that_settles_the_order_decides_for_the_whole_file(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(AMBIGUOUS + "A-3,25/08/2025 09:00,U1,S1,view,P1,1,2.5,,web\n")
    times = read_canonical(path).events.set_index("event_id")["event_time"]
    assert times["A-1"] == pd.Timestamp("2025-08-01 10:00", tz="UTC")
    assert times["A-3"] == pd.Timestamp("2025-08-25 09:00", tz="UTC")


def test_online_retail_dates_follow_the_same_rule(tmp_path):
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    path = tmp_path / "retail.csv"
    path.write_text(header + "536365,85123A,HEART HOLDER,6,01/08/2011 10:00,2.55,17850,United Kingdom\n")
    with pytest.raises(DateOrderError, match="InvoiceDate"):
        read_online_retail(path)
    events = read_online_retail(path, date_format="dayfirst").events
    assert events["event_time"].iloc[0] == pd.Timestamp("2011-08-01 09:00", tz="UTC")  # 10:00 BST


def test_a_declared_order_ingests_the_landing_file_on_the_right_day(data_dir):
    resources = {"data_dir": DataDirResource(path=str(data_dir)), "compute": ComputeResource(),
                 "source": ShopSourceResource(**SMALL_SIM, date_format="dayfirst")}
    assert materialize(resources, ["catalog", "customers", "reviews"]).success
    layout = DataLayout(data_dir)
    rows = _rows(layout, [{"event_id": "D-1", "event_time": "12/11/2025 10:00"}])  # 12 November, day first
    _drop(layout, "dayfirst.csv", rows.to_csv(index=False))
    assert materialize(resources, ["raw_events"], partition_key=DAY).success
    kept = read_frame(layout.raw_events_day(DAY))
    assert "D-1" in set(kept["event_id"])



def test_an_unreadable_side_table_of_a_source_folder_is_quarantined_and_the_events_carry_on(tmp_path, data_dir):
    folder = tmp_path / "shop"
    folder.mkdir()
    events = "event_id,event_time,user_id,session_id,event_type,product_id,quantity,unit_price,order_id,channel\n" \
             "E-1,2025-11-12T10:00:00Z,U1,S1,purchase,P1,1,2.5,O1,web\n"
    (folder / "events.csv").write_text(events)
    (folder / "customers.csv").write_bytes(b"user_id,signup_time\n" + "U1,ch\xe9\n".encode("latin-1"))
    resources = {"data_dir": DataDirResource(path=str(data_dir)), "compute": ComputeResource(),
                 "source": ShopSourceResource(kind="canonical", path=str(folder))}
    result = materialize(resources, ["catalog", "customers", "reviews"])
    assert result.success
    customers = read_frame(DataLayout(data_dir).table("customers"))
    assert customers["user_id"].tolist() == ["U1"]  # derived from the events instead
    reasons = _quarantine_reasons(DataLayout(data_dir))
    bad = str(folder / "customers.csv")
    assert list(reasons) == [bad]
    assert reasons[bad]["problem"].startswith(f"{bad}: not UTF-8")
    assert (folder / "customers.csv").exists()  # a source file is copied, never moved
