"""The daily partitions of event-driven assets.

The first day comes from `ECOMARKET_PARTITIONS_START` (default: the simulator's
first day), so a real shop's history (e.g. 2010-12-01 for Online Retail) fits.
"""

from __future__ import annotations

import os

import dagster as dg

from ecomarket_assets.simulator.shop import DEFAULT_START

PARTITIONS_START = os.environ.get("ECOMARKET_PARTITIONS_START", DEFAULT_START.isoformat())

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run materialize the daily partitions first..last (both included).

    Dagster 1.13 has no public argument for a partition range in `dg.materialize`
    or `execute_in_process` (only `partition_key`), and exports these tag names
    only from `dagster._core`. The tags themselves are the interface the UI, the
    CLI's `--partition-range` and single-run backfills use to launch a range, so
    they are spelled here, once.
    """
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
