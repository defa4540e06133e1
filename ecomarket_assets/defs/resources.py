"""Resources for every asset, built from the settings table (ecomarket_assets/settings.py, see README)."""

import dagster as dg

from ecomarket_assets import settings


@dg.definitions
def resources() -> dg.Definitions:
    settings.keep_hub_offline()
    return dg.Definitions(resources=settings.resources())
