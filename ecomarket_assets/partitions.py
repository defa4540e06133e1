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
