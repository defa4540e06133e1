"""Shared Dagster resources. Every field has a working default; settings.py binds fields to environment variables
(read when a run launches) and defs/resources.py registers what it builds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import ConfigDict, field_validator

from ecomarket_assets.campaigns.store import specs_dir
from ecomarket_assets.collector.writer import SOURCE_NAME
from ecomarket_assets.flows.webhook import Webhook, check_webhook_url
from ecomarket_assets.forecasting import calendar as cal
from ecomarket_assets.forecasting.features import HORIZON
from ecomarket_assets.ingestion import landing
from ecomarket_assets.ingestion.sources import (
    FILE_KINDS,
    BuiltTables,
    SourceSpec,
    staged,
    staged_tables,
)
from ecomarket_assets.ingestion.staging import StagedSource
from ecomarket_assets.simulator.shop import DEFAULT_START, SimConfig, simulate
from ecomarket_assets.simulator.truth import ShopTruth, sale_plan
from ecomarket_assets.storage import REPO_ROOT, DataLayout, default_data_dir

SIMULATOR = "simulator"  # the user-facing kind of the built-in simulated shop (ECOMARKET_SOURCE=simulator)
SQL = "sql"  # a shop's own database, mapped by a YAML file (ingestion/adapters/sql.py)
SOURCE_KINDS = (SIMULATOR, *FILE_KINDS, SQL)


class DataDirResource(dg.ConfigurableResource):
    """The one data directory: a folder or a URL such as s3://bucket/prefix; empty means `./data` in the checkout."""

    path: str = ""

    def layout(self) -> DataLayout:
        return DataLayout(self.path) if self.path else DataLayout(default_data_dir())


class ShopSourceResource(dg.ConfigurableResource):
    """Which shop to read, and the one door to what only a simulated shop knows (its ground truth).

    `kind`: simulator (the built-in simulated shop, `sim_*` fields) | online_retail | retailrocket | canonical |
    shopify (the admin's CSV exports; `pseudonym_key` keys the user ids) | ga4 (a GA4 BigQuery export as files).
    `kind` sql reads a database (`sql_url`, `sql_mapping`; see ingestion/adapters/sql.py); since the URL may hold
    a password, validation errors never show the input.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    kind: str = SIMULATOR
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
    # CSV name,start,days,discount of the site-wide sales the shop has planned; empty = the source's own plan
    # (the simulated shop's) or the Black Friday rule.
    sales_calendar_csv: str = ""
    # Key of the user_id pseudonyms of email addresses (Shopify); empty = the built-in key. Changing it gives every
    # customer a new id.
    pseudonym_key: str = ""
    # kind sql: the database's SQLAlchemy URL (errors show it with the password hidden) and the mapping file
    sql_url: str = ""
    sql_mapping: str = ""

    def sim_config(self) -> SimConfig:
        return SimConfig(n_users=self.sim_users, n_products=self.sim_products, n_days=self.sim_days,
                         start_date=dt.date.fromisoformat(self.sim_start), seed=self.sim_seed,
                         shift_day=self.sim_shift_day)

    def staged(self, layout: DataLayout) -> StagedSource:
        """The shop's tables staged by day (see ingestion/staging.py), built on first use."""
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source kind {self.kind!r}; choose one of {', '.join(SOURCE_KINDS)}")
        if self.kind == SIMULATOR:
            sim = self.sim_config()
            return staged_tables(layout.root, SIMULATOR, sim.fingerprint(), lambda: _simulated(sim),
                                 description=f"simulator {sim}")
        if self.kind == SQL:
            from ecomarket_assets.ingestion.adapters.sql import staged_sql

            return staged_sql(self.sql_url, self.sql_mapping, layout.root)
        return staged(SourceSpec(self.kind, self.path or None, self.date_format or None, self.pseudonym_key or None),
                      layout.root)

    def landing_path(self, layout: DataLayout) -> Path:
        return Path(self.landing_dir) if self.landing_dir else layout.landing

    def truth(self, layout: DataLayout) -> ShopTruth | None:
        """The shop's ground truth where the source knows it (the built-in simulated shop), else None."""
        if self.kind != SIMULATOR:
            return None
        folder = self.staged(layout).truth_dir
        return None if folder is None else ShopTruth(folder, seed=self.sim_seed)

    def sales_calendar(self, start: pd.Timestamp, end: pd.Timestamp) -> cal.SalesCalendar:
        """Site-wide sales over the days: a configured CSV wins, then the simulated shop's own plan, else the
        Black-Friday-to-Cyber-Monday rule."""
        configured = Path(self.sales_calendar_csv).expanduser() if self.sales_calendar_csv else None
        return cal.calendar_for(start, end, configured, sale_plan if self.kind == SIMULATOR else None)

    def landed_root(self, layout: DataLayout) -> Path:
        """Folder holding the archive of landed files and the file quarantine."""
        return landing.local_root(layout, self.landing_path(layout))

    def intake_landing(self, layout: DataLayout) -> landing.Intake:
        """Archive new landing files, quarantine unreadable ones (see ingestion/landing.py)."""
        return landing.intake(self.landing_path(layout), layout, self.date_format or None, self.pseudonym_key or None)

    def staged_landing(self, layout: DataLayout) -> list[StagedSource]:
        return landing.archived_sources(self.landed_root(layout), layout.root, self.date_format or None,
                                        self.pseudonym_key or None)

    def event_sources(self, layout: DataLayout) -> list[StagedSource]:
        """Every staged source whose events feed `raw_events`: the shop source, then archived landed files."""
        return [self.staged(layout), *self.staged_landing(layout)]


