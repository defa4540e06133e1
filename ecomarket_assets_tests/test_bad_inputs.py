"""Bad inputs and faults a new user runs into, driven through the real assets and the landing sensor.

Each test names the input and asserts the outcome: the reason given (naming the file and field), counts
that reconcile, the other files still ingested, nobody suppressed or unconsented in any exported file,
no spreadsheet formula in a CSV cell, and no row lost. Three parts: ingestion (files and rows),
campaigns (suppression, exports, consent, empty lists), campaign rules and subject templates.
"""


import csv
import gzip
import json
import os
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from ecomarket_assets.campaigns import explain
from ecomarket_assets.campaigns.consent import Consent
from ecomarket_assets.campaigns.guards import export_violations, formula_cells
from ecomarket_assets.campaigns.planner import plan_campaigns
from ecomarket_assets.campaigns.rules import MAX_LITERAL, RuleError, parse_rule
from ecomarket_assets.campaigns.specs import (
    ELLIPSIS,
    MAX_FORMAT_WIDTH,
    MAX_SUBJECT_LENGTH,
    MAX_TEMPLATE_LENGTH,
    SpecError,
    load_specs,
)
from ecomarket_assets.campaigns.store import (
    MODEL_NAME,
    CampaignStore,
    SuppressionFileError,
    export_lists,
    neutralise_cell,
    read_suppression_file,
    spreadsheet_safe,
)
from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.ingestion import consent_checks, sensors
from ecomarket_assets.ingestion import consent, landing
from ecomarket_assets.ingestion.adapters import read_canonical, read_online_retail
from ecomarket_assets.ingestion.adapters.dates import DateOrderError
from ecomarket_assets.ingestion.pipeline import reconcile_files
from ecomarket_assets.ingestion.sources import SourceFileError
from ecomarket_assets.partitions import daily_partitions, partition_range_tags
from ecomarket_assets.recommender.store import RecStore
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.schemas import EVENTS
from ecomarket_assets.storage import DataLayout, read_frame, write_frame
from ecomarket_assets_tests.conftest import SMALL_SIM
from ecomarket_assets_tests.test_campaign_assets import (
    CAMPAIGNS,
    EVERYTHING,
    RANGE,
    SIM,
    _folder,
    _meta,
    build_campaign_shop,
)
from ecomarket_assets_tests.test_campaigns import START, build, customers_of, make_spec, make_users
from ecomarket_assets_tests.test_definitions import load_in_fresh_process
from ecomarket_assets_tests.test_ingestion_assets import checks_by_name, materialize

# =========================================================================== ingestion: files and rows
# Bad inputs and faults a new user runs into, driven through the real assets and the landing sensor.
#
# Each test names the input, asserts the outcome (the reason given, counts that reconcile, the other files
# still ingested) and that no row is lost.


DAY = "2025-11-12"
WHOLE_SHOP = partition_range_tags("2025-11-10", "2025-11-30")


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


def test_a_sensor_tick_does_not_reread_unchanged_landing_files(tables_ready, data_dir, monkeypatch):
    layout = DataLayout(data_dir)
    _drop(layout, "big.csv", _rows(layout, [{"event_id": "BIG-1"}]).to_csv(index=False))
    source = tables_ready["source"]
    assert len(source.intake_landing(layout).archived) == 1

    def no_rereading(path):
        raise AssertionError(f"{path} was hashed again although unchanged")

    monkeypatch.setattr(landing, "sha256", no_rereading)
    again = source.intake_landing(layout)
    assert again.archived == [] and again.quarantined == []


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


# =========================================================================== campaigns: suppression, exports, consent, empty lists
# Campaigns on bad or missing inputs: suppression files of every kind, stale exports, formula-like product titles,
# customers without consent, and consent brought in from its own files.


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CONSENT_HEADER = "user_id,email_opt_in,sms_opt_in,push_opt_in,updated_at\n"


# --------------------------------------------------------------------------- suppression files


def test_suppression_reads_every_format_whatever_the_case_of_its_name(tmp_path):
    folder = tmp_path / "suppression"
    folder.mkdir()
    (folder / "OPTOUT.CSV").write_text("User_ID,reason\n17850.0,asked\n  U7 ,complaint\n,blank\n")
    (folder / "bounces.csv.gz").write_bytes(gzip.compress(b"email,user_id\na@x.org,U1\nb@x.org,12346\n"))
    (folder / "ids.txt").write_text("U2\n\n  U3  \n17851.0\n")
    (folder / "Legal.TXT").write_text("user_id,source\nU4,legal\n")
    pd.DataFrame({"user_id": [17852, 17853]}).to_parquet(folder / "crm.PARQUET")
    (folder / ".~lock.OPTOUT.CSV#").write_bytes(b"\x00\xff not a list")  # an editor's lock file: skipped
    store = CampaignStore(DataLayout(tmp_path))
    suppressed, table = store.suppressed_users()
    assert suppressed == {"17850", "U7", "U1", "12346", "U2", "U3", "17851", "U4", "17852", "17853"}
    assert table.groupby("list").size().to_dict() == {"OPTOUT.CSV": 2, "bounces.csv.gz": 2, "ids.txt": 3,
                                                      "Legal.TXT": 1, "crm.PARQUET": 2}


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("broken.parquet", b"PAR1 this is not parquet", "cannot read as .parquet"),
    ("bounces.csv.gz", b"user_id\nU1\n", "cannot read as .csv.gz"),  # not gzip at all
    ("optout.csv", b"email,reason\na@x.org,asked\n", "no user_id column"),
    ("optout.csv", b"", "cannot read as .csv"),
    ("ids.xlsx", b"PK\x03\x04", "unsupported file type"),
    ("latin1.csv", "user_id,name\nU1,Jos\xe9\n".encode("latin-1"), "cannot read as .csv"),
])
def test_an_unusable_suppression_file_fails_naming_the_file(tmp_path, name, content, problem):
    store = CampaignStore(DataLayout(tmp_path))
    store.suppression.mkdir()
    (store.suppression / "good.csv").write_text("user_id\nU1\n")
    (store.suppression / name).write_bytes(content)
    with pytest.raises(SuppressionFileError) as caught:
        read_suppression_file(store.suppression / name)
    assert name in str(caught.value) and problem in str(caught.value)
    with pytest.raises(SuppressionFileError, match=name.replace(".", r"\.")):
        store.suppressed_users()  # the folder reader never skips it either


