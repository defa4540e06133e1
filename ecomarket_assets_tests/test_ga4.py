"""GA4 BigQuery export (JSON lines and Parquet, as `bq extract` writes them) → canonical tables.

The sample export is hand-written from Google's "GA4 BigQuery Export schema": INT64 fields (event_timestamp,
int_value, quantity) are JSON strings in the NDJSON extract and int64 in Parquet, items and event_params are
repeated records.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ecomarket_assets.ingestion import landing
from ecomarket_assets.ingestion.adapters import detect_format
from ecomarket_assets.ingestion.adapters.ga4 import read_ga4
from ecomarket_assets.ingestion.file_errors import UnsupportedFile
from ecomarket_assets.ingestion.sources import read_source
from ecomarket_assets.storage import DataLayout, read_frame

DAY0 = 1_762_732_800_000_000  # 2025-11-10 00:00 UTC in microseconds
MINUTE = 60_000_000


def _event(name: str, minute: int, pseudo: str, items: list[dict] | None = None, user: str | None = None,
           session: int | None = 1001, transaction: str | None = None, medium: str = "organic",
           platform: str = "WEB", day: int = 0) -> dict:
    record = {
        "event_date": f"202511{10 + day}", "event_timestamp": DAY0 + day * 1440 * MINUTE + minute * MINUTE,
        "event_name": name, "event_bundle_sequence_id": minute,
        "event_params": [{"key": "page_title", "value": {"string_value": "Home"}}]
        + ([{"key": "ga_session_id", "value": {"int_value": session}}] if session is not None else []),
        "user_pseudo_id": pseudo, "platform": platform,
        "device": {"category": "desktop" if platform == "WEB" else "mobile"},
        "traffic_source": {"medium": medium, "source": "google"},
        "items": items or [],
    }
    if user:
        record["user_id"] = user
    if transaction:
        record["ecommerce"] = {"transaction_id": transaction, "purchase_revenue": 55.0}
    return record


MUG = {"item_id": "SKU1", "item_name": "Mug", "item_category": "Kitchen", "price": 12.5}
PLANT = {"item_id": "SKU2", "item_name": "Plant", "item_category": "Garden", "price": 30.0, "quantity": 1}


def sample_events(day: int = 0) -> list[dict]:
    """6 mapped events holding 9 item rows (3 refused), 3 events of other names."""
    return [
        _event("session_start", 0, "111.222", day=day),
        _event("page_view", 0, "111.222", day=day),
        _event("view_item", 1, "111.222", [MUG], day=day),  # no quantity: counts 1
        _event("add_to_cart", 2, "111.222", [MUG | {"quantity": 2}], day=day),
        _event("page_view", 3, "111.222", day=day),
        _event("purchase", 4, "111.222", [MUG | {"quantity": 2}, PLANT], user="U42", transaction="T1",
               medium="email", day=day),
        _event("refund", 30, "111.222", [PLANT], user="U42", transaction="T1", session=None, day=day),
        _event("purchase", 40, "333.444", [{"item_name": "no id", "price": 5.0, "quantity": 1},
                                           {"item_id": "SKU3", "price": 5.0, "quantity": -1},
                                           {"item_id": "SKU3", "price": 5.0, "quantity": 1}],
               session=77, transaction="T2", medium="cpc", platform="IOS", day=day),
        _event("add_to_cart", 41, "333.444", [], session=77, day=day),  # no items
    ]


def _bigquery_json(record: object, key: str = "") -> object:
    """As BigQuery's NDJSON extract writes a row: INT64 values as strings."""
    if isinstance(record, dict):
        return {k: _bigquery_json(v, k) for k, v in record.items()}
    if isinstance(record, list):
        return [_bigquery_json(v) for v in record]
    return str(record) if isinstance(record, int) and not isinstance(record, bool) else record


