"""Throughput of the shop simulator and of ingestion at 1M and 10M events, with peak memory; and of reading a
GA4 BigQuery export (gzip JSON lines and Parquet daily tables written by simulator/export_ga4.py) of >= 1M events.

    .venv/bin/python benchmarks/ingestion.py [--scales 1000000 10000000] [--ga4-events 1000000] [--only-ga4]

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


def write_ga4_export(n_events: int, queue: mp.Queue) -> None:
    """The simulated shop as GA4 daily tables, JSON lines and Parquet (not timed: the set-up of the GA4 case)."""
    from ecomarket_assets.simulator.export_ga4 import write_ga4
    from ecomarket_assets.simulator.shop import SimConfig, simulate

    cfg = SimConfig(n_users=max(1000, int(1.1 * n_events / EVENTS_PER_USER_90_DAYS)), n_products=1000)
    shop = simulate(cfg)
    root = Path(tempfile.mkdtemp(prefix="ecomarket-bench-ga4-"))
    start = time.perf_counter()
    summary = write_ga4(shop.tables.events, shop.tables.catalog, root / "json")
    json_seconds = time.perf_counter() - start
    write_ga4(shop.tables.events, shop.tables.catalog, root / "parquet", parquet=True)
    queue.put({"root": str(root), "events": summary["events"], "files": len(summary["files"]),
               "json_write_seconds": json_seconds})


def read_ga4_export(folder: str, queue: mp.Queue) -> None:
    """Read a GA4 export folder into canonical tables (the adapter alone: what staging a GA4 source costs)."""
    from ecomarket_assets.ingestion.adapters.ga4 import read_ga4

    size = sum(p.stat().st_size for p in Path(folder).iterdir())
    start = time.perf_counter()
    tables = read_ga4(folder)
    seconds = time.perf_counter() - start
    queue.put({"events": len(tables.events), "rows": tables.rows_read, "seconds": seconds, "mb": size / 1e6,
               "peak_gb": _peak_rss_gb()})


def ga4_case(n_events: int) -> None:
    export = run(write_ga4_export, n_events)
    try:
        print(f"GA4 export of the simulated shop: {export['events']:,} events in {export['files']} daily tables "
              f"(JSON lines gz written in {export['json_write_seconds']:.1f} s)")
        for kind in ("json", "parquet"):
            got = run(read_ga4_export, str(Path(export["root"]) / kind))
            assert got["events"] == export["events"], got
            label = f"read GA4 {'JSON lines gz' if kind == 'json' else 'Parquet'} ({got['mb']:.0f} MB)"
            print(f"{label:<34}{got['events']:>12,}{got['seconds']:>10.1f}{got['events'] / got['seconds']:>12,.0f}"
                  f"{got['peak_gb']:>13.2f}")
    finally:
        shutil.rmtree(export["root"], ignore_errors=True)


def run(target, n_events) -> dict:
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
    parser.add_argument("--ga4-events", type=int, default=1_000_000, help="size of the GA4 export read (0: skip)")
    parser.add_argument("--only-ga4", action="store_true", help="only the GA4 case")
    args = parser.parse_args()
    print(f"{'stage':<34}{'events':>12}{'seconds':>10}{'events/s':>12}{'peak RSS GB':>13}")
    for n in [] if args.only_ga4 else args.scales:
        sim = run(simulate_only, n)
        print(f"{'simulator (generate in memory)':<34}{sim['events']:>12,}{sim['seconds']:>10.1f}"
              f"{sim['events'] / sim['seconds']:>12,.0f}{sim['peak_gb']:>13.2f}")
        ing = run(ingest_all, n)
        print(f"{'simulate + stage as day files':<34}{ing['events']:>12,}{ing['stage_seconds']:>10.1f}"
              f"{ing['events'] / ing['stage_seconds']:>12,.0f}{'':>13}")
        print(f"{'ingest (validate+quarantine+write)':<34}{ing['events']:>12,}{ing['seconds']:>10.1f}"
              f"{ing['events'] / ing['seconds']:>12,.0f}{ing['peak_gb']:>13.2f}")
        assert ing["kept"] <= ing["events"]
    if args.ga4_events:
        ga4_case(args.ga4_events)


if __name__ == "__main__":
    main()
