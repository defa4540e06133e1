"""The real-time loop end to end: a real collector (uvicorn on 127.0.0.1) receives cart events, is killed with
kill -9 and restarted, and the Dagster flow sensor turns the abandoned cart into exactly one send after the wait,
none for the customer who bought during the wait, and none for the suppressed, the unconsented or the capped;
the control-group customer is held, not messaged."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd

from ecomarket_assets.defs.flows.sensors import FLOW_OUTBOX, flow_sensor
from ecomarket_assets.flows.outbox import Outbox
from ecomarket_assets.flows.state import load_state, state_dir
from ecomarket_assets.resources import DataDirResource, FlowsResource, ShopSourceResource
from ecomarket_assets.storage import DataLayout, write_frame
from ecomarket_assets_tests.servers import free_port, start_collector
from ecomarket_assets_tests.test_flows import CART_FLOW, users_in

WAIT_SECONDS = 4


def _sensor(data: Path, flows_dir: Path) -> dg.SensorResult:
    resources = {"data_dir": DataDirResource(path=str(data)), "source": ShopSourceResource(),
                 "flows": FlowsResource(flows_dir=str(flows_dir))}
    with dg.build_sensor_context(resources=resources) as context:
        return flow_sensor(context)


def _shop(data: Path, tmp_path: Path, people: dict[str, str]) -> Path:
    layout = DataLayout(data)
    consented = [u for role, u in people.items() if role != "unconsented"]
    write_frame(pd.DataFrame({"user_id": consented + [people["unconsented"]],
                              "email_opt_in": [True] * len(consented) + [False], "sms_opt_in": False,
                              "push_opt_in": False}), layout.table("customers"))
    write_frame(pd.DataFrame({"product_id": ["p1", "p2"], "title": ["Red mug", "Teapot"], "category": "kitchen"}),
                layout.table("catalog"))
    (data / "suppression").mkdir(parents=True)
    (data / "suppression" / "unsubscribed.csv").write_text(f"user_id\n{people['suppressed']}\n")
    write_frame(pd.DataFrame({"campaign": ["win_back"], "user_id": [people["capped"]],
                              "send_time": [pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1)]}),
                layout.table("campaign_lists"))
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    (flows_dir / "cart_reminder.yaml").write_text(CART_FLOW.replace("wait: 10m", f"wait: {WAIT_SECONDS}s"))
    return flows_dir


def _cart(i: int, user: str, kind: str = "cart", seconds: float = 0.0) -> dict:
    at = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=seconds)
    return {"event_id": f"live-{i}", "event_time": at.isoformat(), "user_id": user, "session_id": f"s-{user}",
            "event_type": kind, "product_id": "p1", "quantity": 1, "unit_price": 12.0,
            "order_id": f"o-{user}" if kind == "purchase" else None, "channel": "web"}


def test_abandoned_cart_to_one_send_through_collector_kill_and_sensor(tmp_path: Path) -> None:
    leaver, buyer, suppressed, capped = users_in("treatment", 4)
    people = {"leaver": leaver, "buyer": buyer, "suppressed": suppressed, "capped": capped,
              "unconsented": users_in("treatment", 5)[4], "control": users_in("control", 1)[0]}
    data = tmp_path / "data"
    flows_dir = _shop(data, tmp_path, people)
    port = free_port()
    proc = start_collector(data, port)
    try:
        events = [_cart(i, u) for i, u in enumerate(people.values())] + [_cart(99, buyer, "purchase", 1.0)]
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/events", json={"events": events},
                            headers={"X-API-Key": "k1"}, timeout=10)
        assert answer.status_code == 201 and answer.json()["accepted"] == len(events)
        first = _sensor(data, flows_dir)  # inside the wait: entries open, nothing sent
        assert not first.asset_events and not Outbox(data).read().shape[0]
        os.kill(proc.pid, signal.SIGKILL)  # acknowledged events sit in the open micro-batch file
        proc.wait(10)
        proc = start_collector(data, port)  # recovery closes the file under its final name
        time.sleep(WAIT_SECONDS + 0.5)
        due = _sensor(data, flows_dir)
        [materialization] = due.asset_events
        assert materialization.asset_key == FLOW_OUTBOX
        sends = Outbox(data).read().set_index("user_id")
        assert sorted(sends.index) == sorted([leaver, people["control"]])
        assert sends.loc[leaver, "group"] == "treatment" and sends.loc[people["control"], "group"] == "control"
        entries = load_state(state_dir(data)).entries_frame().set_index("user_id")
        assert entries.loc[buyer, "status"] == "exited"
        assert entries.loc[[suppressed, capped, people["unconsented"]], "reason"].tolist() == [
            "suppressed", "frequency_cap", "no_consent"]
        assert len(entries) == len(people)  # every cart was seen once, across the kill
        again = _sensor(data, flows_dir)
        assert not again.asset_events and len(Outbox(data).read()) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