def write_json(path: Path, records: list[dict], bigquery: bool = True) -> Path:
    lines = "".join(json.dumps(_bigquery_json(r) if bigquery else r) + "\n" for r in records)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(lines.encode()))
    else:
        path.write_text(lines)
    return path


_VALUE = pa.struct([("string_value", pa.string()), ("int_value", pa.int64()), ("float_value", pa.float64()),
                    ("double_value", pa.float64())])
_ITEM = pa.struct([("item_id", pa.string()), ("item_name", pa.string()), ("item_category", pa.string()),
                   ("price", pa.float64()), ("quantity", pa.int64())])
PARQUET_SCHEMA = pa.schema([  # the export's types as a Parquet extract keeps them (a subset of the fields)
    ("event_date", pa.string()), ("event_timestamp", pa.int64()), ("event_name", pa.string()),
    ("event_params", pa.list_(pa.struct([("key", pa.string()), ("value", _VALUE)]))),
    ("event_bundle_sequence_id", pa.int64()), ("user_id", pa.string()), ("user_pseudo_id", pa.string()),
    ("platform", pa.string()), ("device", pa.struct([("category", pa.string())])),
    ("traffic_source", pa.struct([("medium", pa.string()), ("source", pa.string())])),
    ("ecommerce", pa.struct([("transaction_id", pa.string()), ("purchase_revenue", pa.float64())])),
    ("items", pa.list_(_ITEM)),
])


def write_parquet(path: Path, records: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(records, schema=PARQUET_SCHEMA), path)
    return path


def _check_sample(tables) -> None:
    events = tables.events
    assert tables.notes["events_by_type"] == {"purchase": 3, "cart": 1, "view": 1, "return": 1}
    assert tables.notes["other_event_names"] == {"page_view": 2, "session_start": 1}
    assert tables.notes["rejects_by_reason"] == {"missing_item_id": 1, "bad_quantity": 1, "no_items": 1}
    (counts,) = tables.notes["files"].values()
    assert counts == {"source_rows": 9, "other_event_rows": 3, "item_rows": 9, "kept": 6, "rejected": 3}
    assert len(events) + len(tables.rejects) == tables.rows_read == 9
    by_type = events.set_index(["event_type", "product_id"])
    view = by_type.loc[("view", "SKU1")]
    assert view["quantity"] == 1 and view["unit_price"] == 12.5 and view["user_id"] == "111.222"  # pseudo id
    assert view["session_id"] == "111.222-1001" and view["channel"] == "web" and view["order_id"] is None
    assert str(view["event_time"]) == "2025-11-10 00:01:00+00:00"
    purchases = events[events["order_id"] == "T1"]
    assert sorted(purchases["event_type"]) == ["purchase", "purchase", "return"]
    assert set(purchases["user_id"]) == {"U42"} and purchases["event_id"].is_unique  # one event per item
    assert purchases.loc[purchases["event_type"] == "purchase", "channel"].tolist() == ["email", "email"]
    app = events[events["order_id"] == "T2"].iloc[0]
    assert (app["product_id"], app["channel"], app["session_id"]) == ("SKU3", "app", "333.444-77")
    assert (events["quantity"] * events["unit_price"])[events["event_type"] == "purchase"].sum() == 60.0
    catalog = tables.catalog.set_index("product_id")
    assert catalog.loc["SKU1", ["title", "category", "price"]].tolist() == ["Mug", "Kitchen", 12.5]
    assert catalog.loc["SKU3", "title"] == "item SKU3" and catalog.loc["SKU3", "category"] == "unknown"
    assert set(tables.customers["user_id"]) == {"111.222", "U42", "333.444"}
    assert tables.customers["email_opt_in"].isna().all()  # GA4 knows no consent
    rejected = [json.loads(r) for r in tables.rejects["source_record"]]
    assert {r["file"] for r in rejected} == {next(iter(tables.notes["files"]))}


