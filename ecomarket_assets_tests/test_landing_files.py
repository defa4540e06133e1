"""Landing files as real tools write them, a replaced file leaving every quarantine, and an event collected today
ingested by that night's chain (issue 31: items 5, 8 and 9).

Each bad input is written as the tool writes it (Excel's "CSV UTF-8" with its byte-order mark, exporters that end
every line with a comma, a Parquet file saved as `.csv`, an old `.xls` renamed) and the test asserts what was kept,
what was quarantined with which reason and line, and that rows in = rows kept + rows quarantined.
"""

import csv
import datetime as dt
import gzip
import io
import json
import zipfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.test_utils import freeze_time

from ecomarket_assets.collector.validation import judge_batch
from ecomarket_assets.collector.writer import MicroBatchWriter
from ecomarket_assets.defs.ingestion import sensors
from ecomarket_assets.defs.ingestion.assets import current_days
from ecomarket_assets.defs.operations import automation
from ecomarket_assets.defs.profiles.assets import user_daily_activity
from ecomarket_assets.ingestion import file_quarantine, landing
from ecomarket_assets.ingestion.adapters import (
    detect_format,
    read_canonical,
    read_online_retail,
    read_retailrocket,
)
from ecomarket_assets.ingestion.pipeline import reconcile_files
from ecomarket_assets.partitions import daily_partitions
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.schemas import EVENTS
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets_tests.test_ingestion_assets import (
    ALL_ASSETS,
    ALL_CHECKS,
    checks_by_name,
    materialize,
)

DAY = "2025-11-12"
HEADER = ",".join(EVENTS.names)
BOM = "\ufeff"


def _line(event_id: str, day: str = DAY, product: str = "P1", user: str = "U0000001") -> str:
    return f"{event_id},{day}T12:00:00Z,{user},S1,view,{product},1,9.99,,web"


