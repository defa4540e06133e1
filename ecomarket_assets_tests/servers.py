"""Start one of the project's HTTP services (collector, recommendation API) as a real uvicorn process on
127.0.0.1 for a test, with a clean environment; the test stops it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_module(module: str, port: int, *args: str, env: dict[str, str] | None = None,
                 ready: Callable[[httpx.Response], bool] = lambda answer: answer.status_code == 200) -> subprocess.Popen:
    """`python -m module --port PORT *args`, without the caller's ECOMARKET_ variables; returns once `/health`
    answers `ready`, or fails with the server's last error output."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ECOMARKET_")}
    proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port), *args],
                            env=clean | {"PYTHONPATH": str(REPO_ROOT)} | (env or {}), cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if ready(httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)):
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.stderr.read().decode()[-2000:])


def start_collector(data: Path, port: int, keys: str = "shop1:k1") -> subprocess.Popen:
    return start_module("ecomarket_assets.collector", port,
                        env={"ECOMARKET_DATA_DIR": str(data), "ECOMARKET_COLLECTOR_KEYS": keys})
