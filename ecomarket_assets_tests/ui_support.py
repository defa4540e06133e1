"""Helpers for tests that drive a real `dagster dev` (or another local server) over HTTP.

Shared by `test_dagster_dev.py` (GraphQL only) and `test_browser_ui.py` (GraphQL + headless Chromium).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ecomarket_assets_tests.conftest import REPO_ROOT, SMALL_SIM

LAUNCH = """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", headers={"content-type": "application/json"},
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "dagster dev exited early"
        try:
            nodes = _graphql(port, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
            if nodes:
                return
        except (OSError, KeyError, TypeError):
            pass
        time.sleep(1)
    raise TimeoutError("dagster dev did not serve the asset graph in time")


def _launch_and_wait(port: int, asset: str, partition: str | None, timeout: float = 360) -> str:
    """Launch one asset run through GraphQL and wait for its end (generous: a CI machine may be shared)."""
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    params = {"selector": {"repositoryLocationName": "ecomarket_assets", "repositoryName": "__repository__",
                           "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": [asset]}]},
              "executionMetadata": {"tags": tags}}
    launched = _graphql(port, LAUNCH, {"p": params})["data"]["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = _graphql(port, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                          {"id": run_id})["data"]["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise TimeoutError(f"run {run_id} did not finish")


def dagster_dev_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a `dagster dev` on a throwaway DAGSTER_HOME and data dir, small simulated shop."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMARKET_")}
    env |= {"DAGSTER_HOME": str(home), "ECOMARKET_DAGSTER_STORAGE": str(home / "storage"),
            "ECOMARKET_DAGSTER_COMPUTE_LOGS": str(home / "logs"), "ECOMARKET_DATA_DIR": str(tmp_path / "data"),
            "ECOMARKET_PARTITIONS_START": "2025-11-01"}
    env |= {f"ECOMARKET_{k.upper()}": str(v) for k, v in SMALL_SIM.items()}
    return env


def stop_process_group(proc: subprocess.Popen, first: signal.Signals = signal.SIGINT, grace: float = 30) -> None:
    """Signal the whole session (`start_new_session=True`), then SIGKILL whatever is left after `grace` s."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, first)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with suppress(ProcessLookupError):  # the leader may be gone while children (code server, runs) linger
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextmanager
def dagster_dev_server(tmp_path: Path, start_timeout: float = 180, extra_env: dict[str, str] | None = None) -> Iterator[int]:
    """`dagster dev` on 127.0.0.1:<free port> (as `make dev` starts it); yields the port, always stops it."""
    port = _free_port()
    dagster = Path(sys.executable).parent / "dagster"
    with (tmp_path / "dev.log").open("w") as log:
        proc = subprocess.Popen([str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
                                cwd=REPO_ROOT, env=dagster_dev_env(tmp_path) | (extra_env or {}), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            _wait_until_up(port, proc, timeout=start_timeout)
            yield port
        finally:
            stop_process_group(proc)