def _file(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _ids(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["event_id"].dropna())


def _refused(rejects: pd.DataFrame) -> list[dict]:
    """The too_many_fields rejects' records (line, fields, excerpt)."""
    rows = rejects[rejects["quarantine_reason"] == "too_many_fields"]
    return [json.loads(r) for r in rows["source_record"]]


# =========================================================================== the reader, on plain files


def test_a_trailing_comma_on_every_row_keeps_every_row(tmp_path):
    """Issue 31: 0 of 40 valid rows were kept, all quarantined as bad_type_event_time without their ids."""
    path = _file(tmp_path, "trailing.csv", HEADER + "\n" + "".join(_line(f"T-{i}") + ",\n" for i in range(40)))
    tables = read_canonical(path)
    assert _ids(tables.events) == sorted(f"T-{i}" for i in range(40))
    assert len(tables.rejects) == 0
    assert tables.events["event_time"].eq(pd.Timestamp(f"{DAY} 12:00", tz="UTC")).all()
    assert tables.events["channel"].eq("web").all()  # the columns did not shift
    assert tables.notes["events_rows_with_trailing_empty_fields"] == 40


def test_a_first_data_row_with_extra_fields_is_quarantined_with_its_line_and_the_rest_read(tmp_path):
    text = HEADER + "\n" + _line("F-0") + ",extra,more\n" + "".join(_line(f"F-{i}") + "\n" for i in range(1, 4))
    tables = read_canonical(_file(tmp_path, "first.csv", text))
    assert _ids(tables.events) == ["F-1", "F-2", "F-3"]
    assert tables.events["event_time"].notna().all() and tables.events["channel"].eq("web").all()
    [refused] = _refused(tables.rejects)
    assert refused == {"line": 2, "fields": 12, "expected_fields": 10, "excerpt": _line("F-0") + ",extra,more"}
    assert tables.rejects["event_time"].isna().all()  # undated: fields of a ragged row cannot be trusted
    assert tables.rows_read == 4 == len(tables.events) + len(tables.rejects)


def test_ragged_rows_anywhere_go_to_quarantine_with_a_bounded_excerpt(tmp_path):
    long_field = "y" * 10_000
    rows = [
        _line("R-1"),
        'R-2,2025-11-12T12:00:00Z,U0000001,S1,view,P1,1,9.99,,"web\nsite"',  # a quoted line break: rows 3-4
        _line("R-3") + ",unquoted,comma",  # line 5
        _line("R-4"),
        _line("R-5") + "," + long_field,  # line 7
        _line("R-6") + ",,",  # trailing empty fields: kept
        "",  # a blank line
        _line("R-7"),
    ]
    tables = read_canonical(_file(tmp_path, "ragged.csv", HEADER + "\n" + "\n".join(rows) + "\n"))
    assert _ids(tables.events) == ["R-1", "R-2", "R-4", "R-6", "R-7"]
    assert tables.events.set_index("event_id").loc["R-2", "channel"] == "web\nsite"
    refused = _refused(tables.rejects)
    assert [(r["line"], r["fields"]) for r in refused] == [(5, 12), (7, 11)]
    assert refused[0]["excerpt"] == _line("R-3") + ",unquoted,comma"
    assert len(refused[1]["excerpt"]) == 200 and refused[1]["excerpt"].startswith(_line("R-5"))
    assert tables.notes["rejects_by_reason"] == {"too_many_fields": 2}
    assert tables.rows_read == 7


AWKWARD = ["plain", "cr\rinside", "lf\ninside", "crlf\r\ninside", "ls\u2028inside", "nel\x85inside", 'quote"inside',
           "comma,inside", "emoji 🛒 and rtl \u202eabc"]


@pytest.mark.parametrize("extra_row", ["", "trailing comma"], ids=["every_row_fits", "one_row_has_a_trailing_comma"])
def test_fully_quoted_csv_keeps_every_character_inside_its_field(tmp_path, extra_row):
    """The collector writes every field quoted (csv.QUOTE_ALL): \\r, \\n, U+2028 inside a value stay in it, on the
    fast path (every row fits) and on the row-by-row path (a row with a trailing comma sends the file there)."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(EVENTS.names)
    for i, text in enumerate(AWKWARD):
        writer.writerow([f"Q-{i}", f"{DAY}T12:00:00Z", text, "S1", "view", "P1", "1", "9.99", "", text])
    body = out.getvalue() + (f'"Q-x","{DAY}T12:00:00Z","U1","S1","view","P1","1","9.99","","web",\n'
                             if extra_row else "")
    tables = read_canonical(_file(tmp_path, "quoted.csv", body))
    events = tables.events.set_index("event_id")
    assert [events.loc[f"Q-{i}", "user_id"] for i in range(len(AWKWARD))] == AWKWARD
    assert [events.loc[f"Q-{i}", "channel"] for i in range(len(AWKWARD))] == AWKWARD
    assert events["order_id"].isna().all()  # "" is null
    assert len(tables.rejects) == 0 and len(events) == len(AWKWARD) + bool(extra_row)


@pytest.mark.parametrize("compress", [False, True], ids=["csv", "csv.gz"])
def test_excel_csv_utf8_with_a_byte_order_mark_is_read(tmp_path, compress):
    """Issue 31: a UTF-8 file with a BOM was refused as lacking event_id."""
    text = (BOM + HEADER + "\r\n" + _line("B-1", user="Zoë") + "\r\n" + _line("B-2") + "\r\n").encode()
    path = _file(tmp_path, "excel.csv.gz" if compress else "excel.csv", gzip.compress(text) if compress else text)
    assert detect_format(path) == "canonical"
    tables = read_canonical(path)
    assert _ids(tables.events) == ["B-1", "B-2"] and len(tables.rejects) == 0
    assert tables.events["user_id"].tolist() == ["Zoë", "U0000001"]
    assert tables.events["channel"].tolist() == ["web", "web"]  # no \r left on the last column


def _frame(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame([dict(zip(EVENTS.names, _line(i).split(","), strict=True)) for i in ids])


def test_a_readable_format_under_another_extension_is_read_by_its_content(tmp_path):
    """Issue 31: a Parquet file named .csv got a reason listing binary 'columns'."""
    parquet = tmp_path / "export.csv"
    _frame(["P-1", "P-2"]).to_parquet(parquet)
    assert detect_format(parquet) == "canonical"
    tables = read_canonical(parquet)
    assert _ids(tables.events) == ["P-1", "P-2"]
    assert tables.notes["events_format"] == "named as csv but the content is Parquet: read as parquet"
    zipped = _file(tmp_path, "zipped.csv", gzip.compress((HEADER + "\n" + _line("G-1") + "\n").encode()))
    assert _ids(read_canonical(zipped).events) == ["G-1"]
    as_parquet = _file(tmp_path, "text.parquet", HEADER + "\n" + _line("C-1") + "\n")
    assert _ids(read_canonical(as_parquet).events) == ["C-1"]


def _zip(entries: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return out.getvalue()


@pytest.mark.parametrize(("name", "content", "found"), [
    ("old_excel.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "old Excel .xls"),
    ("archive.parquet", _zip({"events.csv": HEADER + "\n"}), "zip archive"),
    ("unicode.csv", (HEADER + "\n").encode("utf-16"), "UTF-16"),
    ("noise.parquet", bytes(range(256)) * 16, "binary data"),
])
def test_content_that_is_no_table_is_refused_naming_the_extension_and_the_content(tmp_path, name, content, found):
    path = _file(tmp_path, name, content)
    with pytest.raises(ValueError) as error:
        detect_format(path)
    message = str(error.value)
    named = name.rsplit(".", 1)[1]
    assert f"named as {named} but the content is" in message and found in message, message


def test_online_retail_and_retailrocket_exports_are_read_the_same_way(tmp_path):
    retail = (BOM + "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\r\n"
              "536365,85123A,HEART HOLDER,6,2011-08-01 10:00:00,2.55,17850,United Kingdom,\r\n"
              "536366,22633,HAND WARMER,6,2011-08-01 11:00:00,1.85,17850,United Kingdom,\r\n"
              "536367,22634,MUG, BLUE,6,2011-08-01 12:00:00,1.85,17850,United Kingdom\r\n")  # unquoted comma
    tables = read_online_retail(_file(tmp_path, "retail.csv", retail))
    assert sorted(tables.events["product_id"]) == ["22633", "85123A"]
    assert [r["line"] for r in _refused(tables.rejects)] == [4]
    assert tables.notes["rows_read"] == 3 == len(tables.events) + len(tables.rejects)
    rocket = ("timestamp,visitorid,event,itemid,transactionid\n1433221332117,257597,view,355908,\n"
              "1433224214164,992329,view,248676,,x\n1433221999827,111016,view,318965,\n")
    tables = read_retailrocket(_file(tmp_path, "events.csv", rocket))
    assert sorted(tables.events["product_id"]) == ["318965", "355908"]
    assert [r["line"] for r in _refused(tables.rejects)] == [3]
    assert tables.notes["rows_read"] == 3 == len(tables.events) + len(tables.rejects)


# =========================================================================== through the sensor and the assets


@pytest.fixture
def tables_ready(small_resources):
    result = materialize(small_resources, ["catalog", "customers", "reviews"])
    assert result.success
    return small_resources


def _product(layout: DataLayout) -> str:
    return read_frame(layout.table("catalog"))["product_id"].iloc[0]


def _drop(layout: DataLayout, name: str, content: str | bytes) -> None:
    layout.landing.mkdir(parents=True, exist_ok=True)
    (layout.landing / name).write_bytes(content.encode() if isinstance(content, str) else content)


def _stage(sources, name: str):
    return next(s for s in sources if s.manifest["description"].endswith(f" {name}"))


def test_landing_files_as_real_tools_write_them_are_ingested_and_every_row_accounted_for(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    product = _product(layout)

    def line(event_id: str) -> str:
        return _line(event_id, product=product)

    _drop(layout, "trailing.csv", HEADER + "\n" + "".join(line(f"T-{i}") + ",\n" for i in range(40)))
    _drop(layout, "first_extra.csv", HEADER + "\n" + line("F-0") + ",x,y\n" + line("F-1") + "\n" + line("F-2") + "\n")
    _drop(layout, "excel.csv", (BOM + HEADER + "\r\n" + line("B-1") + "\r\n" + line("B-2") + "\r\n").encode())
    parquet = io.BytesIO()
    _frame(["P-1", "P-2"]).assign(product_id=product).to_parquet(parquet)
    _drop(layout, "saved_as.csv", parquet.getvalue())
    _drop(layout, "old_excel.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))

    instance = dg.DagsterInstance.ephemeral()
    tick = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, resources=tables_ready))
    assert {r.partition_key for r in tick.run_requests} == {DAY} and len(tick.run_requests) == 4
    [bad] = file_quarantine.quarantined_files(layout.root)
    assert bad.file == "old_excel.csv"
    assert "named as csv but the content is an old Excel .xls" in bad.problem and "extension" in bad.fix

    result = materialize(tables_ready, ["raw_events"], partition_key=DAY)
    assert result.success
    checks = checks_by_name(result)
    assert checks.pop("landing_files_quarantined") is False  # the WARN check lists old_excel.csv
    assert all(checks.values()), checks
    kept = set(read_frame(layout.raw_events_day(DAY))["event_id"])
    expected = {f"T-{i}" for i in range(40)} | {"F-1", "F-2", "B-1", "B-2", "P-1", "P-2"}
    assert expected <= kept and "F-0" not in kept
    quarantined = read_frame(layout.quarantine_day("raw_events", DAY))
    assert not set(quarantined["event_id"].dropna()) & (expected | {"F-0"})

    sources = tables_ready["source"].event_sources(layout)
    first = read_frame(layout.unfiled_quarantine("raw_events", _stage(sources, "first_extra.csv").root.name))
    assert first["quarantine_reason"].tolist() == ["too_many_fields"]
    assert json.loads(first["source_record"].iloc[0])["line"] == 2
    files = {f.description.split(" ", 2)[2]: f for f in
             reconcile_files(sources, set(daily_partitions.get_partition_keys()), layout)
             if f.description.startswith("landing")}
    counts = {name: (f.read, f.kept, f.quarantined, f.unfiled) for name, f in files.items()}
    assert counts == {"trailing.csv": (40, 40, 0, 0), "first_extra.csv": (3, 2, 0, 1), "excel.csv": (2, 2, 0, 0),
                      "saved_as.csv": (2, 2, 0, 0)}
    assert all(f.lost == 0 for f in files.values())


def test_ragged_rows_of_a_side_table_are_quarantined_and_counted(tmp_path, data_dir):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "events.csv").write_text(HEADER + "\n" + _line("E-1") + "\n")
    (folder / "catalog.csv").write_text(
        "product_id,title,description,category,brand,price\n"
        "P1,Mug,,kitchen,,4.5,\n"  # trailing comma
        "P2,Bowl, blue,,kitchen,,3.0\n"  # an unquoted comma: one field too many
        "P3,Plate,,kitchen,,2.0,\n")
    (folder / "customers.csv").write_bytes((BOM + "user_id,country,signup_time,email_opt_in,sms_opt_in,push_opt_in\r\n"
                                            "U0000001,FR,2025-01-01T00:00:00Z,true,false,false\r\n").encode())
    resources = {"data_dir": DataDirResource(path=str(data_dir)), "source": ShopSourceResource(kind="canonical",
                                                                                               path=str(folder))}
    result = dg.materialize(ALL_ASSETS[:3], resources=resources)
    assert result.success
    meta = {m.asset_key.path[-1]: m.metadata for m in
            (e.materialization for e in result.get_asset_materialization_events())}
    assert (meta["catalog"]["rows_read"].value, meta["catalog"]["rows_kept"].value,
            meta["catalog"]["rows_quarantined"].value) == (3, 2, 1)
    layout = DataLayout(data_dir)
    catalog = read_frame(layout.table("catalog"))
    assert sorted(catalog["product_id"]) == ["P1", "P3"] and catalog["price"].tolist() == [4.5, 2.0]
    quarantine = read_frame(layout.quarantine_table("catalog"))
    assert quarantine["quarantine_reason"].tolist() == ["too_many_fields"]
    assert json.loads(quarantine["source_record"].iloc[0])["line"] == 3
    customers = read_frame(layout.table("customers"))
    assert customers["user_id"].tolist() == ["U0000001"] and customers["email_opt_in"].tolist() == [True]


# =========================================================================== a replaced file leaves every quarantine


def test_a_replaced_landing_file_leaves_every_quarantine(tables_ready, data_dir):
    """Issue 31: the old version's rows outside the partitions stayed in the unfiled quarantine."""
    layout = DataLayout(data_dir)
    product = _product(layout)
    other_day = "2025-11-13"
    v1 = [_line("V1-kept", product=product), _line("V1-2030", day="2030-01-01", product=product),
          _line("V1-unknown", day=other_day, product="no-such-product"),
          "V1-undated,,U0000001,S1,view,P1,1,9.99,,web"]
    _drop(layout, "daily.csv", HEADER + "\n" + "\n".join(v1) + "\n")
    instance = dg.DagsterInstance.ephemeral()
    first = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, resources=tables_ready))
    assert sorted(r.partition_key for r in first.run_requests) == [DAY, other_day]
    for request in first.run_requests:
        assert materialize(tables_ready, ["raw_events"], partition_key=request.partition_key).success
    v1_stage = _stage(tables_ready["source"].event_sources(layout), "daily.csv").root.name
    unfiled = read_frame(layout.unfiled_quarantine("raw_events", v1_stage))
    assert sorted(unfiled["quarantine_reason"]) == ["missing_time", "outside_partitions"]
    assert "V1-unknown" in set(read_frame(layout.quarantine_day("raw_events", other_day))["event_id"])

    _drop(layout, "daily.csv", HEADER + "\n" + _line("V2-kept", product=product) + "\n")  # same name, new content
    second = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor,
                                                                  resources=tables_ready))
    assert sorted(r.partition_key for r in second.run_requests) == [DAY, other_day]  # the old version's days too
    for request in second.run_requests:
        assert materialize(tables_ready, ["raw_events"], partition_key=request.partition_key).success

    assert not layout.unfiled_quarantine("raw_events", v1_stage).exists()
    everywhere = [read_frame(p) for p in (layout.root / "quarantine" / "raw_events").rglob("*.parquet")]
    records = pd.concat(everywhere, ignore_index=True)
    assert not records["event_id"].fillna("").str.startswith("V1-").any()
    assert not records["source_record"].fillna("").str.contains("V1-").any()
    assert "V1-kept" not in set(read_frame(layout.raw_events_day(DAY))["event_id"])
    assert "V2-kept" in set(read_frame(layout.raw_events_day(DAY))["event_id"])


