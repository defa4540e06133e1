"""The daily partitions of event-driven assets.

The first day is the setting `ECOMARKET_PARTITIONS_START` (default: the built-in simulated shop's first
day), so a real shop's history (e.g. 2010-12-01 for Online Retail) fits. It is read when the definitions
load: partitions belong to the code location, not to a run (see settings.py).
"""

from __future__ import annotations

import dagster as dg

from ecomarket_assets.settings import partitions_start

daily_partitions = dg.DailyPartitionsDefinition(start_date=partitions_start(), timezone="UTC")


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run materialize the daily partitions first..last (both included).

    Dagster 1.13 has no public argument for a partition range in `dg.materialize`
    or `execute_in_process` (only `partition_key`), and exports these tag names
    only from its private modules. The tags themselves are the interface the UI, the
    CLI's `--partition-range` and single-run backfills use to launch a range, so
    they are spelled here, once.
    """
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
