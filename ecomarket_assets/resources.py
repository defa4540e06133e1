"""Shared Dagster resources, configured from environment variables with working defaults."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg

from ecomarket_assets.ingestion import landing
from ecomarket_assets.ingestion.sources import SourceSpec, staged
from ecomarket_assets.ingestion.staging import StagedSource
from ecomarket_assets.simulator.shop import DEFAULT_START, SimConfig
from ecomarket_assets.storage import DataLayout, default_data_dir


class DataDirResource(dg.ConfigurableResource):
    """The one data directory; empty means `ECOMARKET_DATA_DIR` or `./data` in the checkout."""

    path: str = ""

    def layout(self) -> DataLayout:
        return DataLayout(self.path) if self.path else DataLayout(default_data_dir())


class ShopSourceResource(dg.ConfigurableResource):
    """Which shop to read. `kind`: simulator | online_retail | retailrocket | canonical."""

    kind: str = "simulator"
    path: str = ""
    sim_users: int = SimConfig.n_users
    sim_products: int = SimConfig.n_products
    sim_days: int = SimConfig.n_days
    sim_start: str = DEFAULT_START.isoformat()
    sim_seed: int = SimConfig.seed
    sim_shift_day: int = SimConfig.shift_day
    landing_dir: str = ""
    # Day/month order of numeric dates such as 01/08/2025: dayfirst, monthfirst or a strftime format.
    # Empty: the only order the file's values allow; a file they leave ambiguous is refused.
    date_format: str = ""

    @classmethod
    def from_env(cls) -> ShopSourceResource:
        env = os.environ
        return cls(
            kind=env.get("ECOMARKET_SOURCE", "simulator"),
            path=env.get("ECOMARKET_SOURCE_PATH", ""),
            sim_users=int(env.get("ECOMARKET_SIM_USERS", SimConfig.n_users)),
            sim_products=int(env.get("ECOMARKET_SIM_PRODUCTS", SimConfig.n_products)),
            sim_days=int(env.get("ECOMARKET_SIM_DAYS", SimConfig.n_days)),
            sim_start=env.get("ECOMARKET_SIM_START", DEFAULT_START.isoformat()),
            sim_seed=int(env.get("ECOMARKET_SIM_SEED", SimConfig.seed)),
            sim_shift_day=int(env.get("ECOMARKET_SIM_SHIFT_DAY", SimConfig.shift_day)),
            landing_dir=env.get("ECOMARKET_LANDING_DIR", ""),
            date_format=env.get("ECOMARKET_SOURCE_DATE_FORMAT", ""),
        )

    def spec(self) -> SourceSpec:
        sim = SimConfig(n_users=self.sim_users, n_products=self.sim_products, n_days=self.sim_days,
                        start_date=dt.date.fromisoformat(self.sim_start), seed=self.sim_seed,
                        shift_day=self.sim_shift_day)
        return SourceSpec(kind=self.kind, path=self.path or None, sim=sim, date_format=self.date_format or None)

    def staged(self, layout: DataLayout) -> StagedSource:
        return staged(self.spec(), layout.root)

    def landing_path(self, layout: DataLayout) -> Path:
        return Path(self.landing_dir) if self.landing_dir else layout.landing

    def truth(self, layout: DataLayout, names: tuple[str, ...]) -> dict | None:
        """The simulator's ground-truth tables by name, or None for real sources (or a staging without them)."""
        if self.kind != "simulator":
            return None
        truth_dir = self.staged(layout).truth_dir
        if not truth_dir or not all((truth_dir / f"{n}.parquet").exists() for n in names):
            return None
        from ecomarket_assets.storage import read_frame

        return {name: read_frame(truth_dir / f"{name}.parquet") for name in names}

    def landed_root(self, layout: DataLayout) -> Path:
        """Folder holding the archive of landed files and the file quarantine."""
        return landing.local_root(layout, self.landing_path(layout))

    def intake_landing(self, layout: DataLayout) -> landing.Intake:
        """Archive new landing files, quarantine unreadable ones (see ingestion/landing.py)."""
        return landing.intake(self.landing_path(layout), layout, self.date_format or None)

    def staged_landing(self, layout: DataLayout) -> list[StagedSource]:
        return landing.archived_sources(self.landed_root(layout), layout.root, self.date_format or None)

    def event_sources(self, layout: DataLayout) -> list[StagedSource]:
        """Every staged source whose events feed `raw_events`: the shop source, then archived landed files."""
        return [self.staged(layout), *self.staged_landing(layout)]