# --------------------------------------------------------------------------- spreadsheet-safe exports


def test_csv_text_cells_are_neutralised_and_numbers_dates_and_parquet_are_not(tmp_path):
    frame = pd.DataFrame({"title": ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3",
                                    "\tTab", "\rCR", "plain", None],
                          "value": [-1.5, 2.0, -3.0, 0.0, 1.0, 1.0, 1.0, 1.0]})
    safe = spreadsheet_safe(frame)
    assert safe["title"].tolist() == ['\'=HYPERLINK("http://x","y")', "'+cmd|' /C calc'!A0", "'@SUM(1)", "'-2+3",
                                      "'\tTab", "'\rCR", "plain", None]
    assert safe["value"].tolist() == frame["value"].tolist()  # a negative number is a number, not a formula
    assert neutralise_cell("'=already quoted") == "'=already quoted" and neutralise_cell(5) == 5
    cells = pd.DataFrame([["-1.5", "1e-3", "'=x", "=1+1", "-A1", "+1", "x"]])
    assert formula_cells(cells) == 2  # "=1+1" and "-A1"; "-1.5", "1e-3" and "+1" are numbers

    users = make_users(120)
    spec = make_spec(products={"count": 2})
    audiences = build([spec], users)
    titles = audiences["product_titles"].map(lambda t: ["=EVIL()", "\rline\nbreak"] if isinstance(t, list) else t)
    plan = plan_campaigns([spec], audiences.assign(product_titles=titles), START, 7)
    export_lists(plan.lists, tmp_path / "exports", tmp_path / "control")
    day = plan.lists["send_date"].min().isoformat()
    stem = tmp_path / "exports" / spec.name / day / f"{spec.name}_{day}"
    with open(stem.with_suffix(".csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    on_day = plan.lists[plan.lists["send_date"].astype(str) == day]
    assert len(rows) == (on_day["group"] == "treatment").sum() > 0  # the line breaks split no row
    assert {r["product_1_title"] for r in rows} == {"'=EVIL()"} and {r["product_2_title"] for r in rows} == {"'\rline\nbreak"}
    assert set(pd.read_parquet(stem.with_suffix(".parquet"))["product_1_title"]) == {"=EVIL()"}


def test_export_check_finds_stray_missing_suppressed_and_unescaped_files(tmp_path):
    users = make_users(200)
    spec = make_spec(budget={"max_recipients": 30})
    plan = plan_campaigns([spec], build([spec], users), START, 14)
    exports, control = tmp_path / "exports", tmp_path / "control"
    export_lists(plan.lists, exports, control)
    customers = customers_of(users)
    violations, counts = export_violations(exports, plan.lists, Consent.of(customers), control)
    assert not any(violations.values())
    treated = int((plan.lists["group"] == "treatment").sum())
    assert counts["csv_rows"] == counts["parquet_rows"] == treated > 0 and counts["files"] == 8
    assert counts["control_csv_rows"] == counts["control_parquet_rows"] == len(plan.lists) - treated > 0

    first, second = sorted(exports.glob("*/*/*.csv"))
    (exports / "old_campaign" / "2020-01-06").mkdir(parents=True)
    (exports / "old_campaign" / "2020-01-06" / "old_campaign_2020-01-06.csv").write_text("user_id\nU0001\n")
    second.unlink()
    rows = first.read_text().splitlines()
    rows[1] = "=cmd()," + rows[1].split(",", 1)[1]  # the campaign cell of one row now runs as a formula
    first.write_text("\n".join(rows) + "\nstray\rline\n")  # and a row split by a bare carriage return
    victim = plan.lists.loc[plan.lists["group"] == "treatment", "user_id"].iloc[0]
    violations, _ = export_violations(exports, plan.lists, Consent.of(customers, {victim}), control)
    assert violations["stray_files"] == 1 and violations["missing_files"] == 1
    assert violations["formula_cells"] == 1 and violations["malformed_csv_rows"] == 2
    assert violations["suppressed_rows"] == 2  # in its CSV and in its Parquet
    assert violations["rows_not_in_lists"] == 1  # the row whose campaign is now "=cmd()"
    no_consent = customers.assign(email_opt_in=pd.array([pd.NA] * len(customers), dtype="boolean"))
    email_rows = int((plan.lists["channel"] == "email").sum())
    assert export_violations(exports, plan.lists, Consent.of(no_consent), control)[0]["no_consent_rows"] >= email_rows > 0
    control_file = next(control.rglob("*.csv"))
    (exports / control_file.relative_to(control).parent / control_file.name.replace("_control", "")).write_text(
        control_file.read_text())  # the control group pasted over a send's marketing file
    assert export_violations(exports, plan.lists, Consent.of(customers), control)[0]["control_rows_in_marketing_files"] > 0

    exports_again, control_again = tmp_path / "again", tmp_path / "again_control"
    export_lists(plan.lists, exports_again, control_again)
    (exports_again / "stale.csv").write_text("user_id\nU1\n")
    export_lists(plan.lists, exports_again, control_again)  # a rerun replaces the whole tree
    assert not (exports_again / "stale.csv").exists()
    assert not any(export_violations(exports_again, plan.lists, Consent.of(customers), control_again)[0].values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no build folder left behind


# --------------------------------------------------------------------------- consent files


def _customers(ids, email=None, sms=None, push=None) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({"user_id": ids, "signup_time": pd.to_datetime([None] * n, utc=True), "country": "UK",
                         "email_opt_in": pd.array(email or [pd.NA] * n, dtype="boolean"),
                         "sms_opt_in": pd.array(sms or [pd.NA] * n, dtype="boolean"),
                         "push_opt_in": pd.array(push or [pd.NA] * n, dtype="boolean")})


def _flags(customers: pd.DataFrame, user: str) -> list:
    row = customers.set_index("user_id").loc[user, list(consent.FLAGS)]
    return [None if pd.isna(v) else bool(v) for v in row]


def test_consent_latest_row_wins_across_files_and_absent_users_keep_the_source(tmp_path):
    folder = tmp_path / "consent"
    folder.mkdir()
    (folder / "a_newsletter.csv").write_text(
        CONSENT_HEADER
        + "17850.0,yes,no,,2025-03-01T10:00:00Z\n"  # newest for 17850: email only, push unknown
        + "U2,1,1,1,2025-01-01\n"  # superseded by the Parquet row of 2025-02-01
        + "U3,no,no,no,2025-05-01\n"  # tie with b_crm.csv.gz: the later file wins
        + "GHOST,yes,yes,yes,2025-01-01\n")  # not a customer of the shop
    (folder / "b_crm.csv.gz").write_bytes(gzip.compress((CONSENT_HEADER + "U3,TRUE,False,0,2025-05-01\n"
                                                         + "17850,true,true,true,2025-02-01\n").encode()))
    pd.DataFrame({"user_id": ["U2"], "email_opt_in": [False], "sms_opt_in": [True], "push_opt_in": [None],
                  "updated_at": pd.to_datetime(["2025-02-01"], utc=True)}).to_parquet(folder / "c.parquet")
    source = _customers(["17850", "U2", "U3", "U9"], email=[False, False, False, True], sms=[True, True, True, True],
                        push=[True, True, True, False])
    rows = consent.read_consent(folder)
    merged, report = consent.apply_consent(source, rows)
    assert _flags(merged, "17850") == [True, False, None]  # the 2025-03-01 row, its empty push = unknown
    assert _flags(merged, "U2") == [False, True, None]  # Parquet 2025-02-01 beats CSV 2025-01-01
    assert _flags(merged, "U3") == [True, False, False]  # same time: b_crm.csv.gz (later by name) wins
    assert _flags(merged, "U9") == [True, True, False]  # not in any file: the source's flags
    assert (report.files, report.rows_read, report.rows_quarantined) == (3, 7, 0)
    assert (report.rows_applied, report.rows_superseded, report.users_unknown) == (3, 3, 1)
    assert report.users_updated == 3
    assert consent.flag_mismatches(merged, rows.valid).empty
    assert set(consent.flag_mismatches(source, rows.valid)["user_id"]) == {"17850", "U2", "U3"}


def test_bad_consent_rows_are_quarantined_with_counts_that_reconcile(tmp_path):
    folder = tmp_path / "consent"
    folder.mkdir()
    (folder / "export.csv").write_text(
        CONSENT_HEADER
        + "U1,yes,no,no,2025-01-01\n"
        + ",yes,no,no,2025-01-01\n"  # missing_user_id
        + "U2,yes,no,no,\n"  # missing_updated_at
        + "U3,yes,no,no,last tuesday\n"  # bad_updated_at
        + "U4,maybe,no,no,2025-01-01\n"  # bad_email_opt_in
        + "U5,yes,no,2,2025-01-01\n"  # bad_push_opt_in
        + "U1,no,no,no,2024-12-01\n")  # valid, superseded by the first row
    layout = DataLayout(tmp_path / "data")
    rows = consent.read_consent(folder)
    assert rows.reasons == {"missing_user_id": 1, "missing_updated_at": 1, "bad_updated_at": 1,
                            "bad_email_opt_in": 1, "bad_push_opt_in": 1}
    merged, report = consent.store_consent(layout, _customers(["U1", "U2", "U3"]), rows, folder)
    assert report.rows_read == 7 == report.rows_quarantined + report.rows_superseded + report.rows_applied + report.users_unknown
    assert (report.rows_quarantined, report.rows_superseded, report.rows_applied) == (5, 1, 1)
    assert merged.set_index("user_id").loc["U2", "email_opt_in"] is pd.NA  # its only row is quarantined
    stored = read_frame(layout.quarantine_table("consent"))
    assert sorted(stored["quarantine_reason"]) == sorted(rows.reasons)
    assert stored.set_index("quarantine_reason").loc["bad_updated_at", "updated_at"] == "last tuesday"
    assert stored["source_row"].tolist() == ["2", "3", "4", "5", "6"] and set(stored["source_file"]) == {"export.csv"}
    assert read_frame(layout.table("customers")).set_index("user_id").loc["U1", "email_opt_in"]
    passed, meta = consent.check_customers(layout)
    assert passed and meta["flag_mismatches"] == 0 and meta["rows_quarantined"] == 5

    (folder / "late.csv").write_text(CONSENT_HEADER + "U3,yes,yes,yes,2025-06-01\n")  # customers is now stale
    passed, meta = consent.check_customers(layout)
    assert not passed and meta["flag_mismatches"] == 1 and meta["files_changed_since_materialization"] == 1


def test_consent_files_as_exporters_write_them(tmp_path):
    """Trailing commas, Excel's BOM and a row with too many fields: read by header, the long row quarantined."""
    folder = tmp_path / "consent"
    folder.mkdir()
    (folder / "trailing.csv").write_text(CONSENT_HEADER + "U1,no,no,no,2025-01-01,\n" + "U2,yes,no,no,2025-01-01,\n")
    (folder / "excel.csv").write_bytes(b"\xef\xbb\xbf" + (CONSENT_HEADER + "U3,yes,yes,no,2025-01-01\n").encode())
    (folder / "ragged.csv").write_text(CONSENT_HEADER + "U4,yes,yes,yes,2025-01-01,extra\n" + "U5,no,yes,no,2025-01-01\n")
    rows = consent.read_consent(folder)
    valid = rows.valid.set_index("user_id")
    assert sorted(valid.index) == ["U1", "U2", "U3", "U5"]
    assert [bool(valid.loc[u, "email_opt_in"]) for u in ("U1", "U2", "U3", "U5")] == [False, True, True, False]
    assert rows.reasons == {"too_many_fields": 1} and rows.rows_read == 5
    ragged = rows.quarantined.iloc[0]
    assert (ragged["user_id"], ragged["source_file"], ragged["source_row"]) == ("U4", "ragged.csv", "1")


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("consent.csv", b"user_id,email_opt_in,updated_at\nU1,yes,2025-01-01\n", "missing columns ['sms_opt_in', 'push_opt_in']"),
    ("consent.csv.gz", b"not gzip", "missing columns"),  # text named .csv.gz: read as the CSV it is
    ("consent.parquet", b"PAR1 nope", "cannot read as .parquet"),
    ("consent.json", b"{}", "unsupported file type"),
])
def test_an_unusable_consent_file_fails_naming_the_file(tmp_path, name, content, problem):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(consent.ConsentFileError) as caught:
        consent.read_consent(tmp_path)
    assert name in str(caught.value) and problem in str(caught.value)


# --------------------------------------------------------------------------- why empty


def test_empty_reasons_come_from_the_funnels():
    users = make_users(100)
    spec, other = make_spec(), make_spec("vip", audience={"rule": "orders > 1000"})
    unknown = users.assign(**{f: pd.array([pd.NA] * len(users), dtype="boolean") for f in consent.FLAGS})
    audiences = build([spec, other], unknown)
    funnel = explain.audience_funnel(audiences, [spec.name, other.name])
    assert funnel.set_index("campaign").loc["vip", "matched"] == 0  # a rule matching nobody is still listed
    reasons = explain.campaign_audience_reasons(funnel, [spec, other])
    assert reasons["vip"] == "its audience rule matches no customer"
    assert reasons["cross_sell"].startswith("none of its") and "known consent for sms, email or push" in reasons["cross_sell"]
    assert explain.audience_empty_reason(funnel[funnel["campaign"] == "cross_sell"], [spec], unknown) == \
        "no customer has known consent for sms, email or push"
    assert explain.audience_empty_reason(funnel, [spec.model_copy(update={"enabled": False})]) == "no enabled campaign"
    some = set(audiences.loc[audiences["campaign"] == spec.name, "user_id"].head(3))
    mixed = explain.audience_funnel(build([spec], unknown, suppressed=some))
    assert explain.audience_empty_reason(mixed, [spec], unknown) == \
        "no customer has known consent for sms, email or push (and 3 matched customers are on a suppression list)"
    assert explain.audience_empty_reason(mixed, [spec], users) == \
        "no matched customer has known consent for sms, email or push (and 3 matched customers are on a suppression list)"
    plan = plan_campaigns([spec], build([spec], users), START, 14)
    assert explain.lists_empty_reason(plan.lists, plan.funnel, funnel, [spec]) is None
    friday = make_spec("friday", schedule={"weekdays": ["fri"], "start_hour": 9, "end_hour": 20})
    audience = build([friday], users)
    plan = plan_campaigns([friday], audience, START, 3)  # Monday to Wednesday: no Friday
    reasons = explain.campaign_list_reasons(plan.lists, plan.funnel, explain.audience_funnel(audience), [friday])
    assert reasons == {"friday": "no send date in the horizon falls on its weekdays (fri)"}
    sends = pd.DataFrame({"complete": [False, False], "window_end": pd.to_datetime(["2025-12-09", "2025-12-08"])})
    assert explain.results_empty_reason(sends[:0]) == "no campaign sends yet"
    assert explain.results_empty_reason(sends).endswith("(2 sends waiting; the first closes on 2025-12-08)")
    rng = np.random.default_rng(0)
    done = pd.DataFrame({"complete": True, "window_end": pd.Timestamp("2025-12-08"),
                         "group": rng.choice(["treatment", "control"], 150, p=[0.8, 0.2])})
    assert "need" in explain.uplift_shortfall(done, done, ["d1", "d2"], 50) and "at least 50 per arm" in \
        explain.uplift_shortfall(done, done, ["d1", "d2"], 50)
    assert explain.uplift_shortfall(done, done, ["d1"], 10).startswith("completed sends on 1 send date")
    assert explain.uplift_shortfall(done, done, ["d1", "d2"], 10) is None


# --------------------------------------------------------------------------- the real assets on a small shop


BAD_INPUTS_SIM = {**SIM, "sim_users": 700}  # the campaign shop of test_campaign_assets, smaller: lists, not uplift


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    everything = [*EVERYTHING, *dg.load_asset_checks_from_modules([consent_checks])]
    tracking, run, first = build_campaign_shop(root, BAD_INPUTS_SIM, RANGE, everything,
                                               ["campaign_specs", "campaign_audiences", "campaign_lists"])
    layout = DataLayout(root / "data")
    return {"root": root, "layout": layout, "store": CampaignStore(layout), "tracking": tracking, "run": run,
            "first": first}


def _export_files(store: CampaignStore) -> list:
    """Every file campaign_lists hands out: the marketing tree and the control group's."""
    return sorted(p for tree in (store.exports, store.control) for p in tree.rglob("*") if p.is_file())


def _csv_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _expected_files(store: CampaignStore, lists: pd.DataFrame) -> list:
    sends = lists[["campaign", "send_date", "group"]].drop_duplicates()
    trees = {"treatment": (store.exports, ""), "control": (store.control, "_control")}
    return sorted(trees[g][0] / c / d.isoformat() / f"{c}_{d.isoformat()}{trees[g][1]}{s}"
                  for c, d, g in sends.itertuples(index=False) for s in (".csv", ".parquet"))


def _evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_new_suppression_file_removes_its_users_from_every_export_file(shop):
    store, run = shop["store"], shop["run"]
    before = store.read_lists()
    assert checks_by_name(shop["first"])["campaign_exports_match_lists"]
    exported = sorted({r["user_id"] for p in _export_files(store) if p.suffix == ".csv" for r in _csv_rows(p)})
    assert len(exported) > 20 and set(exported) == set(before["user_id"])
    optout, bounced = exported[:6], exported[6:9]
    store.suppression.mkdir(parents=True, exist_ok=True)
    (store.suppression / "OPTOUT.CSV").write_text("User_ID\n" + "\n".join(f" {u} " for u in optout) + "\n")
    (store.suppression / "bounces.csv.gz").write_bytes(gzip.compress(("user_id\n" + "\n".join(bounced)).encode()))
    stale = store.exports / "spring_sale" / "2024-03-01" / "spring_sale_2024-03-01.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("user_id,channel\n" + "\n".join(optout) + "\n")  # a campaign deleted since: stale file

    result = run(["campaign_audiences", "campaign_lists"])
    assert result.success
    checks = checks_by_name(result)
    assert checks["campaign_exports_match_lists"] and checks["campaign_lists_respect_rules"]
    audiences = read_frame(store.audiences_path)
    removed = audiences[audiences["user_id"].isin(optout + bounced)]
    assert len(removed) >= 9 and (removed["removed_by"] == "suppressed").all()
    assert "OPTOUT.CSV" in _meta(result, "campaign_audiences")["suppression_lists"]
    after = store.read_lists()
    files = _export_files(store)
    assert files == _expected_files(store, after)  # nothing stale, nothing missing
    assert not stale.exists() and not (store.exports / "spring_sale").exists()
    seen = set()
    for path in files:
        ids = [r["user_id"] for r in _csv_rows(path)] if path.suffix == ".csv" else read_frame(path)["user_id"].tolist()
        seen |= set(ids)
    assert seen == set(after["user_id"]) and not seen & set(optout + bounced)
    assert not [p for p in store.exports.parent.iterdir() if p.name.startswith(".")]  # no build folder left
    meta = _meta(result, "campaign_lists")
    assert meta["export_files"] + meta["control_files"] == len(files)


def test_formula_like_product_titles_reach_no_csv_cell_unescaped(shop):
    store, run, layout = shop["store"], shop["run"], shop["layout"]
    path = RecStore(layout).recommendations_path
    recs = read_frame(path)
    titles = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\tTab title", "\rCR title"]
    products = sorted(recs["product_id"].unique())
    evil = {p: titles[i % len(titles)] for i, p in enumerate(products)}  # every title a spreadsheet would run
    write_frame(recs.assign(title=recs["product_id"].map(evil)), path)

    result = run(["campaign_audiences", "campaign_lists"])
    assert result.success and checks_by_name(result)["campaign_exports_match_lists"]
    raw_titles, csv_cells = set(), []
    for file in _export_files(store):
        if file.suffix == ".parquet":
            frame = read_frame(file)
            raw_titles |= set(frame[[c for c in frame if c.endswith("_title")]].stack())
        else:
            rows = _csv_rows(file)
            csv_cells += [v for r in rows for v in r.values()]
    assert set(titles) <= raw_titles  # the Parquet keeps every title raw
    for title in titles:
        assert "'" + title in csv_cells and title not in csv_cells
    unsafe = [v for v in csv_cells if v.startswith(FORMULA_START) and not _is_number(v)]
    assert unsafe == []


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _source_flags(layout: DataLayout) -> dict[str, tuple]:
    """The simulator's own consent flags per customer (what `customers` holds before consent files apply)."""
    staged = ShopSourceResource(**BAD_INPUTS_SIM).staged(layout).table("customers")
    values = staged[list(consent.FLAGS)].astype(object).where(staged[list(consent.FLAGS)].notna(), None)
    return {u: tuple(None if v is None else bool(v) for v in row)
            for u, row in zip(staged["user_id"], values.itertuples(index=False), strict=True)}


def _updated(layout: DataLayout, final: dict[str, tuple]) -> int:
    """Customers whose flags the consent files change from the source's."""
    return sum(flags != final[user] for user, flags in _source_flags(layout).items() if user in final)


def _write_unknown_consent(layout: DataLayout) -> list[str]:
    """Every customer's consent unknown (empty flags), as a real shop without consent data has it."""
    ids = read_frame(layout.table("customers"), columns=["user_id"])["user_id"].tolist()
    folder = layout.root / "consent"
    folder.mkdir(exist_ok=True)
    (folder / "a_unknown.csv").write_text(CONSENT_HEADER + "".join(f"{u},,,,2025-01-01\n" for u in ids))
    return ids


def test_without_any_consent_every_campaign_asset_succeeds_and_says_why(shop):
    store, run, layout, tracking = shop["store"], shop["run"], shop["layout"], shop["tracking"]
    for extra in (layout.root / "consent").glob("*") if (layout.root / "consent").exists() else []:
        extra.unlink()
    ids = _write_unknown_consent(layout)
    versions = {(v.version, tuple(sorted(v.aliases))) for v in tracking.client().search_model_versions(f"name='{MODEL_NAME}'")}

    result = run(["customers", "user_features", "user_profiles", *[a.key.to_user_string() for a in CAMPAIGNS]])
    assert result.success
    customers = read_frame(layout.table("customers"))
    assert customers[list(consent.FLAGS)].isna().all().all()
    meta = _meta(result, "customers")
    assert meta["consent_rows_applied"] == len(ids) == len(customers) and meta["consent_rows_quarantined"] == 0
    assert meta["consent_users_updated"] == _updated(layout, dict.fromkeys(ids, (None, None, None))) > 0
    audiences = _meta(result, "campaign_audiences")
    suppressed = int(read_frame(store.audiences_path)["removed_by"].eq("suppressed").sum())  # from the OPTOUT test
    why = "no customer has known consent for email, push or sms" + (
        f" (and {suppressed} matched customers are on a suppression list)" if suppressed else "")
    assert audiences["eligible"] == 0 and audiences["why_empty"] == why
    assert "none of its" in audiences["empty_campaigns"] and "buyers" in audiences["empty_campaigns"]
    lists = _meta(result, "campaign_lists")
    assert lists["dagster/row_count"] == 0 and lists["why_empty"] == why and "plot" not in lists
    assert lists["export_files"] == 0 and _export_files(store) == []  # the earlier runs' files are gone
    assert _meta(result, "campaign_outcomes")["why_empty"] == "no campaign sends yet"
    results = _meta(result, "campaign_results")
    assert results["sends_measured"] == 0 and results["why_empty"] == "no campaign sends yet" and "plot" not in results
    uplift = _meta(result, "campaign_uplift_model")
    assert uplift["registered"] is False and uplift["why_no_model"] == "no campaign sends yet"
    assert {(v.version, tuple(sorted(v.aliases)))
            for v in tracking.client().search_model_versions(f"name='{MODEL_NAME}'")} == versions
    evaluations = _evaluations(result)
    for name in ("campaign_audiences_not_empty", "campaign_lists_not_empty"):
        assert not evaluations[name].passed and evaluations[name].severity == dg.AssetCheckSeverity.WARN
        assert evaluations[name].metadata["why_empty"].value == why
    for name in ("campaign_lists_respect_rules", "campaign_exports_match_lists", "customers_reflect_consent_files",
                 "customers_contract"):
        assert evaluations[name].passed, name


def test_a_consent_file_for_some_customers_brings_them_back_and_only_them(shop):
    store, run, layout = shop["store"], shop["run"], shop["layout"]
    ids = _write_unknown_consent(layout)  # everyone unknown as of 2025-01-01 ...
    rng = np.random.default_rng(4)
    chosen = sorted(rng.choice(ids, size=len(ids) // 2, replace=False))
    flags = {u: (rng.random() < 0.5, rng.random() < 0.3, rng.random() < 0.4) for u in chosen}

    def word(value: bool, i: int) -> str:
        return [("yes", "no"), ("TRUE", "FALSE"), ("1", "0")][i % 3][0 if value else 1]

    lines = [f"{u},yes,yes,yes,2025-02-01 08:00\n" for u in chosen]  # ... then everyone in, on Feb 1st ...
    lines += [f"{u},{word(e, i)},{word(s, i + 1)},{word(p, i + 2)},2025-03-01T09:30:00+01:00\n"  # ... newest wins
              for i, (u, (e, s, p)) in enumerate(flags.items())]
    lines += [",yes,yes,yes,2025-03-01\n", f"{chosen[0]},yes,yes,yes,next week\n", f"{chosen[1]},sure,no,no,2025-04-01\n",
              "NOT_A_CUSTOMER,yes,yes,yes,2025-03-01\n"]
    (layout.root / "consent" / "b_newsletter.csv.gz").write_bytes(gzip.compress((CONSENT_HEADER + "".join(lines)).encode()))

    result = run(["customers", "user_features", "user_profiles", "campaign_audiences", "campaign_lists"])
    assert result.success
    meta = _meta(result, "customers")
    assert (meta["consent_files"], meta["consent_rows_read"]) == (2, len(ids) + 2 * len(chosen) + 4)
    assert meta["consent_rows_quarantined"] == 3 and meta["consent_users_unknown_to_shop"] == 1
    assert meta["consent_rows_applied"] == len(ids) and meta["consent_rows_superseded"] == 2 * len(chosen)
    final = dict.fromkeys(ids, (None, None, None)) | {u: tuple(bool(v) for v in f) for u, f in flags.items()}
    assert meta["consent_users_updated"] == _updated(layout, final) > 0
    quarantine = read_frame(layout.quarantine_table("consent"))
    assert sorted(quarantine["quarantine_reason"]) == ["bad_email_opt_in", "bad_updated_at", "missing_user_id"]
    evaluations = _evaluations(result)
    assert evaluations["customers_reflect_consent_files"].passed
    assert evaluations["campaign_exports_match_lists"].passed and evaluations["campaign_lists_respect_rules"].passed

    lists = store.read_lists()
    assert len(lists) > 0 and _meta(result, "campaign_lists")["why_empty"] == "not empty"
    column = {"email": 0, "sms": 1, "push": 2}
    consented = lists.apply(lambda r: r["user_id"] in flags and flags[r["user_id"]][column[r["channel"]]], axis=1)
    assert consented.all()
    for row in lists.itertuples():  # the first channel of [email, push, sms] the file says yes to
        e, s, p = flags[row.user_id]
        assert row.channel == ("email" if e else "push" if p else "sms")
    exported = {r["user_id"] for p in _export_files(store) if p.suffix == ".csv" for r in _csv_rows(p)}
    assert exported == set(lists["user_id"]) and exported <= {u for u, f in flags.items() if any(f)}


def test_with_every_campaign_disabled_the_lists_are_empty_and_say_so(shop, tmp_path):
    store, run = shop["store"], shop["run"]
    folder = _folder(tmp_path)
    for spec in folder.glob("*.yaml"):
        spec.write_text(spec.read_text() + "enabled: false\n")
    result = run(["campaign_specs", "campaign_audiences", "campaign_lists"],
                 run_config={"resources": {"campaigns": {"config": {"specs_dir": str(folder)}}}})
    assert result.success
    assert _meta(result, "campaign_audiences")["why_empty"] == "no enabled campaign"
    assert _meta(result, "campaign_lists")["why_empty"] == "no enabled campaign"
    assert len(store.read_lists()) == 0 and _export_files(store) == []
    evaluations = _evaluations(result)
    assert not evaluations["campaign_lists_not_empty"].passed and evaluations["campaign_exports_match_lists"].passed


def test_the_code_location_loads_the_new_checks():
    loaded = load_in_fresh_process()
    assert loaded["deprecations"] == []
    assert {"customers_reflect_consent_files", "campaign_exports_match_lists", "campaign_audiences_not_empty",
            "campaign_lists_not_empty", "campaign_lists_respect_rules"} <= set(loaded["checks"])


# =========================================================================== campaign rules and subject templates
# Campaign rules and subject templates that would blow up (or lie) at send time are refused at load time.
#
# Each case writes a campaign folder under tmp_path and checks that `load_specs` names the file and the field,
# or that evaluation raises a RuleError (never a bare OverflowError, never a silent int64 wrap-around).


FILE = "campaigns/broken.yaml"
VALID = {
    "name": "demo",
    "objective": "win-back",
    "audience": {"rule": 'churn_band == "high"'},
    "channels": ["email", "push"],
    "creatives": [{"id": "discount", "when": 'price_band == "budget"', "subject": "10% off {first_product}"},
                  {"id": "default", "subject": "We miss you"}],
    "schedule": {"weekdays": ["mon"]},
    "budget": {"max_recipients": 100},
    "frequency_cap": {"messages": 1, "days": 7},
    "control_share": 0.2,
}
PROFILES = pd.DataFrame({
    "orders": pd.array([0, 3, 12, 1], dtype="int64"),
    "churn_band": ["high", "low", "high", None],
    "price_band": ["budget", "mid", None, "budget"],
    "predicted_clv": [10.0, np.nan, 250.0, 0.0],
    "top_category": ["kitchen", "garden", None, "toys"],
})
COLUMNS = tuple(PROFILES.columns)
# 1e15 ** 21 = 1e315: every literal is allowed, the product is not a float64.
OVERFLOW_RULE = "orders" + " * 1e15" * 21 + " > 1"


def write_campaign(tmp_path: Path, change: dict, name: str = "broken.yaml") -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(yaml.safe_dump({**VALID, **change}, sort_keys=False))
    return folder


def with_subject(subject: str) -> dict:
    return {"creatives": [{"id": "only", "subject": subject}]}


def problem_text(folder: Path, profiles: pd.DataFrame | None = None) -> str:
    with pytest.raises(SpecError) as info:
        load_specs(folder, COLUMNS, profiles=profiles)
    return str(info.value)


def problem_line(text: str, field: str) -> str:
    """The one line of a SpecError for FILE and `field`."""
    lines = [line for line in text.splitlines() if line.startswith(f"{FILE}: {field}: ")]
    assert len(lines) == 1, text
    return lines[0]


# ---- rules: huge literals and overflow ---------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "orders * 99999999999999999999999 > 1",  # used to crash campaign_audiences with a bare OverflowError
        "orders + 9223372036854775807 > 0",  # used to wrap around in int64 and select the wrong people
        "orders > -9223372036854775808",
        "predicted_clv < 1e16",
        "predicted_clv * 1e400 > 1",  # a float literal that is already inf
        "orders in [1, 99999999999999999999]",
    ],
)
def test_huge_literal_is_refused_at_load(tmp_path: Path, rule: str) -> None:
    folder = write_campaign(tmp_path, {"audience": {"rule": rule}})
    line = problem_line(problem_text(folder), "audience.rule")
    assert "too large for a rule" in line and "1e15" in line, line
    with pytest.raises(RuleError, match="MAX_LITERAL"):
        parse_rule(rule)


def test_literals_up_to_max_literal_are_allowed() -> None:
    assert MAX_LITERAL == 1e15
    frame = pd.DataFrame({"orders": pd.array([1, 2], dtype="int64")})
    assert parse_rule("orders < 1000000000000000 and orders > -1e15").evaluate(frame).tolist() == [True, True]


def test_huge_literal_in_a_creative_rule_names_the_creative(tmp_path: Path) -> None:
    creatives = [{"id": "big", "when": "orders * 99999999999999999999999 > 1", "subject": "x"},
                 {"id": "default", "subject": "y"}]
    folder = write_campaign(tmp_path, {"creatives": creatives})
    assert "too large for a rule" in problem_line(problem_text(folder), r"creatives[0].when")


def test_arithmetic_overflow_is_a_rule_error_never_overflow_error() -> None:
    rule = parse_rule(OVERFLOW_RULE)  # each literal is allowed, so parsing passes
    with pytest.raises(RuleError, match="overflows") as info:
        rule.evaluate(PROFILES)
    assert not isinstance(info.value, OverflowError)
    # A row of zeros does not overflow: the error is about the data the rule meets.
    assert rule.evaluate(PROFILES[PROFILES["orders"] == 0]).tolist() == [False]
    with pytest.raises(RuleError, match="overflows"):
        parse_rule("1e15" + " * 1e15" * 21 + " > orders").evaluate(PROFILES)  # literals only


def test_dry_run_catches_arithmetic_overflow_with_file_and_field(tmp_path: Path) -> None:
    folder = write_campaign(tmp_path, {"audience": {"rule": OVERFLOW_RULE}})
    (spec,) = load_specs(folder, COLUMNS)  # without profiles nothing is evaluated
    assert spec.audience.rule == OVERFLOW_RULE
    line = problem_line(problem_text(folder, PROFILES), "audience.rule")
    assert "fails on the profiles" in line and "overflows" in line, line


def test_dry_run_names_creative_rules_and_reports_all_files(tmp_path: Path) -> None:
    creatives = [{"id": "a", "when": 'churn_band == "high"', "subject": "x"},
                 {"id": "b", "when": "price_band * 2 > 1", "subject": "y"},  # text column in arithmetic
                 {"id": "default", "subject": "z"}]
    folder = write_campaign(tmp_path, {"creatives": creatives})
    write_campaign(tmp_path, {"name": "other", "audience": {"rule": OVERFLOW_RULE}}, name="other.yaml")
    write_campaign(tmp_path, {"name": "fine"}, name="fine.yaml")
    with pytest.raises(SpecError) as info:
        load_specs(folder, COLUMNS, profiles=PROFILES)
    problems = [(f, p) for f, p, _ in info.value.problems]
    assert problems == [(FILE, "creatives[1].when"), ("campaigns/other.yaml", "audience.rule")]
    assert "price_band is not numeric" in problem_line(str(info.value), r"creatives[1].when")


def test_dry_run_passes_good_rules(tmp_path: Path) -> None:
    folder = write_campaign(tmp_path, {"audience": {"rule": "orders * 1e15 * 1e15 > 1 and predicted_clv / orders >= 0"}})
    (spec,) = load_specs(folder, COLUMNS, profiles=PROFILES)
    assert spec.name == "demo"


def test_int64_arithmetic_does_not_wrap() -> None:
    frame = pd.DataFrame({"orders": pd.array([2**62, -(2**62), 5], dtype="int64"),
                          "n": pd.array([2**62, None, 1], dtype="Int64")})
    # In int64, 2**62 * 4 wraps to 0 and -(2**62) * 4 too; in float64 they keep their sign.
    assert parse_rule("orders * 4 > 0").evaluate(frame).tolist() == [True, False, True]
    assert parse_rule("orders * 4 < 0").evaluate(frame).tolist() == [False, True, False]
    assert parse_rule("n + n > 0").evaluate(frame).tolist() == [True, False, True]  # NA stays missing
    assert parse_rule("-orders < 0").evaluate(frame).tolist() == [True, False, True]


def test_division_by_zero_keeps_its_meaning() -> None:
    frame = pd.DataFrame({"x": [1.0, 0.0, 4.0], "y": [0.0, 0.0, 2.0]})
    assert parse_rule("x / y > 1").evaluate(frame).tolist() == [True, False, True]  # inf > 1, NaN is missing
    with pytest.raises(RuleError, match="division by zero"):
        parse_rule("x > 1 / 0").evaluate(frame)


# ---- subjects ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ("{top_category:>999999999}", "format width in {top_category:>999999999} is too large; at most 200"),
        ("{first_product:.1000}", "format precision in {first_product:.1000} is too large"),
        ("{first_product:" + "9" * 5000 + "}", "subject template is 5016 characters long"),
        ("{first_product:{top_category}}", "nested placeholder in the format of {first_product:{top_category}}"),
        ("{first_product:>{top_category}}", "nested placeholder"),
        ("{first_product:d}", "subject cannot be rendered: Unknown format code 'd'"),
        ("{top_category:=10}", "subject cannot be rendered"),
        ("{first_product:,}", "subject cannot be rendered"),
        ("{first_product!r}", "conversion !r is not allowed"),
        ("{first_product!a}", "conversion !a is not allowed"),
        ("{first_product.__class__}", "unknown placeholder(s) {first_product.__class__}"),
        ("{first_product[0]}", "unknown placeholder(s)"),
        ("{}", "unknown placeholder(s)"),
        ("x" * (MAX_TEMPLATE_LENGTH + 1), f"at most {MAX_TEMPLATE_LENGTH}"),
    ],
)
def test_unsafe_subject_is_refused_at_load(tmp_path: Path, subject: str, message: str) -> None:
    folder = write_campaign(tmp_path, with_subject(subject))
    line = problem_line(problem_text(folder), r"creatives[0].subject")
    assert message in line, line