def _simulated(sim: SimConfig) -> BuiltTables:
    shop = simulate(sim)
    return shop.tables, shop.truth


class ForecastTrainingResource(dg.ConfigurableResource):
    """How hard `demand_model` searches, and the newest days it leaves out for the promotion step.

    Settings of the deployment (the launchpad's resources section overrides them for one run); the per-run seed
    stays in the asset's run config.
    """

    n_trials: int = 15  # Optuna trials
    # Optuna time budget, enforced inside a fit once a first trial has finished; the search stops at whichever
    # of the two comes first
    timeout_seconds: int = 120
    # The search runs on at most this many products (a seeded sample; 0 = all), the final fit on all of them
    tuning_products: int = 1200
    # A weekly retrain refits with the last search's hyper-parameters; Optuna searches again once they are this
    # many days of data old, when the level of demand has shifted, or when the run config asks (`tuning: full`).
    retune_days: int = 28
    # The last days the registered version never learns from: the fresh hold-out on which the promotion
    # step compares it with the champion (features at forecast time still read every day).
    holdout_days: int = HORIZON


class DriftThresholdsResource(dg.ConfigurableResource):
    """When the drift checks fail. The thresholds are kept in each monitor's summary, so a check judges with
    what its asset ran with.

    Decimal numbers are text here: Dagster's config fills only str, int and bool fields from an environment
    variable (there is no float `EnvVar`), and these must be read when a run launches.
    """

    max_drifted_share: str = "0.3"  # share of drifted columns above which a drift check fails
    max_cold_start_change: str = "0.1"  # largest move of the cold-start share of recommendations

    def thresholds(self) -> dict[str, float]:
        return {name: _share(name, getattr(self, name)) for name in ("max_drifted_share", "max_cold_start_change")}


