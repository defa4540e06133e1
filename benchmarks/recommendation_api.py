"""Recommendation API latency under a fixed request rate, over HTTP (httpx) against a real uvicorn on 127.0.0.1.

    python benchmarks/recommendation_api.py --data-dir DIR [--rate 200] [--seconds 20]
    python benchmarks/recommendation_api.py --build /tmp/apidemo     # materialize the demo graph there first

`--data-dir` is a data directory where the default demo graph has been materialized (`make run` writes
`./data`). `--build DIR` runs `python -m ecomarket_assets.run_all` with everything under DIR (data, Dagster
storage, MLflow runs; about 3-4 minutes) and measures against DIR/data.

Starts `python -m ecomarket_assets.serving` on a free port and drives it open loop: request i is sent at
t0 + i / rate whatever the earlier answers did (no coordinated omission). Latency is measured from the
*scheduled* time to the end of the answer (so a client or server that falls behind shows it); the latency
from the actual send is reported beside it. The mix: 80 % users of the nightly file, 20 % unknown ones, half
of the requests with `viewed=` (1-3 catalog products). Figures, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def measure(base_url: str, user_ids: list[str], rate: float = 200.0, seconds: float = 20.0,
            products: list[str] | None = None, k: int = 10, seed: int = 0) -> dict:
    """Send `rate * seconds` GET /v1/recommendations/{user} at a fixed rate (open loop) over keep-alive
    connections; `user_ids` are cycled in a seeded random order, and with `products` half of the requests
    carry `viewed=` 1-3 of them. Latencies in ms from the scheduled time (`p50_ms`, `p99_ms`, `max_ms`) and
    from the send (`send_p50_ms`, `send_p99_ms`)."""
    rng = random.Random(seed)
    n = int(rate * seconds)
    paths = []
    for i in range(n):
        params = {"k": k}
        if products and i % 2:
            params["viewed"] = ",".join(rng.sample(products, rng.randint(1, 3)))
        paths.append((f"/v1/recommendations/{rng.choice(user_ids)}", params))
    gc.collect()
    gc.freeze()  # the client's own full collections would show as server latency
    return asyncio.run(_drive(base_url, paths, rate))


async def _drive(base_url: str, paths: list, rate: float) -> dict:
    scheduled = np.zeros(len(paths))
    sent = np.zeros(len(paths))
    done = np.full(len(paths), np.nan)
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as http:
        await http.get("/health")  # one warm connection before the clock starts

        async def one(i: int, path: str, params: dict) -> None:
            sent[i] = time.perf_counter()
            try:
                answer = await http.get(path, params=params)
                answer.read()
                if answer.status_code == 200:
                    done[i] = time.perf_counter()
                else:
                    errors[str(answer.status_code)] = errors.get(str(answer.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        tasks = []
        t0 = time.perf_counter() + 0.05
        for i, (path, params) in enumerate(paths):
            scheduled[i] = t0 + i / rate
            delay = scheduled[i] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, path, params)))
        await asyncio.gather(*tasks)
    ok = ~np.isnan(done)
    latency = (done[ok] - scheduled[ok]) * 1000
    from_send = (done[ok] - sent[ok]) * 1000
    span = float(np.nanmax(done) - t0) if ok.any() else float("nan")
    return {
        "requests": len(paths), "ok": int(ok.sum()), "errors": errors, "target_rate": rate,
        "achieved_rate": round(ok.sum() / span, 1) if ok.any() else 0.0,
        "p50_ms": round(float(np.percentile(latency, 50)), 2), "p99_ms": round(float(np.percentile(latency, 99)), 2),
        "max_ms": round(float(latency.max()), 2),
        "send_p50_ms": round(float(np.percentile(from_send, 50)), 2),
        "send_p99_ms": round(float(np.percentile(from_send, 99)), 2),
        "latency_from": "scheduled time",
    }


def build_demo(folder: Path) -> Path:
    """Materialize the default demo graph with every file under `folder` (as `make run`, but not in the checkout)."""
    (folder / ".dagster" / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "mlruns").mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", folder / "dagster.yaml")  # the checkout's instance, storage under folder
    env = dict(os.environ, DAGSTER_HOME=str(folder), ECOMARKET_DATA_DIR=str(folder / "data"),
               ECOMARKET_DAGSTER_STORAGE=str(folder / ".dagster"),
               ECOMARKET_DAGSTER_COMPUTE_LOGS=str(folder / ".dagster" / "logs"),
               ECOMARKET_MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}",
               ECOMARKET_MLFLOW_ARTIFACT_ROOT=str(folder / "mlruns" / "artifacts"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
               PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "ecomarket_assets.run_all"], env=env, cwd=ROOT, check=True)
    return folder / "data"


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMARKET_")} | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ecomarket_assets.serving", "--port", str(port), "--data-dir",
                             str(data_dir)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()["status"] == "ok":
                return proc
        except (httpx.HTTPError, ValueError):
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the API did not start: {proc.stderr.read().decode()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-dir", type=Path, help="a data directory with the demo graph materialized")
    source.add_argument("--build", type=Path, help="materialize the demo graph under this folder first")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    data_dir = build_demo(args.build) if args.build else args.data_dir
    sys.path.insert(0, str(ROOT))
    from ecomarket_assets.recommender.store import RecStore
    from ecomarket_assets.storage import DataLayout, read_frame

    layout = DataLayout(data_dir)
    known = sorted(read_frame(RecStore(layout).recommendations_path, columns=["user_id"])["user_id"].unique())
    products = sorted(read_frame(layout.table("catalog"), columns=["product_id"])["product_id"].unique())
    rng = random.Random(1)
    users = rng.sample(known, min(len(known), 4000))
    users += [f"new-{i}" for i in range(len(users) // 4)]  # 80 % known, 20 % unknown
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = start_server(data_dir, port)
    try:
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/health").json()
        print(f"serving {health['users']:,} users, model version {health['model_version']}, as of {health['as_of']}, "
              f"{health['neighbour_products']} products with neighbours")
        measure(base, users, rate=50, seconds=2, products=products)  # warm-up
        with open("/proc/loadavg") as handle:
            load_before = handle.read().split()[:3]
        result = measure(base, users, rate=args.rate, seconds=args.seconds, products=products)
        with open("/proc/loadavg") as handle:
            load_after = handle.read().split()[:3]
    finally:
        proc.terminate()
        proc.wait(20)
    print(f"load average before {' '.join(load_before)}, after {' '.join(load_after)} ({os.cpu_count()} cores)")
    for key, value in result.items():
        print(f"{key:>15}: {value}")


if __name__ == "__main__":
    main()
