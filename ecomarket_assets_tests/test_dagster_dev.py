"""`dagster dev` (as `make dev` starts it) serves the asset graph, runs a materialization launched from the UI's API,
and its daemon runs `flow_sensor`: collector events already in the landing folder become outbox sends and a
`flow_outbox` materialization."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ecomarket_assets_tests.conftest import REPO_ROOT, SMALL_SIM
from ecomarket_assets_tests.ui_support import _free_port, _graphql, _launch_and_wait, _wait_until_up


@pytest.fixture
def dagster_dev(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMARKET_")}
    env |= {"DAGSTER_HOME": str(home), "ECOMARKET_DAGSTER_STORAGE": str(home / "storage"),
            "ECOMARKET_DAGSTER_COMPUTE_LOGS": str(home / "logs"), "ECOMARKET_DATA_DIR": str(tmp_path / "data"),
            "ECOMARKET_PARTITIONS_START": "2025-11-01"}
    env |= {f"ECOMARKET_{k.upper()}": str(v) for k, v in SMALL_SIM.items()}
    env["ECOMARKET_FLOWS_DIR"] = str(_carts_waiting(tmp_path))
    dagster = Path(sys.executable).parent / "dagster"
    log = (tmp_path / "dev.log").open("w")
    proc = subprocess.Popen([str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(port, proc)
        yield port, tmp_path / "data"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _carts_waiting(tmp_path: Path) -> Path:
    """Six consented customers' cart events in a collector micro-batch (today: outside the daily partitions, so
    the landing sensor leaves them alone), and a flow that reminds after 2 s; returns the flows folder."""
    from ecomarket_assets.collector.writer import MicroBatchWriter
    from ecomarket_assets.storage import DataLayout, write_frame

    layout = DataLayout(tmp_path / "data")
    users = [f"live-{i}" for i in range(6)]
    write_frame(pd.DataFrame({"user_id": users, "email_opt_in": True, "sms_opt_in": False, "push_opt_in": False}),
                layout.table("customers"))
    writer = MicroBatchWriter(layout.landing, layout.root)
    writer.start()
    now = pd.Timestamp.now(tz="UTC")
    writer.store("shop", pd.DataFrame([{"event_id": f"c{i}", "event_time": now, "user_id": u, "session_id": f"s{i}",
                                        "event_type": "cart", "product_id": "P00001", "quantity": 1,
                                        "unit_price": 5.0, "order_id": None, "channel": "web"}
                                       for i, u in enumerate(users)]), [])
    writer.close()
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "cart.yaml").write_text("name: cart_now\ntrigger: {type: cart_abandoned}\nwait: 2s\nchannels: [email]\n"
                                     "frequency_cap: {messages: 3, days: 1}\ncontrol_share: 0.2\n")
    return flows


@pytest.mark.slow  # ~2.5 min: two runs launched through a real `dagster dev`; make test-slow (and test-browser)
def test_ui_serves_graph_and_runs_a_materialization(dagster_dev):
    port, data_dir = dagster_dev
    nodes = _graphql(port, "{ assetNodes { assetKey { path } groupName } }")["data"]["assetNodes"]
    assert {n["assetKey"]["path"][0] for n in nodes} >= {"catalog", "customers", "reviews", "raw_events"}
    assert _launch_and_wait(port, "catalog", None) == "SUCCESS"
    assert _launch_and_wait(port, "raw_events", "2025-11-12") == "SUCCESS"
    assert (data_dir / "raw_events" / "date=2025-11-12" / "part-0.parquet").exists()
    query = '{ assetOrError(assetKey: {path: ["flow_outbox"]}) { ... on Asset { assetMaterializations(limit: 1) ' \
            '{ metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }'
    deadline = time.time() + 90  # the daemon ticks flow_sensor every 30 s
    while time.time() < deadline:
        found = _graphql(port, query)["data"]["assetOrError"].get("assetMaterializations") or []
        if found:
            break
        time.sleep(3)
    assert found, "flow_sensor recorded no flow_outbox materialization"
    counts = {e["label"]: e.get("intValue") for e in found[0]["metadataEntries"]}
    assert counts["treatment"] + counts["control"] == 6