def _share(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"drift threshold {name}={text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"drift threshold {name}={value} must lie between 0 and 1")
    return value


class CampaignsResource(dg.ConfigurableResource):
    """Where marketing keeps the campaign YAML specs; empty = `campaigns/` in the checkout."""

    specs_dir: str = ""

    def folder(self) -> Path:
        return specs_dir(self.specs_dir)


class CollectorResource(dg.ConfigurableResource):
    """The event collector's settings (ecomarket_assets/collector): API keys per source, micro-batch rotation,
    limits at the door."""

    api_keys: str = ""  # source:key pairs, comma-separated (shop1:key1,shop2:key2)
    keys_file: str = ""  # a file of source:key lines (# comments); read after api_keys
    rotate_seconds: int = 300
    rotate_kb: int = 8192
    max_body_kb: int = 10240  # a request body over this is answered 413
    max_field_chars: int = 1000  # a longer string value is refused (too_long_<column>)
    future_skew_seconds: int = 600  # an event dated after now + this is refused (future_event_time)

    def key_sources(self) -> dict[str, str]:
        """API key -> source. A malformed entry raises, naming the setting and the entry's position, never its
        text (it may hold a key); so does a source name the landing files cannot carry."""
        entries = [("ECOMARKET_COLLECTOR_KEYS", f"entry {n}", p) for n, p in enumerate(self.api_keys.split(","), 1)]
        if self.keys_file:
            lines = Path(self.keys_file).read_text().splitlines()
            entries += [("ECOMARKET_COLLECTOR_KEYS_FILE", f"line {n}", line) for n, line in enumerate(lines, 1)
                        if not line.lstrip().startswith("#")]
        keys: dict[str, str] = {}
        for setting, where, pair in [e for e in entries if e[2].strip()]:
            source, sep, key = (part.strip() for part in pair.partition(":"))
            if not sep or not source or not key:
                raise ValueError(f"{setting}, {where}: write source:key (the entry is not shown: it may hold a key)")
            if not SOURCE_NAME.match(source):
                odd = "".join(sorted({c for c in source if not (c.isascii() and (c.isalnum() or c in "_-"))}))
                problem = f"the characters {odd!r}" if odd else f"{len(source)} characters"
                raise ValueError(f"{setting}, {where}: the source name has {problem}; use 1 to 64 letters, "
                                 "digits, _ or -")
            keys[key] = source
        return keys

    def door_limits(self) -> tuple[int, int, int]:
        """(max body bytes, max field characters, future skew seconds), each checked, naming its setting."""
        for name, value, low in (("ECOMARKET_COLLECTOR_MAX_BODY_KB", self.max_body_kb, 1),
                                 ("ECOMARKET_COLLECTOR_MAX_FIELD_CHARS", self.max_field_chars, 1),
                                 ("ECOMARKET_COLLECTOR_FUTURE_SKEW_SECONDS", self.future_skew_seconds, 0)):
            if value < low:
                raise ValueError(f"{name}={value}: must be at least {low}")
        return self.max_body_kb * 1024, self.max_field_chars, self.future_skew_seconds


class FlowsResource(dg.ConfigurableResource):
    """Triggered flows (ecomarket_assets/flows): the YAML folder and the optional webhook the outbox POSTs to.

    The webhook URL is checked whenever the resource gets a value (as the definitions load, see
    `settings.check_settings`, and as a run or the flow sensor resolves `ECOMARKET_FLOW_WEBHOOK_URL`); errors
    never show the value, which may hold a token."""

    model_config = ConfigDict(hide_input_in_errors=True)

    flows_dir: str = ""  # empty = `flows/` in the checkout
    webhook_url: str = ""  # empty = no webhook: the outbox files are the hand-over
    webhook_max_attempts: int = 8

    @field_validator("webhook_url", mode="before")  # before pydantic turns an EnvVar into a plain str
    @classmethod
    def _webhook_url(cls, value: object) -> object:
        if value and isinstance(value, str) and not isinstance(value, dg.EnvVar):  # an EnvVar: once resolved
            try:
                check_webhook_url(value)
            except ValueError as exc:
                raise ValueError(f"ECOMARKET_FLOW_WEBHOOK_URL (flows.webhook_url): {exc}") from None
        return value

    def folder(self) -> Path:
        return Path(self.flows_dir).expanduser().resolve() if self.flows_dir else REPO_ROOT / "flows"

    def webhook(self) -> Webhook | None:
        return Webhook(self.webhook_url, max_attempts=self.webhook_max_attempts) if self.webhook_url else None