@pytest.mark.parametrize(
    ("subject", "rendered"),
    [
        ("{top_category:>12}!", "     kitchen!"),
        (f"{{first_product:.{MAX_FORMAT_WIDTH}}}", "Mug"),
        ("{first_product!s} for {top_category:^9}", "Mug for  kitchen "),
        ("50% {{off}} {first_product}", "50% {off} Mug"),
    ],
)
def test_safe_format_specs_are_allowed(tmp_path: Path, subject: str, rendered: str) -> None:
    (spec,) = load_specs(write_campaign(tmp_path, with_subject(subject)), COLUMNS)
    assert spec.creatives[0].render("Mug", "kitchen") == rendered


def test_rendered_subject_is_capped(tmp_path: Path) -> None:
    subject = "Only today: {first_product:<200} and more {top_category:>200}"
    (spec,) = load_specs(write_campaign(tmp_path, with_subject(subject)), COLUMNS, profiles=PROFILES)
    for product in ("Mug", "A very long product title " * 40):
        text = spec.creatives[0].render(product, "kitchen")
        assert len(text) <= MAX_SUBJECT_LENGTH == 150
        assert text.startswith("Only today: ") and text.endswith(ELLIPSIS)
    short = "{first_product}"
    (spec,) = load_specs(write_campaign(tmp_path, with_subject(short)), COLUMNS)
    assert spec.creatives[0].render("x" * MAX_SUBJECT_LENGTH, "") == "x" * MAX_SUBJECT_LENGTH  # exactly the cap
    assert spec.creatives[0].render("x" * (MAX_SUBJECT_LENGTH + 1), "") == "x" * (MAX_SUBJECT_LENGTH - 1) + ELLIPSIS
