"""Real-time figures: collector throughput, event-to-send latency of triggered flows, recommendation API latency.

    python benchmarks/realtime.py [--minutes 3] [--sessions-per-minute 120] [--wait 60] [--skip-api]

1. Collector: benchmarks/collector.py with 1 and 4 clients (batches of 100, each answered after its fsync).
2. Flows: the demo shop's catalog, customers and recommendations, a real collector
   (uvicorn, 127.0.0.1), the simulator's live stream played in real time, and the flow tick every 30 s as the
   Dagster daemon runs `flow_sensor` (`run_tick`, the function the sensor calls). Two flows: `cart_reminder`
   (wait `--wait` s after the last cart event, exit on purchase) and `order_follow_up` (post-purchase, no
   wait: its latency is the loop's own). Per send: written (end of the tick that stored it) minus the trigger
   event (stamped when the stream posts it), and minus the moment it fell due. Checked against the stream's
   truth: no send for a cart bought in its session, at most one per abandoned cart.
3. API: benchmarks/recommendation_api.py (200 requests/s from a real HTTP client).
The demo graph is materialized first in a temporary folder (`make run`'s shop; about 3.5 min), or
`--data-dir` names one (a copy is used). Figures, not a test; say how busy the machine was (printed from
/proc/loadavg).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.recommendation_api import build_demo  # noqa: E402
from ecomarket_assets.flows.outbox import Outbox  # noqa: E402
from ecomarket_assets.flows.specs import load_flows  # noqa: E402
from ecomarket_assets.flows.tick import run_tick  # noqa: E402
from ecomarket_assets.simulator import live  # noqa: E402
from ecomarket_assets.storage import DataLayout, read_frame  # noqa: E402

TICK_SECONDS = 30.0
FLOWS = {
    "cart_reminder.yaml": """name: cart_reminder
trigger: {{type: cart_abandoned}}
wait: {wait}s
channels: [email, push, sms]
subject: "Still thinking about {{first_product}}?"
frequency_cap: {{messages: 3, days: 7}}
control_share: 0.2
measurement: 1d
""",
    "order_follow_up.yaml": """name: order_follow_up
objective: cross-sell
trigger: {{type: post_purchase}}
wait: 0s
channels: [email, push, sms]
frequency_cap: {{messages: 3, days: 7}}
control_share: 0.2
measurement: 7d
""",
}


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentiles(values: pd.Series) -> str:
    if not len(values):
        return "none"
    v = values.to_numpy(dtype=float)
    return f"p50 {np.percentile(v, 50):.1f} s, p99 {np.percentile(v, 99):.1f} s, max {v.max():.1f} s (n={len(v)})"


def collector_figures() -> None:
    for clients in (1, 4):
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "collector.py"), "--clients", str(clients),
                              "--batches", "300"], capture_output=True, text=True, cwd=ROOT, check=True)
        print(f"collector, {clients} client(s): {out.stdout.strip().splitlines()[-1]}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_collector(data: Path, port: int) -> subprocess.Popen:
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMARKET_")}
    env |= {"ECOMARKET_DATA_DIR": str(data), "ECOMARKET_COLLECTOR_KEYS": "bench:k", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ecomarket_assets.collector", "--port", str(port)], env=env,
                            cwd=ROOT)
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the collector did not start")


class Ticker(threading.Thread):
    """The flow tick every TICK_SECONDS, as the daemon runs the sensor; remembers when each send was written."""

    def __init__(self, layout: DataLayout, flows_dir: Path) -> None:
        super().__init__(daemon=True)
        self.layout, self.flows = layout, load_flows(flows_dir)
        self.written: dict[str, float] = {}
        self.seconds: list[float] = []
        self.events = 0
        self.stop = threading.Event()

    def run(self) -> None:
        next_at = time.time()
        while not self.stop.is_set():
            report = run_tick(self.layout, self.layout.landing, self.flows)
            done = time.time()
            self.seconds.append(report.seconds)
            self.events += report.events
            if report.sends is not None:
                self.written.update(dict.fromkeys(report.sends["send_id"], done))
            next_at += TICK_SECONDS
            self.stop.wait(max(next_at - time.time(), 0.0))


def flow_figures(data: Path, minutes: float, sessions_per_minute: float, wait: int) -> None:
    """On the demo shop's data directory: its customers (with consent), catalog and recommendations."""
    layout = DataLayout(data)
    catalog, customers = read_frame(layout.table("catalog")), read_frame(layout.table("customers"))
    with tempfile.TemporaryDirectory() as folder:
        flows_dir = Path(folder) / "flows"
        flows_dir.mkdir()
        for name, text in FLOWS.items():
            (flows_dir / name).write_text(text.format(wait=wait))
        port = _free_port()
        collector = _start_collector(data, port)
        ticker = Ticker(layout, flows_dir)
        try:
            start = pd.Timestamp.now(tz="UTC").ceil("s") + pd.Timedelta(seconds=1)
            stream = live.live_stream(catalog, customers, start, minutes,
                                      sessions_per_minute=sessions_per_minute, seed=1)
            ticker.start()
            totals = live.play(stream, f"http://127.0.0.1:{port}", "k", batch_prefix="bench")
            last_due = stream.events["event_time"].max() + pd.Timedelta(seconds=wait)
            while pd.Timestamp.now(tz="UTC") < last_due + pd.Timedelta(seconds=TICK_SECONDS + 5):
                time.sleep(1)
            time.sleep(2)  # let a tick in flight finish
        finally:
            ticker.stop.set()
            ticker.join(60)
            collector.terminate()
            collector.wait(20)
        sends = Outbox(data).read()
        _report(stream, totals, sends, ticker, wait)


