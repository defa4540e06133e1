"""Throughput of the `shopify` source: a Shopify Orders export of 1M line items read into the canonical tables.

    .venv/bin/python benchmarks/shopify_source.py [--lines 1000000]

The simulated shop is written as the three Shopify exports (simulator/export_shopify.py); its Orders export is
then repeated, each copy with its own order names and customers, up to `--lines` line items. The read runs in
its own process, so its peak resident memory is its own: `read` is the adapter (CSV → events, catalog,
customers), `staged` adds writing the tables by day as the graph's first step does. Prints a table; not a
timed test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def write_export(folder: Path, lines: int) -> int:
    """The simulated shop's three exports, the Orders one repeated up to `lines` line items; returns its rows."""
    import pandas as pd

    from ecomarket_assets.simulator.export_shopify import write_shopify
    from ecomarket_assets.simulator.shop import SimConfig, simulate

    paths = write_shopify(simulate(SimConfig()).tables, folder)
    orders = pd.read_csv(paths["orders"], dtype=str, keep_default_na=False)
    copies = []
    for copy in range(-(-lines // len(orders))):
        part = orders.copy()
        part["Name"] = part["Name"] + f"-{copy}"
        emails = part["Email"] != ""
        part.loc[emails, "Email"] = part.loc[emails, "Email"].str.replace("@", f"+{copy}@", regex=False)
        copies.append(part)
    big = pd.concat(copies, ignore_index=True).head(lines)
    big.to_csv(paths["orders"], index=False)
    return len(big)


def read(folder: str, queue: mp.Queue) -> None:
    from ecomarket_assets.ingestion.adapters.shopify import read_shopify

    start = time.perf_counter()
    tables = read_shopify(folder)
    seconds = time.perf_counter() - start
    queue.put({"events": len(tables.events), "rejects": len(tables.rejects), "customers": len(tables.customers),
               "seconds": seconds, "peak_gb": _peak_rss_gb()})


def staged(folder: str, queue: mp.Queue) -> None:
    from ecomarket_assets.resources import ShopSourceResource
    from ecomarket_assets.storage import DataLayout

    root = Path(tempfile.mkdtemp(prefix="ecomarket-bench-shopify-"))
    try:
        start = time.perf_counter()
        source = ShopSourceResource(kind="shopify", path=folder).staged(DataLayout(root))
        seconds = time.perf_counter() - start
        queue.put({"events": sum(d["events"] for d in source.manifest["days"].values()), "rejects": 0,
                   "customers": None, "seconds": seconds, "peak_gb": _peak_rss_gb()})
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(target, folder: Path) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(str(folder), queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ecomarket-shopify-export-"))
    try:
        rows = write_export(folder, args.lines)
        size_mb = (folder / "orders_export_1.csv").stat().st_size / 1024**2
        print(f"Shopify Orders export: {rows:,} line items, {size_mb:,.0f} MB")
        print("| step | line items | events | seconds | line items / s | peak memory GB |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, target in (("read", read), ("staged", staged)):
            r = _run(target, folder)
            print(f"| {name} | {rows:,} | {r['events']:,} | {r['seconds']:.1f} | {rows / r['seconds']:,.0f} "
                  f"| {r['peak_gb']:.2f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
