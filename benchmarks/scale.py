"""Scaling of the event-heavy work on the local engine and on a 2-worker Dask LocalCluster.

    .venv/bin/python benchmarks/scale.py [--events 1e6,1e7,5e7] [--worker-memory 2GiB] [--reuse]

What is timed: `user_features` (the per-user reduction of every stored `user_daily_activity` day, plus the
feature layers) and the event-heavy part of `demand_training_set` (`panel_from_layout`: the product x day
aggregation of every `raw_events` day, then the panel arrays), called as the assets call them.

Preparation (not timed): the simulator writes `raw_events` day files, `catalog`, `customers` and the
`user_daily_activity` days into `--work-dir/<size>`, once per size (kept for `--reuse`). Sizes above
CHUNK_EVENTS are simulated in chunks (one simulator run per chunk, each with its own seed and its own
user, product, session, order and event ids), so 50M events never sit in memory at once.

Each measurement runs in a fresh process (`--one ENGINE EVENTS`), so its peak memory is its own; a
watchdog kills it (and reports that) if the process tree would take the machine's memory. On Dask the
workers' peaks come from the workers themselves (`ru_maxrss`, plus RSS sampled every 0.25 s), spilling
from each worker's SpillBuffer (`data.spilled_total`) and its cumulative `disk-write` bytes, lost workers
from the worker addresses and pids before and after. Prints a table; not a timed test. CSV in
benchmarks/results/scale.csv.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "scale.csv"
# ingestion.py sizes the user base from events per user (71 per 90 days); the simulator's 180 days give ~107.
EVENTS_PER_USER_180_DAYS = 107
CHUNK_EVENTS = 10_000_000  # one simulator run holds ~9 GB at 10M events (measured); larger sizes are chunked
SEED = 7
RESULT_MARK = "SCALE-RESULT "
GIB = 1024**3


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def label(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def parse_sizes(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


# --------------------------------------------------------------------------- preparation (not timed)


def _simulate_chunk(k: int, target: int, scratch: str) -> dict:
    """One simulator run: events split into per-day files, catalog and customers, ids made unique to chunk k."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ecomarket_assets.schemas import CATALOG, CUSTOMERS, EVENTS
    from ecomarket_assets.simulator.shop import SimConfig, simulate

    start = time.perf_counter()
    cfg = SimConfig(n_users=max(1000, target // EVENTS_PER_USER_180_DAYS),
                    n_products=2000 if target > 2e6 else 1000, seed=SEED + k,
                    glitch_share=0.0)  # raw_events as stored: ingestion has already dropped tracker glitches
    shop = simulate(cfg)
    sim_seconds = time.perf_counter() - start
    tables = {"events": EVENTS.to_arrow(shop.tables.events), "catalog": CATALOG.to_arrow(shop.tables.catalog),
              "customers": CUSTOMERS.to_arrow(shop.tables.customers)}
    del shop
    if k:  # chunk 0 keeps the simulator's own ids; later chunks are other users buying other products
        prefix = f"c{k}-"
        id_columns = {"events": ["event_id", "user_id", "session_id", "product_id", "order_id"],
                      "catalog": ["product_id"], "customers": ["user_id"]}
        for name, columns in id_columns.items():
            table = tables[name]
            for column in columns:
                i = table.schema.get_field_index(column)
                table = table.set_column(i, table.field(i), pc.binary_join_element_wise(prefix, table[column], ""))
            tables[name] = table
    out = Path(scratch) / f"chunk{k}"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(tables["catalog"], out / "catalog.parquet")
    pq.write_table(tables["customers"], out / "customers.parquet")
    events = tables["events"]
    micros = events["event_time"].cast(pa.int64()).to_numpy()
    day_index = micros // (86_400 * 10**6)
    order = np.argsort(day_index, kind="stable")
    if not np.all(order[1:] > order[:-1]):
        events, day_index = events.take(pa.array(order)), day_index[order]
    bounds = np.flatnonzero(np.diff(day_index)) + 1
    starts, ends = np.r_[0, bounds], np.r_[bounds, len(day_index)]
    days = []
    for lo, hi in zip(starts, ends, strict=True):
        day = (dt.date(1970, 1, 1) + dt.timedelta(days=int(day_index[lo]))).isoformat()
        pq.write_table(events.slice(lo, hi - lo), out / f"{day}.parquet", compression="lz4")
        days.append(day)
    return {"chunk": k, "events": len(day_index), "users": cfg.n_users, "products": cfg.n_products, "days": days,
            "sim_seconds": sim_seconds, "seconds": time.perf_counter() - start, "peak_gb": _peak_rss_gb()}


def _merge_day(day: str, root: str, scratch: str, chunks: int) -> dict:
    """One day as the project stores it: the raw_events day file, then its user_daily_activity days."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ecomarket_assets.forecasting.panel import EVENT_COLUMNS
    from ecomarket_assets.profiles import activity as act
    from ecomarket_assets.schemas import EVENTS
    from ecomarket_assets.storage import DataLayout, write_frame

    layout = DataLayout(root)
    parts = [pq.read_table(p) for k in range(chunks) if (p := Path(scratch) / f"chunk{k}" / f"{day}.parquet").exists()]
    table = pa.concat_tables(parts)
    if len(parts) > 1:
        table = table.sort_by("event_time")
    events = table.to_pandas()
    write_frame(events, layout.raw_events_day(day), EVENTS)
    activity = act.daily_activity(events)
    rows = act.write_day(activity, layout, day)
    # In-memory size of what the timed code reads (pandas, object strings): events' demand columns, activity tables.
    sizes = {"events_bytes": int(events[EVENT_COLUMNS].memory_usage(deep=True).sum())}
    for name, frame in activity.as_dict().items():
        sizes[f"{name}_bytes"] = int(frame.memory_usage(deep=True, index=False).sum())
    return {"day": day, "events": len(events), **{f"{k}_rows": v for k, v in rows.items()}, **sizes}


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def prepare(n: int, work_dir: Path, reuse: bool) -> dict:
    """The data folder of one size (reused when asked and complete); returns its manifest."""
    import pandas as pd

    from ecomarket_assets.schemas import CATALOG, CUSTOMERS
    from ecomarket_assets.storage import DataLayout, write_frame

    root = work_dir / label(n)
    manifest_path = root / "manifest.json"
    if reuse and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        manifest["reused"] = True
        return manifest
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    scratch = Path(tempfile.mkdtemp(prefix="chunks-", dir=work_dir))
    start = time.perf_counter()
    chunks = max(1, math.ceil(n / CHUNK_EVENTS))
    targets = [n // chunks + (1 if k < n % chunks else 0) for k in range(chunks)]
    ctx = mp.get_context("spawn")
    reports = []
    for k, target in enumerate(targets):  # one chunk at a time, each in a fresh process (~9 GB at 10M)
        with ctx.Pool(1) as pool:
            reports.append(pool.apply(_simulate_chunk, (k, target, str(scratch))))
        print(f"  {label(n)}: chunk {k + 1}/{chunks} simulated: {reports[-1]['events']:,} events in "
              f"{reports[-1]['seconds']:.0f} s (peak {reports[-1]['peak_gb']:.1f} GB)", flush=True)
    simulated = time.perf_counter()
    days = sorted({d for r in reports for d in r["days"]})
    with ctx.Pool(2) as pool:  # days are independent: both cores
        merged = pool.starmap(_merge_day, [(d, str(root), str(scratch), chunks) for d in days])
    layout = DataLayout(root)
    for name, schema in (("catalog", CATALOG), ("customers", CUSTOMERS)):
        frame = pd.concat([pd.read_parquet(scratch / f"chunk{k}" / f"{name}.parquet") for k in range(chunks)],
                          ignore_index=True)
        write_frame(frame, layout.table(name), schema)
    shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.perf_counter() - start
    manifest = {
        "target_events": n, "events": sum(m["events"] for m in merged), "days": len(days), "chunks": chunks,
        "users": sum(r["users"] for r in reports), "products": sum(r["products"] for r in reports),
        "interaction_rows": sum(m["interactions_rows"] for m in merged),
        "user_day_rows": sum(m["users_rows"] for m in merged),
        "events_mem_gb": sum(m["events_bytes"] for m in merged) / GIB,
        "activity_mem_gb": sum(m[f"{t}_bytes"] for m in merged for t in ("interactions", "users", "hours")) / GIB,
        "raw_events_disk_gb": _disk_bytes(root / "raw_events") / GIB,
        "activity_disk_gb": _disk_bytes(root / "user_daily_activity") / GIB,
        "simulate_seconds": simulated - start, "write_seconds": seconds - (simulated - start),
        "prepare_seconds": seconds, "simulator_peak_gb": max(r["peak_gb"] for r in reports),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    manifest["reused"] = False
    return manifest


# --------------------------------------------------------------------------- one measurement (child process)


class _RssSampler(threading.Thread):
    """Peak RSS of this process per phase, and of given worker pids (0.25 s samples)."""

    def __init__(self, pids: dict[str, int] | None = None):
        super().__init__(daemon=True)
        import psutil

        self.me = psutil.Process()
        self.workers = {addr: psutil.Process(pid) for addr, pid in (pids or {}).items()}
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self.worker_peaks = {addr: 0 for addr in self.workers}
        self.vanished: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), self.me.memory_info().rss)
            for addr, proc in self.workers.items():
                try:
                    self.worker_peaks[addr] = max(self.worker_peaks[addr], proc.memory_info().rss)
                except psutil.Error:
                    self.vanished.add(addr)
            self.stop.wait(0.25)


def _worker_probe(dask_worker) -> dict:
    """Inside a worker: its own peak RSS, what it holds on disk now and all it ever wrote there."""
    data = dask_worker.data
    spilled = getattr(data, "spilled_total", None)
    written = {"spill": 0, "p2p": 0}  # SpillBuffer writes (memory pressure) vs a P2P shuffle's own disk buffer
    for k, v in dask_worker.digests_total.items():
        if isinstance(k, tuple) and len(k) >= 3 and k[-2:] == ("disk-write", "bytes"):
            written["p2p" if k[0] == "p2p" else "spill"] += v
    return {"pid": os.getpid(), "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "spilled_now": spilled.disk if spilled is not None else 0, "disk_written": written["spill"],
            "p2p_written": written["p2p"], "memory_limit": dask_worker.memory_manager.memory_limit or 0}


def run_one(engine_kind: str, n: int, work_dir: Path, worker_memory: str, workers: int) -> dict:
    """Time user_features and the demand aggregation on one engine, as the assets call them."""
    from ecomarket_assets.compute import ComputeResource
    from ecomarket_assets.forecasting.panel import panel_from_layout
    from ecomarket_assets.profiles import activity as act
    from ecomarket_assets.profiles.features import user_features as build_user_features
    from ecomarket_assets.resources import ShopSourceResource
    from ecomarket_assets.storage import DataLayout, read_frame

    layout = DataLayout(work_dir / label(n))
    manifest = json.loads((layout.root / "manifest.json").read_text())
    as_of = dt.date.fromisoformat(layout.activity_days()[-1])  # as the asset's _as_of
    dask = engine_kind == "dask"
    compute = ComputeResource(engine="dask", workers=workers, memory_limit=worker_memory) if dask else ComputeResource()
    out: dict = {"engine": engine_kind, "size": label(n), "events": manifest["events"], "status": "ok"}
    start = time.perf_counter()
    sampler = _RssSampler()
    sampler.start()
    with compute.session() as engine:
        out["startup_s"] = time.perf_counter() - start
        if dask:
            client = engine.client
            before = client.run(os.getpid)
            sampler.stop.set()
            sampler.join()
            sampler = _RssSampler(before)
            sampler.start()
            spill_peaks = {addr: 0 for addr in before}

            def probe_spill() -> None:  # what each worker holds on disk, once a second
                while not sampler.stop.is_set():
                    try:
                        for addr, info in client.run(_worker_probe).items():
                            spill_peaks[addr] = max(spill_peaks.get(addr, 0), info["spilled_now"])
                    except Exception:  # noqa: BLE001 - a worker restarting mid-call; the next probe sees it
                        pass
                    sampler.stop.wait(1.0)

            threading.Thread(target=probe_spill, daemon=True).start()
        try:
            sampler.phase = "user_features"
            t0 = time.perf_counter()
            customers, catalog = read_frame(layout.table("customers")), read_frame(layout.table("catalog"))
            if engine.is_dask:
                frames = {name: engine.read_parquet(act.day_files(layout, name), act.SCHEMAS[name].names)
                          for name in act.TABLES}
                features = build_user_features(None, customers, catalog, as_of, engine, frames)
            else:
                features = build_user_features(act.read_days(layout), customers, catalog, as_of)
            t1 = time.perf_counter()
            out["user_features_s"], out["feature_rows"] = t1 - t0, len(features)
            del features
            sampler.phase = "demand"
            panel = panel_from_layout(layout, ShopSourceResource().sales_calendar, engine)
            out["demand_s"] = time.perf_counter() - t1
            out["panel_products"], out["panel_days"] = len(panel.product_ids), len(panel.days)
            out["total_s"] = out["user_features_s"] + out["demand_s"]
            del panel
        except Exception as exc:  # noqa: BLE001 - a failure at this size is a result, reported as such
            out["status"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        sampler.phase = "end"
        if dask:
            time.sleep(1.5)  # one more spill probe
            try:
                after = client.run(_worker_probe)
            except Exception:  # noqa: BLE001
                after = {}
            info = client.scheduler_info()
            sampler.stop.set()
            now = set(info.get("workers", {}))
            lost = (set(before) - now) | {a for a in before if a in after and after[a]["pid"] != before[a]}
            out["workers_lost"] = len(lost | sampler.vanished)
            out["workers_now"] = len(now)
            out["worker_peak_gb"] = max([a["peak_rss"] for a in after.values()] + list(sampler.worker_peaks.values())) / GIB
            out["worker_sampled_peak_gb"] = max(sampler.worker_peaks.values(), default=0) / GIB
            out["worker_limit_gb"] = max((a["memory_limit"] for a in after.values()), default=0) / GIB
            out["spilled_peak_gb"] = sum(max(spill_peaks.get(a, 0), after.get(a, {}).get("spilled_now", 0))
                                         for a in before) / GIB
            out["spilled_written_gb"] = sum(a["disk_written"] for a in after.values()) / GIB
            out["p2p_disk_gb"] = sum(a["p2p_written"] for a in after.values()) / GIB
    sampler.stop.set()
    out["peak_gb"] = _peak_rss_gb()
    out["user_features_peak_gb"] = sampler.peaks.get("user_features", 0) / GIB
    out["demand_peak_gb"] = sampler.peaks.get("demand", 0) / GIB
    return out


# --------------------------------------------------------------------------- the parent: one fresh process per run


def measure(engine_kind: str, n: int, args: argparse.Namespace, cap_gb: float, memory: str = "") -> dict:
    """Run `--one` in a fresh process group; kill the group if its memory would exhaust the machine."""
    import psutil

    log = args.work_dir / f"{engine_kind}-{label(n)}{'-' + memory if memory else ''}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", engine_kind, str(n), "--work-dir", str(args.work_dir),
           "--worker-memory", memory or "auto", "--workers", str(args.workers)]
    with open(log, "w") as err:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True,
                                 cwd=REPO_ROOT)
        tree_peak, killed, started = 0, "", time.perf_counter()
        busy_before, tree_cpu = _busy_cpu_seconds(), {}
        stop = threading.Event()

        def watchdog() -> None:
            nonlocal tree_peak, killed
            root = psutil.Process(child.pid)
            while not stop.is_set():
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    break
                rss = 0
                for proc in procs:
                    with contextlib.suppress(psutil.Error):
                        rss += proc.memory_info().rss
                        cpu = proc.cpu_times()
                        tree_cpu[proc.pid] = cpu.user + cpu.system
                tree_peak = max(tree_peak, rss)
                over = rss > cap_gb * GIB or psutil.virtual_memory().available < 1 * GIB
                late = time.perf_counter() - started > args.timeout
                if over or late:
                    killed = (f"killed by the benchmark: process tree at {rss / GIB:.1f} GB "
                              f"(cap {cap_gb:.1f} GB, {psutil.virtual_memory().available / GIB:.1f} GB left)"
                              if over else f"killed by the benchmark after {args.timeout:.0f} s")
                    os.killpg(child.pid, signal.SIGKILL)  # the group this run started, nothing else
                    break
                stop.wait(0.25)

        thread = threading.Thread(target=watchdog, daemon=True)
        thread.start()
        stdout, _ = child.communicate()
        stop.set()
        thread.join()
    wall = time.perf_counter() - started
    other_cpu = max(0.0, _busy_cpu_seconds() - busy_before - sum(tree_cpu.values()))
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARK)]
    if lines:
        result = json.loads(lines[-1][len(RESULT_MARK):])
    else:
        tail = log.read_text().strip().splitlines()[-3:]
        result = {"engine": engine_kind, "size": label(n),
                  "status": killed or f"failed (exit {child.returncode}): {' | '.join(tail)[:300]}"}
    result["memory_limit"] = memory
    result["tree_peak_gb"] = tree_peak / GIB
    result["process_wall_s"] = wall
    # Share of the machine's CPU that other processes (not this run) used meanwhile: a noisy-neighbour check.
    result["other_cpu_pct"] = 100 * other_cpu / (wall * (os.cpu_count() or 1))
    text = log.read_text()
    result["nanny_restarts"] = text.count("Restarting worker") + text.count("Worker process still alive after")
    result["memory_warnings"] = text.count("Unmanaged memory use is high") + text.count("memory budget")
    return result


def _busy_cpu_seconds() -> float:
    import psutil

    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0)


def _fmt(value, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None or value == "" else f"{value:>{width}{spec}}"


COLUMNS = ["engine", "memory_limit", "size", "events", "startup_s", "user_features_s", "demand_s", "total_s", "peak_gb",
           "user_features_peak_gb", "demand_peak_gb", "tree_peak_gb", "worker_peak_gb", "worker_sampled_peak_gb",
           "worker_limit_gb", "spilled_peak_gb", "spilled_written_gb", "p2p_disk_gb", "workers_lost", "nanny_restarts",
           "memory_warnings", "feature_rows", "panel_products", "panel_days", "process_wall_s", "other_cpu_pct", "status"]


def print_table(rows: list[dict]) -> None:
    print(f"\n{'engine':<13}{'size':>6}{'events':>12}{'start s':>9}{'feat s':>9}{'demand s':>10}{'total s':>9}"
          f"{'peak GB':>9}{'tree GB':>9}{'GB/worker':>11}{'limit':>7}{'spill GB':>10}{'p2p GB':>8}{'lost':>6}{'other CPU':>10}  status")
    for r in rows:
        dask = r["engine"] == "dask"
        print(f"{_engine_label(r):<13}{r['size']:>6}{_fmt(r.get('events'), ',', 12)}{_fmt(r.get('startup_s'), '.1f', 9)}"
              f"{_fmt(r.get('user_features_s'), '.1f', 9)}{_fmt(r.get('demand_s'), '.1f', 10)}"
              f"{_fmt(r.get('total_s'), '.1f', 9)}{_fmt(r.get('peak_gb'), '.2f', 9)}{_fmt(r.get('tree_peak_gb'), '.2f', 9)}"
              f"{_fmt(r.get('worker_peak_gb') if dask else None, '.2f', 11)}"
              f"{_fmt(r.get('worker_limit_gb') if dask else None, '.1f', 7)}"
              f"{_fmt(r.get('spilled_written_gb') if dask else None, '.2f', 10)}"
              f"{_fmt(r.get('p2p_disk_gb') if dask else None, '.2f', 8)}"
              f"{_fmt(r.get('workers_lost') if dask else None, 'd', 6)}{_fmt(r.get('other_cpu_pct'), '.0f', 9)}%"
              f"  {r['status']}")
    print("peak GB: the measured process (for dask: the client, where the small results are assembled); tree GB: it"
          " and every process it started (workers, nanny), sampled by the parent; GB/worker: the highest worker's"
          " own ru_maxrss; spill GB: bytes the workers spilled to disk under memory pressure (cumulative SpillBuffer"
          " 'disk-write'); p2p GB: bytes a P2P shuffle (the demand median) buffered on disk; other CPU: share of the"
          " machine's CPU that processes outside the run used meanwhile (noise).")


def _engine_label(row: dict) -> str:
    return f"dask@{row['memory_limit']}" if row["engine"] == "dask" else row["engine"]


def print_growth(rows: list[dict]) -> None:
    print("\ngrowth (larger size / smaller size)")
    print(f"{'engine':<13}{'sizes':>12}{'events x':>10}{'wall x':>9}{'feat x':>9}{'demand x':>10}{'peak GB x':>11}"
          f"{'tree GB x':>11}")
    for engine, memory in dict.fromkeys((r["engine"], r.get("memory_limit", "")) for r in rows):
        done = [r for r in rows if (r["engine"], r.get("memory_limit", "")) == (engine, memory) and r["status"] == "ok"]
        for small, big in zip(done, done[1:], strict=False):
            def ratio(key, big=big, small=small):
                return big[key] / small[key] if small.get(key) else float("nan")

            print(f"{_engine_label(big):<13}{big['size'] + '/' + small['size']:>12}{ratio('events'):>10.1f}{ratio('total_s'):>9.2f}"
                  f"{ratio('user_features_s'):>9.2f}{ratio('demand_s'):>10.2f}{ratio('peak_gb'):>11.2f}"
                  f"{ratio('tree_peak_gb'):>11.2f}")


def print_estimate(rows: list[dict], workers: int, daily: float, hours: float, history_days: int) -> None:
    done = [r for r in rows if r["engine"] == "dask" and r["status"] == "ok"]
    if not done:
        print("\nno Dask run finished: no throughput estimate")
        return
    largest = max(r["events"] for r in done)
    big = min((r for r in done if r["events"] == largest), key=lambda r: r["total_s"])  # fastest limit at that size
    failed = [_engine_label(r) + " " + r["size"] for r in rows if r["engine"] == "dask" and r["status"] != "ok"]
    per_worker = big["events"] / big["total_s"] / workers
    window = hours * 3600
    need = math.ceil(daily / (per_worker * window))
    print(f"\nthroughput on {_engine_label(big)} at {big['size']}: {big['events']:,} events / {big['total_s']:.1f} s / "
          f"{workers} workers = r = {per_worker:,.0f} events/s per worker (user_features + demand aggregation, the "
          "client-side assembly included)" + (f"; did not finish: {', '.join(failed)}" if failed else ""))
    local = [r for r in rows if r["engine"] == "local" and r["status"] == "ok" and r["size"] == big["size"]]
    if local:
        print(f"local engine at {big['size']}: {local[0]['events'] / local[0]['total_s']:,.0f} events/s in one process")
    print(f"workers for E = {daily:,.0f} events/day in a W = {hours:g} h window: N = ceil(E / (r x W))"
          f" = ceil({daily:.3g} / ({per_worker:,.0f} x {window:,.0f} s)) = {need}")
    rescan = math.ceil(daily * history_days / (per_worker * window))
    print(f"these assets rescan all stored days: with {history_days} days of history kept, E = {history_days} x "
          f"{daily:.3g} per night -> N = {rescan} (assumes linear scaling: no scheduler, network or client-side limit)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", default="1e6,1e7,5e7", help="comma-separated sizes, e.g. 2e5,1e6")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "ecomarket-scale")
    parser.add_argument("--reuse", action="store_true", help="reuse prepared folders of earlier runs")
    parser.add_argument("--worker-memory", default="2GiB",
                        help="per Dask worker, or a comma-separated list to run Dask at each; 2 x 2 GiB is far below"
                             " the 50M inputs in memory (~18 GB in pandas), so the workers must stream or spill")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", default="local,dask")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement before it is killed")
    parser.add_argument("--daily-events", type=float, default=1e9)
    parser.add_argument("--window-hours", type=float, default=2.0)
    parser.add_argument("--one", nargs=2, metavar=("ENGINE", "EVENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work_dir = args.work_dir.expanduser().resolve()

    if args.one:
        result = run_one(args.one[0], int(args.one[1]), args.work_dir, args.worker_memory, args.workers)
        print(RESULT_MARK + json.dumps(result), flush=True)
        return

    import psutil

    args.work_dir.mkdir(parents=True, exist_ok=True)
    cap_gb = psutil.virtual_memory().total / GIB - 2.5  # leave the system and other work some room
    sizes = parse_sizes(args.events)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    limits = [m.strip() for m in args.worker_memory.split(",") if m.strip()]
    commit = subprocess.run(["git", "log", "-1", "--format=%h %cd", "--date=format:%Y-%m-%d %H:%M"], cwd=REPO_ROOT,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "ecomarket_assets"], cwd=REPO_ROOT,
                           capture_output=True, text=True).stdout.strip()
    print(f"code: {commit or 'unknown commit'}{' + uncommitted changes in ecomarket_assets' if dirty else ''}")
    print(f"sizes {', '.join(label(n) for n in sizes)}; engines {', '.join(engines)}; dask: {args.workers} workers x "
          f"1 thread, memory_limit {' / '.join(limits)} each; work dir {args.work_dir}", flush=True)
    print(f"\n{'preparation':<12}{'events':>12}{'chunks':>7}{'users':>10}{'products':>9}{'days':>5}{'simulate s':>11}"
          f"{'write s':>9}{'total s':>9}{'events GB':>10}{'activity GB':>12}{'on disk GB':>11}", flush=True)
    manifests = {}
    for n in sizes:
        m = manifests[n] = prepare(n, args.work_dir, args.reuse)
        print(f"{label(n):<12}{m['events']:>12,}{m['chunks']:>7}{m['users']:>10,}{m['products']:>9,}{m['days']:>5}"
              f"{m['simulate_seconds']:>11.0f}{m['write_seconds']:>9.0f}{m['prepare_seconds']:>9.0f}"
              f"{m['events_mem_gb']:>10.2f}{m['activity_mem_gb']:>12.2f}"
              f"{m['raw_events_disk_gb'] + m['activity_disk_gb']:>11.2f}{'  (reused)' if m['reused'] else ''}",
              flush=True)
    print("events GB / activity GB: in-memory (pandas) size of the columns the timed code reads; on disk: Parquet (zstd)")

    rows = []
    for n in sizes:
        for engine, memory in [(e, m) for e in engines for m in (limits if e == "dask" else [""])]:
            r = measure(engine, n, args, cap_gb, memory)
            rows.append(r)
            print(f"  {_engine_label(r):<13}{label(n):>6}: {r['status']}"
                  + (f", total {r['total_s']:.1f} s, peak {r['peak_gb']:.2f} GB" if r.get("total_s") else ""),
                  flush=True)
    print_table(rows)
    print_growth(rows)
    history = max(m["days"] for m in manifests.values())
    print_estimate(rows, args.workers, args.daily_events, args.window_hours, history)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwritten {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