def test_ndjson_extract_maps_items_sessions_refunds_and_counts_other_events(tmp_path):
    path = write_json(tmp_path / "events_20251110.json.gz", sample_events())
    tables = read_ga4(path)
    assert "files_parsed_row_by_row" not in tables.notes  # BigQuery's own types: the Arrow reader
    _check_sample(tables)


def test_parquet_extract_gives_the_same_tables(tmp_path):
    json_tables = read_ga4(write_json(tmp_path / "events_20251110.json", sample_events()))
    parquet = read_ga4(write_parquet(tmp_path / "events_20251110.parquet", sample_events()))
    _check_sample(parquet)
    assert parquet.events.equals(json_tables.events)


def test_hand_written_json_with_numbers_and_a_broken_line(tmp_path):
    path = write_json(tmp_path / "events_20251110.jsonl", sample_events(), bigquery=False)
    path.write_text(path.read_text() + '{"event_name": "purchase", "items": [\n')  # cut off mid-row
    tables = read_ga4(path)
    assert tables.notes["files_parsed_row_by_row"] == ["events_20251110.jsonl"]
    assert tables.notes["rejects_by_reason"]["not_a_json_object"] == 1
    assert tables.notes["files"]["events_20251110.jsonl"]["item_rows"] == 10 == tables.rows_read
    assert tables.notes["events"] == 6


def test_format_detection_by_content(tmp_path):
    assert detect_format(write_json(tmp_path / "events_20251110.json.gz", sample_events())) == "ga4"
    assert detect_format(write_json(tmp_path / "export.jsonl", sample_events())) == "ga4"
    assert detect_format(write_parquet(tmp_path / "events_20251110.parquet", sample_events())) == "ga4"
    shutil.copy(tmp_path / "events_20251110.json.gz", tmp_path / "renamed.csv")  # gzip JSON named .csv
    assert detect_format(tmp_path / "renamed.csv") == "ga4"
    (tmp_path / "other.json").write_text('{"order": 1, "total": 3}\n')
    with pytest.raises(UnsupportedFile, match="only a GA4 BigQuery export"):
        detect_format(tmp_path / "other.json")
    assert read_source("ga4", tmp_path / "export.jsonl").notes["events"] == 6


def _late(day: int = 0) -> list[dict]:
    """The day's table with a late event added (GA4 keeps updating a daily table for up to 3 days)."""
    return [*sample_events(day), _event("purchase", 90, "555.666", [PLANT], transaction="T9", day=day)]


