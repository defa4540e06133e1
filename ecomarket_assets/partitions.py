"""The daily partitions of event-driven assets.

The first day is the setting `ECOMARKET_PARTITIONS_START` (default: the built-in simulated shop's first
day), so a real shop's history (e.g. 2010-12-01 for Online Retail) fits. It is read when the definitions
load: partitions belong to the code location, not to a run (see settings.py).
"""

from __future__ import annotations

import dagster as dg

from ecomarket_assets.settings import partitions_start

daily_partitions = dg.DailyPartitionsDefinition(start_date=partitions_start(), timezone="UTC")
