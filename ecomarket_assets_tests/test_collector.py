"""The event collector: validation with the ingestion rules, the durable writer, the API, and a kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ecomarket_assets.collector.app import BodyLimit, CollectorConfig, create_app
from ecomarket_assets.collector.validation import Limits, judge_batch
from ecomarket_assets.collector.writer import HEADER, OPEN_PREFIX, MicroBatchWriter, complete_prefix
from ecomarket_assets.ingestion import landing
from ecomarket_assets.ingestion.adapters.canonical import read_table_file
from ecomarket_assets.resources import CollectorResource
from ecomarket_assets.serving.app import create_app as serving_app
from ecomarket_assets.serving.lists import RecommendationService
from ecomarket_assets.simulator.shop import SimConfig, simulate
from ecomarket_assets.storage import DataLayout
from ecomarket_assets_tests.servers import REPO_ROOT, free_port, start_collector

PRODUCTS = {"p1", "p2"}


def event(i: int, **change: object) -> dict:
    row = {"event_id": f"e{i}", "event_time": "2025-06-05T10:00:00Z", "user_id": "u1", "session_id": "s1",
           "event_type": "purchase", "product_id": "p1", "quantity": 2, "unit_price": 9.5, "order_id": "o1",
           "channel": "web"}
    return row | change


BAD = [
    (event(1, event_time="yesterday-ish"), "bad_type_event_time"),
    (event(2, quantity="two"), "bad_type_quantity"),
    (event(3, event_type="fly"), "unknown_event_type"),
    (event(4, quantity=0), "bad_quantity"),
    (event(5, unit_price=-1), "bad_price"),
    (event(6, product_id="nope"), "unknown_product"),
    (event(7, user_id=None, product_id=None), "missing_required_field"),
    (event(0, event_type="view"), "duplicate_event_id"),  # e0 is the first good row
    ("not a row", "not_an_object"),
]


def mixed_batch() -> list:
    return [event(0)] + [row for row, _ in BAD] + [event(8, event_time="2025-06-06T23:59:59+02:00")]


# ----------------------------------------------------------------------------- validation


def test_every_bad_row_gets_its_ingestion_reason_and_counts_reconcile() -> None:
    records = mixed_batch()
    judged = judge_batch(records, PRODUCTS)
    assert len(judged.kept) + len(judged.rejects) == len(records)
    assert list(judged.kept["event_id"]) == ["e0", "e8"]
    assert [(r.index, r.reason) for r in judged.rejects] == [(i + 1, reason) for i, (_, reason) in enumerate(BAD)]
    assert judged.kept["event_time"].iloc[1] == pd.Timestamp("2025-06-06T21:59:59Z")  # zoned times become UTC


def test_without_a_catalog_unknown_products_are_left_to_ingestion() -> None:
    judged = judge_batch([event(1, product_id="new")], None)
    assert len(judged.kept) == 1 and not judged.rejects


# ----------------------------------------------------------------------------- writer


def test_writer_appends_fsyncs_rotates_and_quarantines(tmp_path: Path) -> None:
    writer = MicroBatchWriter(tmp_path / "landing", tmp_path, rotate_bytes=10_000, rotate_seconds=60)
    writer.start()
    judged = judge_batch(mixed_batch(), PRODUCTS)
    stored, _ = writer.store("shop1", judged.kept, judged.rejects)
    assert (stored.accepted, stored.quarantined) == (2, len(BAD))
    assert [p.name for p in (tmp_path / "landing").iterdir() if p.suffix == ".csv"] == ["." + stored.file]
    assert landing.inbox(tmp_path / "landing") == []  # open files are dotfiles: landing leaves them alone
    quarantine = (writer.quarantine_dir("shop1")).glob("*.jsonl")
    lines = [pd.read_json(p, lines=True) for p in quarantine]
    assert sorted(lines[0]["quarantine_reason"]) == sorted(r for _, r in BAD)
    assert writer.rotate_due(now=time.monotonic() + 61)  # age rotation closes the file
    [closed] = landing.inbox(tmp_path / "landing")
    assert closed.name == stored.file and list(read_table_file(closed)["event_id"]) == ["e0", "e8"]
    writer.close()


def test_a_torn_tail_is_cut_back_to_the_last_complete_row(tmp_path: Path) -> None:
    good = HEADER + 'e1,2025-06-05T10:00:00+00:00,u1,s1,view,p1,1,,,"web\nsite"\n'
    torn = good + "e2,2025-06-05T10:00:00+00:00,u1,s"
    assert complete_prefix(torn.encode()) == (len(good.encode()), 1)
    assert complete_prefix(b"event_id,event_t") == (0, 0)
    folder = tmp_path / "landing"
    folder.mkdir()
    (folder / f"{OPEN_PREFIX}shop1-x.csv").write_text(torn)
    (folder / f"{OPEN_PREFIX}shop1-y.csv").write_text(HEADER[:9])
    writer = MicroBatchWriter(folder, tmp_path)
    [closed] = writer.start()
    assert closed.read_text() == good and sorted(p.name for p in folder.iterdir()) == [".collector.lock", "collector-shop1-x.csv"]
    writer.close()


def test_the_landing_intake_ingests_a_closed_micro_batch_file(tmp_path: Path) -> None:
    writer = MicroBatchWriter(tmp_path / "data" / "landing", tmp_path / "data")
    writer.start()
    judged = judge_batch([event(i, event_time=f"2025-06-0{5 + i % 2}T10:00:00Z") for i in range(6)], PRODUCTS)
    writer.store("shop1", judged.kept, judged.rejects)
    writer.close()
    layout = DataLayout(tmp_path / "data")
    done = landing.intake(layout.landing, layout)
    assert len(done.archived) == 1 and not done.quarantined
    [staged] = landing.archived_sources(tmp_path / "data", layout.root)
    assert staged.days() == ["2025-06-05", "2025-06-06"]
    assert sorted(staged.events("2025-06-05")["event_id"]) == ["e0", "e2", "e4"]


# ----------------------------------------------------------------------------- API


@pytest.fixture()
def client(tmp_path: Path):
    config = CollectorConfig(tmp_path / "landing", tmp_path, {"k1": "shop1", "k2": "shop2"}, lambda: PRODUCTS)
    with TestClient(create_app(config)) as test_client:
        yield test_client


def test_api_refuses_a_bad_key(client: TestClient) -> None:
    assert client.post("/v1/events", json={"events": [event(1)]}).status_code == 401
    assert client.post("/v1/events", json={"events": [event(1)]}, headers={"X-API-Key": "k3"}).status_code == 401


def test_api_answers_201_with_counts_and_rejects(client: TestClient) -> None:
    answer = client.post("/v1/events", json={"events": mixed_batch()}, headers={"X-API-Key": "k1"})
    assert answer.status_code == 201
    body = answer.json()
    assert (body["source"], body["accepted"], body["quarantined"]) == ("shop1", 2, len(BAD))
    assert [(r["index"], r["reason"]) for r in body["rejects"]] == [(i + 1, r) for i, (_, r) in enumerate(BAD)]


def test_api_422_when_nothing_is_accepted_or_the_body_is_malformed(client: TestClient) -> None:
    answer = client.post("/v1/events", json={"events": [event(1, quantity=0)]}, headers={"X-API-Key": "k2"})
    assert answer.status_code == 422 and answer.json()["quarantined"] == 1
    assert client.post("/v1/events", json={"rows": []}, headers={"X-API-Key": "k2"}).status_code == 422
    assert client.post("/v1/events", json={"events": [event(1)] * 10_001}, headers={"X-API-Key": "k2"}).status_code == 422


def test_a_retried_batch_id_is_stored_once(client: TestClient, tmp_path: Path) -> None:
    batch = {"events": [event(1), event(2)], "batch_id": "b-1"}
    first = client.post("/v1/events", json=batch, headers={"X-API-Key": "k1"}).json()
    again = client.post("/v1/events", json=batch, headers={"X-API-Key": "k1"}).json()
    assert first["accepted"] == again["accepted"] == 2 and again["duplicate"] and not first["duplicate"]
    [open_file] = (tmp_path / "landing").glob(f"{OPEN_PREFIX}*.csv")
    assert len(read_table_file(open_file)) == 2


def test_health_and_openapi_docs(client: TestClient) -> None:
    assert client.get("/health").json()["catalog_products"] == 2
    assert client.get("/docs").status_code == 200
    assert "/v1/events" in client.get("/openapi.json").json()["paths"]


# ----------------------------------------------------------------------------- kill -9


def _free_port() -> int:
    return free_port()


def _start(data: Path, port: int) -> subprocess.Popen:
    return start_collector(data, port)


def test_nothing_acknowledged_is_lost_on_kill_9(tmp_path: Path) -> None:
    data, port = tmp_path / "data", _free_port()
    acked: list[str] = []
    proc = _start(data, port)
    try:
        stop = threading.Event()

        def send() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": "k1"}, timeout=5) as http:
                for b in range(10_000):
                    batch = [event(b * 100 + i, product_id="p1") for i in range(100)]
                    try:
                        answer = http.post("/v1/events", json={"events": batch})
                    except httpx.HTTPError:
                        return  # the server died mid-request: that batch was never acknowledged
                    if answer.status_code == 201:
                        acked.extend(e["event_id"] for e in batch)
                    if stop.is_set():
                        return

        sender = threading.Thread(target=send)
        sender.start()
        while len(acked) < 2_000:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        sender.join(10)
        assert proc.returncode == -signal.SIGKILL
        proc = _start(data, port)  # restart: recovery closes what the killed run left open
        files = landing.inbox(data / "landing")
        assert files and not list((data / "landing").glob(f"{OPEN_PREFIX}*"))
        stored = pd.concat([read_table_file(f) for f in files], ignore_index=True)
        assert set(acked) <= set(stored["event_id"]) and stored["event_id"].is_unique
        layout = DataLayout(data)
        done = landing.intake(layout.landing, layout)  # nothing half-written breaks the landing reader
        assert len(done.archived) == len(files) and not done.quarantined
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


# ----------------------------------------------------------------------------- the door: types, NUL, sizes, times


def _door(tmp_path: Path, **settings: object) -> TestClient:
    config = CollectorConfig(tmp_path / "landing", tmp_path, {"k1": "shop1"}, lambda: PRODUCTS, **settings)
    return TestClient(create_app(config))


def _stored(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (tmp_path / "landing").glob("*collector-*.csv"))


def _quarantined(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for p in (tmp_path / "quarantine" / "collector").rglob("*.jsonl")
            for line in p.read_text().splitlines()]


@pytest.mark.parametrize(("change", "reason", "named"), [
    ({"user_id": "u1\x00admin"}, "nul_byte_user_id", "user_id"),
    ({"event_id": "e\x00"}, "nul_byte_event_id", "event_id"),
    ({"user_id": {"id": "u1", "admin": True}}, "bad_type_user_id", "object"),
    ({"session_id": ["s1", "s2"]}, "bad_type_session_id", "array"),
    ({"order_id": 17}, "bad_type_order_id", "number"),
    ({"product_id": True}, "bad_type_product_id", "true/false"),
    ({"quantity": {"n": 2}}, "bad_type_quantity", "object"),
    ({"user_id": "u" * 1_001}, "too_long_user_id", "1,000 (ECOMARKET_COLLECTOR_MAX_FIELD_CHARS)"),
    ({"event_type": "view", "quantity": None}, "missing_required_field", "quantity"),
])
def test_the_door_refuses_a_bad_value_with_a_reason_naming_the_field(
        tmp_path: Path, change: dict, reason: str, named: str) -> None:
    with _door(tmp_path) as client:
        answer = client.post("/v1/events", json={"events": [event(1), event(2, **change)]}, headers={"X-API-Key": "k1"})
    assert answer.status_code == 201
    [reject] = answer.json()["rejects"]
    assert (reject["index"], reject["reason"]) == (1, reason) and named in reject["detail"]
    stored = _stored(tmp_path)
    assert stored.count(b'"e1"') == 1 and b'"e2' not in stored  # the good row only, quoted
    assert b"\x00" not in stored and b"{'id'" not in stored and b"['s1'" not in stored  # never cut, never a repr
    [quarantined] = _quarantined(tmp_path)
    assert quarantined["quarantine_reason"] == reason and quarantined["detail"] == reject["detail"]
    assert quarantined["record"]["event_id"] == change.get("event_id", "e2")  # kept whole: it is short


def test_a_view_without_quantity_is_a_missing_field_not_a_type_error() -> None:
    row = event(1, event_type="view")
    del row["quantity"]
    [reject] = judge_batch([row], PRODUCTS).rejects
    assert reject.reason == "missing_required_field" and reject.detail.endswith(": quantity")


def test_an_event_dated_in_the_future_beyond_the_skew_is_refused() -> None:
    now = pd.Timestamp("2025-06-05T10:00:00Z")
    rows = [event(1, event_time="2025-06-05T10:09:00Z"), event(2, event_time="2025-06-05T10:11:00Z"),
            event(3, event_time="2031-01-01T00:00:00Z"), event(4, event_time="2025-06-05T12:30:00+03:00")]
    judged = judge_batch(rows, PRODUCTS, now=now)
    assert list(judged.kept["event_id"]) == ["e1", "e4"]  # 10:09 is within 10 minutes; 12:30+03:00 is 09:30Z
    assert [(r.index, r.reason) for r in judged.rejects] == [(1, "future_event_time"), (2, "future_event_time")]
    tight = judge_batch(rows[:1], PRODUCTS, Limits(future_skew=pd.Timedelta(minutes=5)), now=now)
    assert tight.rejects[0].reason == "future_event_time" and "0 days 00:05:00" in tight.rejects[0].detail


def test_the_api_refuses_an_event_dated_2031(client: TestClient) -> None:
    answer = client.post("/v1/events", json={"events": [event(1, event_time="2031-06-05T10:00:00Z")]},
                         headers={"X-API-Key": "k1"})
    assert answer.status_code == 422 and answer.json()["rejects"][0]["reason"] == "future_event_time"


def test_a_body_over_the_limit_is_413_naming_it_and_nothing_is_stored(tmp_path: Path) -> None:
    with _door(tmp_path, max_body_bytes=20_000) as client:
        body = json.dumps({"events": [event(i) for i in range(200)]})
        assert len(body) > 20_000
        answer = client.post("/v1/events", content=body, headers={"X-API-Key": "k1", "Content-Type": "application/json"})
        assert answer.status_code == 413
        assert "20,000 bytes" in answer.json()["detail"] and "ECOMARKET_COLLECTOR_MAX_BODY_KB" in answer.json()["detail"]
        small = client.post("/v1/events", json={"events": [event(1)]}, headers={"X-API-Key": "k1"})
        assert small.status_code == 201
    assert _stored(tmp_path).count(b"\n") == 2  # the header and the one small event


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_the_body_limit_stops_reading_early(declared: bool) -> None:
    """A declared length over the limit is refused before any byte is read; a chunked body as soon as the bytes
    received pass the limit, not after reading it all."""
    reached: list[str] = []

    async def app(scope, receive, send) -> None:  # reads the whole body, as FastAPI would
        while (await receive()).get("more_body"):
            pass
        reached.append("app")

    chunks, sent = 100, []

    async def receive() -> dict:
        sent.append(1)
        return {"type": "http.request", "body": b"x" * 1_000, "more_body": len(sent) < chunks}

    answer: list[dict] = []

    async def send(message: dict) -> None:
        answer.append(message)

    headers = [(b"content-length", str(chunks * 1_000).encode())] if declared else []
    asyncio.run(BodyLimit(app, limit=10_000)({"type": "http", "headers": headers}, receive, send))
    assert answer[0]["status"] == 413 and b"10,000 bytes" in answer[1]["body"] and not reached
    assert len(sent) == (0 if declared else 11)


def test_a_422_echoes_only_a_bounded_excerpt_of_the_input(client: TestClient) -> None:
    batch = {"events": [event(i, user_id="u" * 100) for i in range(10_001)]}
    answer = client.post("/v1/events", json=batch, headers={"X-API-Key": "k1"})
    assert answer.status_code == 422 and len(answer.content) < 2_000  # the batch itself is 2.6 MB
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "events"] and "10000" in error["msg"] and "characters)" in error["input"]
    junk = client.post("/v1/events", json={"events": "x" * 1_000_000}, headers={"X-API-Key": "k1"})
    assert junk.status_code == 422 and len(junk.content) < 2_000
    rejected = client.post("/v1/events", json={"events": [event(1, event_id="e" * 900, quantity=0)]},
                           headers={"X-API-Key": "k1"})
    assert rejected.status_code == 422 and len(rejected.json()["rejects"][0]["event_id"]) < 150


def test_the_quarantine_keeps_a_bounded_excerpt_of_a_rejected_record(tmp_path: Path) -> None:
    with _door(tmp_path) as client:
        answer = client.post("/v1/events", json={"events": [event(1, quantity=0, junk="j" * 1_000_000)]},
                             headers={"X-API-Key": "k1"})
    assert answer.status_code == 422
    [line] = [p.read_text() for p in (tmp_path / "quarantine" / "collector").rglob("*.jsonl")]
    kept = json.loads(line)
    assert len(line) < 6_000 and kept["quarantine_reason"] == "bad_quantity"
    assert kept["record_chars"] > 1_000_000 and kept["record_excerpt"].startswith('{"event_id": "e1"')
    assert "record" not in kept


# ----------------------------------------------------------------------------- configuration, at start


def test_a_key_pair_without_its_colon_names_the_setting_never_the_secret(tmp_path: Path) -> None:
    secret = "Sup3rSecretKeyNoColon"
    with pytest.raises(ValueError) as error:
        CollectorResource(api_keys=f"shop1:k1,{secret}").key_sources()
    assert "ECOMARKET_COLLECTOR_KEYS, entry 2" in str(error.value) and "Sup3r" not in str(error.value)
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# sources\nshop1:k1\n{secret}\n")
    with pytest.raises(ValueError) as error:
        CollectorResource(keys_file=str(keys_file)).key_sources()
    assert "ECOMARKET_COLLECTOR_KEYS_FILE, line 3" in str(error.value) and "Sup3r" not in str(error.value)


@pytest.mark.parametrize(("keys", "words"), [
    ("shop1:k1,Sup3rSecretKeyNoColon", ["ECOMARKET_COLLECTOR_KEYS, entry 2", "source:key"]),
    ("my shop:Sup3rSecretKey", ["ECOMARKET_COLLECTOR_KEYS, entry 1", "' '", "letters, digits"]),
])
def test_the_collector_refuses_to_start_on_bad_keys_naming_the_setting(tmp_path: Path, keys: str,
                                                                       words: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMARKET_")}
    done = subprocess.run([sys.executable, "-m", "ecomarket_assets.collector", "--port", str(free_port())],
                          env=env | {"ECOMARKET_DATA_DIR": str(tmp_path), "ECOMARKET_COLLECTOR_KEYS": keys},
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "Sup3r" not in done.stderr + done.stdout
    assert all(w in done.stderr for w in words), done.stderr
    with pytest.raises(ValueError, match="source names"):
        CollectorConfig(tmp_path, tmp_path, {"k": "my shop"})


def test_a_limit_setting_that_is_not_a_positive_number_is_named() -> None:
    with pytest.raises(ValueError, match="ECOMARKET_COLLECTOR_MAX_BODY_KB=0"):
        CollectorResource(max_body_kb=0).door_limits()
    assert CollectorResource().door_limits() == (10 << 20, 1_000, 600)


# ----------------------------------------------------------------------------- the README example, offline docs


def test_the_readme_example_is_answered_as_the_readme_shows(tmp_path: Path) -> None:
    """The README's curl payload, against the demo (`make run`: the simulator's defaults) catalog."""
    section = (REPO_ROOT / "README.md").read_text().split("## Sending events (collector)")[1].split("\n## ")[0]
    payload = json.loads(re.search(r"-d '(.*?)'", section, re.S).group(1))
    shown = json.loads(re.search(r"# 201 (\{.*\})", section).group(1))
    demo = frozenset(simulate(SimConfig()).tables.catalog["product_id"])
    config = CollectorConfig(tmp_path / "landing", tmp_path, {"s3cret": "shop1"}, lambda: demo)
    with TestClient(create_app(config)) as client:
        answer = client.post("/v1/events", json=payload, headers={"X-API-Key": "s3cret"})
    assert (answer.status_code, answer.json()) == (201, shown)
    assert pd.Timestamp(payload["events"][0]["event_time"]).date() <= SimConfig().end_date


def _assets_served_by_the_app(client: TestClient, page: str) -> list[str]:
    html = client.get(page)
    assert html.status_code == 200
    links = re.findall(r'(?:src|href)="([^"]+)"', html.text) + re.findall(r"url: *'([^']+)'", html.text)
    assert links and all(link.startswith("/") for link in links), links  # nothing from a CDN
    for link in links:
        asset = client.get(link)
        assert asset.status_code == 200 and len(asset.content) > 0, link
    return links


def test_the_docs_pages_load_their_scripts_from_the_same_server(tmp_path: Path, client: TestClient) -> None:
    links = _assets_served_by_the_app(client, "/docs")
    assert any(link.endswith("swagger-ui-bundle.js") for link in links)
    assert any(link.endswith(".css") for link in links)
    assert any(link.endswith("redoc.standalone.js") for link in _assets_served_by_the_app(client, "/redoc"))
    api = TestClient(serving_app(RecommendationService(tmp_path)))  # no lifespan: the docs need no data
    assert any(link.endswith("swagger-ui-bundle.js") for link in _assets_served_by_the_app(api, "/docs"))