def _report(stream: live.LiveStream, totals: dict, sends: pd.DataFrame, ticker: Ticker, wait: int) -> None:
    sends = sends.assign(written=pd.to_datetime(sends["send_id"].map(ticker.written), unit="s", utc=True),
                         due=pd.to_datetime(sends["due_at"], utc=True))
    cart = sends["flow"] == "cart_reminder"
    since_trigger = (sends["written"] - pd.to_datetime(sends["triggered_at"], utc=True)).dt.total_seconds()
    since_last_cart = (sends["written"] - sends["due"]).dt.total_seconds() + wait  # due = last cart event + wait
    beyond_due = (sends["written"] - sends["due"]).dt.total_seconds()
    events = stream.events
    buys = events.loc[events["event_type"] == "purchase", ["user_id", "session_id", "event_time"]]
    cart_sends = sends.loc[cart, ["user_id", "session_id", "triggered_at", "due"]]
    joined = cart_sends.merge(buys, on=["user_id", "session_id"])
    bought_in_wait = joined[(joined["event_time"] >= pd.to_datetime(joined["triggered_at"], utc=True))
                            & (joined["event_time"] <= joined["due"])]
    per_cart = cart_sends.groupby(["user_id", "session_id"]).size()
    carts = stream.carts
    print(f"stream: {totals['events']} events over {stream.minutes:.1f} min posted in {totals['batches']} batches "
          f"({totals['accepted']} accepted); {len(carts)} carts, {int(carts['abandoned'].sum())} never bought; "
          f"{ticker.events} events read by {len(ticker.seconds)} ticks, tick time p50 {np.median(ticker.seconds):.2f} s, "
          f"max {max(ticker.seconds):.2f} s", flush=True)
    print(f"order_follow_up (no wait), purchase event to send: {percentiles(since_trigger[~cart])}")
    print(f"cart_reminder (wait {wait} s), last cart event to send: {percentiles(since_last_cart[cart])}; "
          f"beyond the wait: {percentiles(beyond_due[cart])}")
    print(f"sends: {sends.groupby(['flow', 'group']).size().to_dict()}; cart sends to a customer who bought during "
          f"the wait: {len(bought_in_wait)}; carts with more than one send: {int((per_cart > 1).sum())}")


def api_figures(data: Path) -> None:
    """benchmarks/recommendation_api.py on the same data (the flows' live state included)."""
    script = ROOT / "benchmarks" / "recommendation_api.py"
    subprocess.run([sys.executable, str(script), "--data-dir", str(data)], cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=8.0,
                        help="minutes of live stream (purchases come 1-8 min after a cart: shorter streams squeeze them)")
    parser.add_argument("--sessions-per-minute", type=float, default=60.0)
    parser.add_argument("--wait", type=int, default=60, help="cart_reminder's wait, seconds")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--skip-collector", action="store_true")
    parser.add_argument("--data-dir", type=Path, help="a data directory with the demo graph materialized (a copy "
                        "is used); default: materialize it in a temporary folder first (about 3.5 min)")
    args = parser.parse_args()
    print(f"load average at start: {load()} ({os.cpu_count()} cores)", flush=True)
    if not args.skip_collector:
        collector_figures()
    with tempfile.TemporaryDirectory() as folder:
        if args.data_dir:
            data = Path(folder) / "data"
            shutil.copytree(args.data_dir, data)
        else:
            started = time.perf_counter()
            data = build_demo(Path(folder))
            print(f"demo graph materialized in {time.perf_counter() - started:.0f} s", flush=True)
        flow_figures(data, args.minutes, args.sessions_per_minute, args.wait)
        if not args.skip_api:
            api_figures(data)
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