def test_intraday_is_replaced_by_the_daily_table_of_its_day(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    write_json(export / "events_20251110.json.gz", _late())
    write_json(export / "events_intraday_20251110.json.gz", sample_events())  # streamed before the daily existed
    shards = export / "events_intraday_20251111"  # a table extracted as a folder of shards
    shards.mkdir()
    write_json(shards / "000000000000.json.gz", sample_events(day=1)[:5])
    write_json(shards / "000000000001.json.gz", sample_events(day=1)[5:])
    tables = read_ga4(export)
    assert tables.notes["intraday_tables_replaced_by_daily"] == ["events_intraday_20251110.json.gz"]
    days = tables.events["event_time"].dt.strftime("%Y-%m-%d").value_counts().to_dict()
    assert days == {"2025-11-10": 7, "2025-11-11": 6}  # day 10 from the daily table only, with its late event
    assert tables.events["event_id"].is_unique
    assert landing.superseded_intraday(["events_20251110-000000000000.json.gz", "events_intraday_20251110.json",
                                        "events_intraday_20251111.json"]) == {"events_intraday_20251110.json"}


def test_the_writer_round_trip_equals_the_canonical_events(tmp_path):
    from ecomarket_assets.simulator.export_ga4 import write_ga4
    from ecomarket_assets.simulator.shop import SimConfig, simulate

    shop = simulate(SimConfig(n_users=200, n_products=40, n_days=10, start_date=dt.date(2025, 11, 10), seed=5,
                              glitch_share=0.0))
    canonical = shop.tables.events[shop.tables.events["event_type"] != "review"]

    def totals(events):
        revenue = (events["quantity"] * events["unit_price"]).groupby(events["event_type"]).sum().round(2)
        grouped = events.groupby("event_type")
        return {"rows": grouped.size().to_dict(), "units": grouped["quantity"].sum().to_dict(),
                "revenue": revenue.to_dict(), "channels": events["channel"].value_counts().to_dict(),
                "orders": events["order_id"].nunique(), "sessions": events["session_id"].nunique()}

    for parquet in (False, True):
        out = tmp_path / ("parquet" if parquet else "json")
        summary = write_ga4(shop.tables.events, shop.tables.catalog, out, parquet=parquet)
        assert len(summary["files"]) == 10
        tables = read_ga4(out)
        assert tables.notes["rejects"] == 0 and tables.events["event_id"].is_unique
        assert totals(tables.events) == totals(canonical)
        assert set(tables.catalog["product_id"]) == set(canonical["product_id"])
    glitchy = simulate(SimConfig(n_users=200, n_products=40, n_days=10, start_date=dt.date(2025, 11, 10), seed=5,
                                 glitch_share=0.01))
    write_ga4(glitchy.tables.events, glitchy.tables.catalog, tmp_path / "glitchy")
    doubled = read_ga4(tmp_path / "glitchy").events["event_id"].duplicated().sum()
    assert doubled == glitchy.tables.events["event_id"].duplicated().sum() > 0  # caught as duplicates by ingestion


def test_raw_events_materialize_from_a_ga4_folder_and_landed_tables(tmp_path):
    from ecomarket_assets.compute import ComputeResource
    from ecomarket_assets.defs.ingestion import assets, checks, sensors
    from ecomarket_assets.resources import DataDirResource, ShopSourceResource

    data_dir, export, landing_dir = tmp_path / "data", tmp_path / "export", tmp_path / "landing"
    for folder in (data_dir, export, landing_dir):
        folder.mkdir()
    write_json(export / "events_20251110.json.gz", sample_events())
    write_json(export / "events_20251111.json.gz", sample_events(day=1))
    resources = {"data_dir": DataDirResource(path=str(data_dir)), "compute": ComputeResource(),
                 "source": ShopSourceResource(kind="ga4", path=str(export), landing_dir=str(landing_dir))}
    every = [assets.catalog, assets.customers, assets.reviews, assets.raw_events,
             *dg.load_asset_checks_from_modules([checks])]
    assert dg.materialize(every, resources=resources, selection=["catalog", "customers", "reviews"]).success
    layout = DataLayout(data_dir)

    def ingest(day: str) -> tuple[int, int]:
        assert dg.materialize(every, resources=resources, selection=["raw_events"], partition_key=day).success
        return len(read_frame(layout.raw_events_day(day))), len(read_frame(layout.quarantine_day("raw_events", day)))

    assert ingest("2025-11-10") == ingest("2025-11-11") == (6, 3)  # kept, quarantined with their reasons
    # Day 12 streams in as intraday, then its daily table lands; later the daily table changes (a late event).
    write_json(landing_dir / "events_intraday_20251112.json.gz", sample_events(day=2))
    assert ingest("2025-11-12") == (6, 3)
    write_json(landing_dir / "events_20251112.json.gz", sample_events(day=2))
    assert ingest("2025-11-12") == (6, 3)  # the daily table replaced the intraday one: nothing counted twice
    assert set(landing.newest_copies(data_dir)) == {"events_20251112.json.gz"}
    instance = dg.DagsterInstance.ephemeral()
    tick = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    write_json(landing_dir / "events_20251112.json.gz", _late(day=2))
    changed = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, cursor=tick.cursor,
                                                                   resources=resources))
    assert [r.partition_key for r in changed.run_requests] == ["2025-11-12"]
    assert ingest("2025-11-12") == (7, 3)  # the changed daily table re-ingests its day
