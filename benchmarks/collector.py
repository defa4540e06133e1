"""Collector throughput and latency: batches of 100 events over HTTP (httpx) against a real uvicorn on 127.0.0.1.

    python benchmarks/collector.py [--batches 300] [--clients 4]

Starts `python -m ecomarket_assets.collector` on a free port with a throw-away data directory, sends the batches
from `--clients` threads (each its own keep-alive connection), and prints events/s and p50/p99 latency of a
batch (each answer comes after the fsync). Figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def batch(n: int, start: int) -> list[dict]:
    return [{"event_id": f"b{start + i}", "event_time": "2025-06-05T10:00:00Z", "user_id": f"u{i % 50}",
             "session_id": f"s{i % 20}", "event_type": "view", "product_id": f"p{i % 30}", "quantity": 1,
             "unit_price": 12.5, "order_id": None, "channel": "web"} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMARKET_")}
        env |= {"ECOMARKET_DATA_DIR": data, "ECOMARKET_COLLECTOR_KEYS": "bench:k", "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-m", "ecomarket_assets.collector", "--port", str(port)], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    httpx.get(f"{url}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            latencies: list[float] = []
            per_client = args.batches // args.clients

            def client(c: int) -> None:
                with httpx.Client(base_url=url, headers={"X-API-Key": "k"}, timeout=30) as http:
                    http.post("/v1/events", json={"events": batch(1, -1 - c)})  # warm the connection
                    for b in range(per_client):
                        body = {"events": batch(args.size, (c * per_client + b) * args.size)}
                        t0 = time.perf_counter()
                        answer = http.post("/v1/events", json=body)
                        latencies.append(time.perf_counter() - t0)
                        assert answer.status_code == 201, answer.text

            threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(20)
    latencies.sort()
    events = len(latencies) * args.size
    print(f"{len(latencies)} batches of {args.size} from {args.clients} clients in {wall:.2f} s: "
          f"{events / wall:,.0f} events/s; batch latency p50 {statistics.median(latencies) * 1e3:.1f} ms, "
          f"p99 {latencies[int(0.99 * (len(latencies) - 1))] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