def test_a_readable_version_of_a_quarantined_file_releases_it(tables_ready, data_dir):
    layout = DataLayout(data_dir)
    _drop(layout, "shop.csv", (HEADER + "\n" + _line("L-1").replace(",web", ",café") + "\n").encode("latin-1"))
    source = tables_ready["source"]
    [bad] = source.intake_landing(layout).quarantined
    assert "UTF-8" in bad.problem + bad.fix
    _drop(layout, "shop.csv", HEADER + "\n" + _line("L-1", product=_product(layout)) + "\n")
    done = source.intake_landing(layout)
    assert len(done.archived) == 1
    assert file_quarantine.quarantined_files(layout.root) == []
    assert not Path(bad.stored_as).exists()
    tick = sensors.landing_files_sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                                                resources=tables_ready))
    assert [r.partition_key for r in tick.run_requests] == [DAY]
    result = materialize(tables_ready, ["raw_events"], partition_key=DAY)
    assert result.success and checks_by_name(result)["landing_files_quarantined"]


# =========================================================================== an event collected today


TODAY = "2025-12-01"  # the day after the small simulated shop's 21 days


def _collect(layout: DataLayout, product: str, when: str) -> Path:
    """One event through the collector's validation and durable writer, its micro-batch file closed."""
    record = {"event_id": "C-today", "event_time": when, "user_id": "U0000001", "session_id": "live-1",
              "event_type": "cart", "product_id": product, "quantity": 1, "unit_price": 12.5, "order_id": None,
              "channel": "web"}
    writer = MicroBatchWriter(layout.landing, layout.root)
    writer.start()
    judged = judge_batch([record], {product})
    assert len(judged.kept) == 1, judged.rejects
    writer.store("shop", judged.kept, judged.rejects)
    [closed] = writer.close()
    return closed


