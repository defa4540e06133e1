"""The event collector: validation with the ingestion rules, the durable writer, the API, and a kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ecomarket_assets.collector.app import CollectorConfig, create_app
from ecomarket_assets.collector.validation import judge_batch
from ecomarket_assets.collector.writer import HEADER, OPEN_PREFIX, MicroBatchWriter, complete_prefix
from ecomarket_assets.ingestion import landing
from ecomarket_assets.ingestion.adapters.canonical import read_table_file
from ecomarket_assets.storage import DataLayout
from ecomarket_assets_tests.servers import free_port, start_collector

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
