"""Throughput of the shop simulator and of ingestion at 1M and 10M events, with peak memory.

    .venv/bin/python benchmarks/ingestion.py [--scales 1000000 10000000]

Each scenario runs in its own process so its peak resident memory is its own.
Prints a table; not a timed test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path

EVENTS_PER_USER_90_DAYS = 71  # measured on the default simulator; only used to size the user base


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def simulate_only(n_events: int, queue: mp.Queue) -> None:
    from ecomarket_assets.simulator.shop import SimConfig, simulate

    cfg = SimConfig(n_users=max(1000, n_events // EVENTS_PER_USER_90_DAYS), n_products=2000 if n_events > 2e6 else 1000)
    start = time.perf_counter()
    shop = simulate(cfg)
    seconds = time.perf_counter() - start
    queue.put({"events": len(shop.tables.events), "seconds": seconds, "peak_gb": _peak_rss_gb()})


def ingest_all(n_events: int, queue: mp.Queue) -> None:
    """Stage the simulated shop, then ingest every day: validation, quarantine, Parquet writes."""
    import pandas as pd

    from ecomarket_assets.ingestion.pipeline import ingest_events_day, ingest_table
    from ecomarket_assets.resources import ShopSourceResource
    from ecomarket_assets.schemas import CATALOG
    from ecomarket_assets.simulator.shop import SimConfig
    from ecomarket_assets.storage import DataLayout

    cfg = SimConfig(n_users=max(1000, n_events // EVENTS_PER_USER_90_DAYS), n_products=2000 if n_events > 2e6 else 1000)
    root = Path(tempfile.mkdtemp(prefix="ecomarket-bench-"))
    try:
        layout = DataLayout(root)
        start = time.perf_counter()
        source = ShopSourceResource(sim_users=cfg.n_users, sim_products=cfg.n_products).staged(layout)
        staged_seconds = time.perf_counter() - start
        catalog, _ = ingest_table(CATALOG, source.table("catalog"), layout)
        products = pd.Index(catalog["product_id"])
        start = time.perf_counter()
        rows = kept = 0
        for day in source.days():
            report = ingest_events_day(day, [source], products, layout)
            rows, kept = rows + report.rows_read, kept + report.rows_kept
        ingest_seconds = time.perf_counter() - start
        queue.put({"events": rows, "kept": kept, "stage_seconds": staged_seconds, "seconds": ingest_seconds,
                   "days": len(source.days()), "peak_gb": _peak_rss_gb()})
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(target, n_events: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(n_events, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    print(f"{'stage':<34}{'events':>12}{'seconds':>10}{'events/s':>12}{'peak RSS GB':>13}")
    for n in args.scales:
        sim = run(simulate_only, n)
        print(f"{'simulator (generate in memory)':<34}{sim['events']:>12,}{sim['seconds']:>10.1f}"
              f"{sim['events'] / sim['seconds']:>12,.0f}{sim['peak_gb']:>13.2f}")
        ing = run(ingest_all, n)
        print(f"{'simulate + stage as day files':<34}{ing['events']:>12,}{ing['stage_seconds']:>10.1f}"
              f"{ing['events'] / ing['stage_seconds']:>12,.0f}{'':>13}")
        print(f"{'ingest (validate+quarantine+write)':<34}{ing['events']:>12,}{ing['seconds']:>10.1f}"
              f"{ing['events'] / ing['seconds']:>12,.0f}{ing['peak_gb']:>13.2f}")
        assert ing["kept"] <= ing["events"]


if __name__ == "__main__":
    main()
