"""`dagster dev` (as `make dev` starts it) serves the asset graph and runs a materialization launched from the UI's API."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.slow  # ~2.5 min: two runs launched through a real `dagster dev`; make test-slow (and test-browser)
def test_ui_serves_graph_and_runs_a_materialization(dagster_dev):
    port, data_dir = dagster_dev
    nodes = _graphql(port, "{ assetNodes { assetKey { path } groupName } }")["data"]["assetNodes"]
    assert {n["assetKey"]["path"][0] for n in nodes} >= {"catalog", "customers", "reviews", "raw_events"}
    assert _launch_and_wait(port, "catalog", None) == "SUCCESS"
    assert _launch_and_wait(port, "raw_events", "2025-11-12") == "SUCCESS"
    assert (data_dir / "raw_events" / "date=2025-11-12" / "part-0.parquet").exists()