def test_an_event_collected_today_is_ingested_by_that_nights_chain(small_resources, data_dir):
    """Issue 31: the landing sensor quarantined today's rows as outside_partitions and marked the file as seen."""
    layout = DataLayout(data_dir)
    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(assets=[*ALL_ASSETS, user_daily_activity], asset_checks=ALL_CHECKS,
                          jobs=[automation.daily_ingest_job], schedules=[automation.daily_ingestion_schedule],
                          sensors=[sensors.landing_files_sensor], resources=small_resources)
    afternoon = dt.datetime(2025, 12, 1, 15, 0, tzinfo=dt.UTC)
    with freeze_time(afternoon):  # Dagster's clock: its partitions, schedules and runs (no public API moves it)
        assert daily_partitions.get_partition_keys()[-1] == "2025-11-30"  # today has no partition yet
        assert materialize(small_resources, ["catalog", "customers", "reviews"], instance=instance).success
        collected = _collect(layout, _product(layout), f"{TODAY}T14:59:00Z")
        tick = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, resources=small_resources))
        assert tick.run_requests == []  # nothing to run before the day is over ...
        assert json.loads(tick.cursor) == {collected.name: landing.newest_copies(layout.root)[collected.name].name}
        # ... and a run of another day meanwhile leaves today's rows waiting, not quarantined
        run = materialize(small_resources, ["raw_events"], partition_key="2025-11-30", instance=instance)
        assert run.success
        unfiled = list((layout.root / "quarantine" / "raw_events" / "unfiled").glob("*.parquet"))
        assert all("C-today" not in set(read_frame(p)["event_id"].dropna()) for p in unfiled)
        assert all(checks_by_name(run).values()), checks_by_name(run)
        assert run.get_asset_materialization_events()[0].materialization.metadata["rows_lost"].value == 0
        sources = small_resources["source"].event_sources(layout)
        partition_days, waiting_days = current_days()
        [waiting] = [f for f in reconcile_files(sources, partition_days, layout, waiting_days)
                     if collected.name in f.description]
        assert (waiting.read, waiting.kept, waiting.quarantined, waiting.unfiled, waiting.not_yet_ingested) == (1, 0, 0, 0, 1)

    night = dt.datetime(2025, 12, 2, 1, 0, tzinfo=dt.UTC)
    with freeze_time(night):
        schedule = defs.resolve_schedule_def("daily_ingestion_schedule")
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=night)
        [request] = schedule.evaluate_tick(context).run_requests
        assert request.partition_key == TODAY
        job = defs.resolve_job_def("daily_ingest_job")
        result = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)
        assert result.success and all(checks_by_name(result).values()), checks_by_name(result)
        again = sensors.landing_files_sensor(dg.build_sensor_context(instance=instance, cursor=tick.cursor,
                                                                     resources=small_resources))
        assert again.run_requests == []  # the file was not forgotten: the schedule ingested its day

    stored = read_frame(layout.raw_events_day(TODAY))
    event = stored[stored["event_id"] == "C-today"]
    assert len(event) == 1 and event["event_time"].iloc[0] == pd.Timestamp(f"{TODAY} 14:59", tz="UTC")
    assert event["unit_price"].iloc[0] == 12.5 and event["session_id"].iloc[0] == "live-1"
    quarantine = read_frame(layout.quarantine_day("raw_events", TODAY))
    assert "C-today" not in set(quarantine["event_id"].dropna())
    unfiled = list((layout.root / "quarantine" / "raw_events" / "unfiled").glob("*.parquet"))
    assert all("C-today" not in set(read_frame(p)["event_id"].dropna()) for p in unfiled)
    activity = read_frame(layout.activity_day("interactions", TODAY))
    assert "U0000001" in set(activity["user_id"])
