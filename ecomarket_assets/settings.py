"""Every setting of the platform in one table, and the resources built from it.

A setting is an environment variable that sets one field of one resource (named by the key the resource has
in the Definitions). `resources()` gives each field `dg.EnvVar("ECOMARKET_...")` when its variable is set
(and not empty) as the definitions load, else leaves the field at its default. What Dagster does with that
(checked in ecomarket_assets_tests/test_settings.py):

- the value is read when a run launches, in the run's process: change a bound variable and the next run sees
  the new value without a reload;
- the launchpad and the resources page show which variable feeds which field, and the launchpad's resources
  section overrides any field for one run;
- whether a field is bound is decided when the definitions load: a variable first set afterwards is seen after
  a reload ("Reload definitions" in the UI), and a bound variable unset later fails the run, naming it.

Dagster fills only str and int fields from a variable (there is no float `EnvVar`), so the two decimal
settings are text fields that their resource parses (DriftThresholdsResource).

Outside Dagster (the registry CLI, `make run`'s summary, benchmarks) no run resolves an `EnvVar`:
`plain(SomeResource)` builds the same resource with the values the environment holds now.

`ECOMARKET_PARTITIONS_START` is the one setting read when the definitions load: the daily partitions belong
to the code location, not to a run.

    python -m ecomarket_assets.settings    # prints the README's settings table
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import dagster as dg
from pydantic import ValidationError

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.resources import (
    CampaignsResource,
    CollectorResource,
    DataDirResource,
    DriftThresholdsResource,
    FlowsResource,
    ForecastTrainingResource,
    ShopSourceResource,
)
from ecomarket_assets.simulator.shop import DEFAULT_START
from ecomarket_assets.text.model import EmbeddingModelResource

# Resource keys in the Definitions, and the class each one is.
RESOURCES: dict[str, type[dg.ConfigurableResource]] = {
    "data_dir": DataDirResource,
    "source": ShopSourceResource,
    "embedding_model": EmbeddingModelResource,
    "mlflow_tracking": MlflowResource,
    "compute": ComputeResource,
    "forecast_training": ForecastTrainingResource,
    "drift_thresholds": DriftThresholdsResource,
    "campaigns": CampaignsResource,
    "collector": CollectorResource,
    "flows": FlowsResource,
}
AT_LOAD = ""  # `resource` of a setting read when the definitions load (it sets no resource field)
R = TypeVar("R", bound=dg.ConfigurableResource)


@dataclass(frozen=True)
class Setting:
    env: str
    resource: str  # a key of RESOURCES, or AT_LOAD
    field: str
    help: str
    shown_default: str = ""  # how the README shows a default the field leaves empty (or computes)

    @property
    def default(self) -> object:
        if self.resource == AT_LOAD:
            return DEFAULT_START.isoformat()
        return RESOURCES[self.resource].model_fields[self.field].default

    @property
    def is_int(self) -> bool:
        return self.resource != AT_LOAD and RESOURCES[self.resource].model_fields[self.field].annotation is int

    def is_set(self) -> bool:
        return bool(os.environ.get(self.env))

    def env_var(self) -> dg.EnvVar | dg.IntEnvVar:
        """The field's value as Dagster resolves it when a run launches."""
        return dg.EnvVar.int(self.env) if self.is_int else dg.EnvVar(self.env)

    def value_now(self) -> int | str:
        raw = os.environ[self.env]
        if not self.is_int:
            return raw
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{self.env}={raw!r} is not a whole number") from None


SETTINGS: tuple[Setting, ...] = (
    Setting("ECOMARKET_DATA_DIR", "data_dir", "path",
            "the data directory (git-ignored); a URL such as `s3://bucket/prefix` puts it on shared storage "
            "(see Running on a cluster)", "`./data`"),
    Setting("ECOMARKET_SOURCE", "source", "kind",
            "`simulator` (the built-in simulated shop), `online_retail`, `retailrocket`, `canonical`, `shopify` "
            "(the Shopify admin's CSV exports, see docs/connect-shopify.md), `ga4` (a GA4 BigQuery export "
            "extracted to files, see docs/connect-ga4.md) or `sql` (a "
            "database, see `ECOMARKET_SQL_URL`)"),
    Setting("ECOMARKET_SOURCE_PATH", "source", "path", "file or folder for the file sources"),
    Setting("ECOMARKET_PARTITIONS_START", AT_LOAD, "",
            "first daily partition; set it to the shop's first day (e.g. `2010-12-01` for Online Retail). Read "
            "when the definitions load, not at launch: the partitions belong to the code location, so a change "
            "needs a reload"),
    Setting("ECOMARKET_LANDING_DIR", "source", "landing_dir", "folder the landing sensor watches", "`<data>/landing`"),
    Setting("ECOMARKET_SOURCE_DATE_FORMAT", "source", "date_format",
            "day/month order of numeric dates in source and landing files: `dayfirst`, `monthfirst` or a strftime "
            "format; files whose dates read both ways are refused until it is set", "(infer)"),
    Setting("ECOMARKET_SQL_URL", "source", "sql_url",
            "with `ECOMARKET_SOURCE=sql`: the shop database's SQLAlchemy URL, e.g. "
            "`postgresql+psycopg2://user:password@host/shop` (errors show it with the password hidden; see "
            "docs/connect-sql.md)"),
    Setting("ECOMARKET_SQL_MAPPING", "source", "sql_mapping",
            "with `ECOMARKET_SOURCE=sql`: the YAML file mapping the database's tables to the canonical ones "
            "(example: `sql/woocommerce.yaml`)"),
    Setting("ECOMARKET_PSEUDONYM_KEY", "source", "pseudonym_key",
            "key of the `user_id` pseudonyms of email addresses (`ECOMARKET_SOURCE=shopify` and Shopify landing "
            "files; see docs/connect-shopify.md); keep it secret and unchanged: a new key gives every customer a new id",
            "(built-in key)"),
    Setting("ECOMARKET_SALES_CALENDAR", "source", "sales_calendar_csv",
            "CSV `name,start,days,discount` of site-wide sales the shop has planned (a known-future forecast "
            "feature); empty: the simulated shop's own plan, or Black Friday to Cyber Monday"),
    Setting("ECOMARKET_SIM_USERS", "source", "sim_users", "simulated shop: users"),
    Setting("ECOMARKET_SIM_PRODUCTS", "source", "sim_products", "simulated shop: products"),
    Setting("ECOMARKET_SIM_DAYS", "source", "sim_days", "simulated shop: days of history"),
    Setting("ECOMARKET_SIM_START", "source", "sim_start", "simulated shop: first day"),
    Setting("ECOMARKET_SIM_SEED", "source", "sim_seed", "simulated shop: random seed"),
    Setting("ECOMARKET_SIM_SHIFT_DAY", "source", "sim_shift_day",
            "simulated shop: a market shift from that day on, -1 = none (see The shop simulator)"),
    Setting("ECOMARKET_EMBEDDING_MODEL", "embedding_model", "model_path",
            "a local sentence-transformers folder (nothing is downloaded)", "the packaged all-MiniLM-L6-v2"),
    Setting("ECOMARKET_EMBEDDING_BATCH_SIZE", "embedding_model", "batch_size", "encoding batch size"),
    Setting("ECOMARKET_SENTIMENT_DATA", "embedding_model", "sentiment_data",
            "labelled sentences for the sentiment evaluation", "`../shared/datasets/sentiment_en`"),
    Setting("ECOMARKET_REFERENCE_CACHE", "embedding_model", "reference_cache",
            "embedding cache of those sentences, shared by every shop on the machine",
            "`~/.cache/ecomarket/reference_embeddings.parquet`"),
    Setting("ECOMARKET_TORCH_THREADS", "embedding_model", "torch_threads",
            "threads the sentence model encodes on; 0 = half the cores, so it never fights a LightGBM fit in the "
            "same run (2 on a machine where encoding runs alone)"),
    Setting("ECOMARKET_MLFLOW_TRACKING_URI", "mlflow_tracking", "tracking_uri",
            "MLflow tracking and registry (an `http://` server in docker)", "`sqlite:///<checkout>/mlruns/mlflow.db`"),
    Setting("ECOMARKET_MLFLOW_ARTIFACT_ROOT", "mlflow_tracking", "artifact_root",
            "where new experiments keep artifacts (a tracking server picks its own)", "`<checkout>/mlruns/artifacts`"),
    Setting("ECOMARKET_MLFLOW_UI_URL", "mlflow_tracking", "ui_url", "base of the MLflow links in asset metadata",
            "`http://127.0.0.1:5000`"),
    Setting("ECOMARKET_FORECAST_TRIALS", "forecast_training", "n_trials", "Optuna trials of `demand_model`"),
    Setting("ECOMARKET_FORECAST_TIMEOUT", "forecast_training", "timeout_seconds",
            "Optuna time budget of `demand_model`, in seconds; a search on fewer than 300,000 training rows gets "
            "a proportional share (at least 20 s)"),
    Setting("ECOMARKET_FORECAST_TUNING_PRODUCTS", "forecast_training", "tuning_products",
            "the Optuna search of `demand_model` runs on at most this many products (a seeded sample; 0 = all); the "
            "final fit learns from all"),
    Setting("ECOMARKET_FORECAST_RETUNE_DAYS", "forecast_training", "retune_days",
            "a retrain reuses the last Optuna search's choices until they are this old (days of data), then searches "
            "again; 0 = search every time"),
    Setting("ECOMARKET_FORECAST_HOLDOUT_DAYS", "forecast_training", "holdout_days",
            "newest days the registered demand model leaves out: the promotion step's fresh hold-out"),
    Setting("ECOMARKET_DRIFT_MAX_SHARE", "drift_thresholds", "max_drifted_share",
            "a drift check fails above this share of drifted columns"),
    Setting("ECOMARKET_DRIFT_MAX_COLD_START_CHANGE", "drift_thresholds", "max_cold_start_change",
            "the recommendation drift check fails when the share of cold-start users moves more than this"),
    Setting("ECOMARKET_ENGINE", "compute", "engine",
            "`local` or `dask`: `dask` runs ingestion, the event-heavy aggregations and the LightGBM fits on a "
            "Dask cluster (see Running on a cluster)"),
    Setting("ECOMARKET_DASK_SCHEDULER", "compute", "scheduler",
            "a Dask scheduler address; empty: an in-process LocalCluster, started once per run process",
            "(a LocalCluster)"),
    Setting("ECOMARKET_DASK_WORKERS", "compute", "workers", "workers of that LocalCluster"),
    Setting("ECOMARKET_DASK_MEMORY_LIMIT", "compute", "memory_limit",
            "memory limit of each LocalCluster worker (e.g. `2GiB`); past it, workers spill to disk"),
    Setting("ECOMARKET_CAMPAIGNS_DIR", "campaigns", "specs_dir", "folder of the campaign YAML specs",
            "`campaigns/` in the checkout"),
    Setting("ECOMARKET_COLLECTOR_KEYS", "collector", "api_keys",
            "event collector API keys, one per source: `shop1:key1,shop2:key2` (the `X-API-Key` header)", "(none)"),
    Setting("ECOMARKET_COLLECTOR_KEYS_FILE", "collector", "keys_file",
            "a file of `source:key` lines, read after `ECOMARKET_COLLECTOR_KEYS`"),
    Setting("ECOMARKET_COLLECTOR_ROTATE_SECONDS", "collector", "rotate_seconds",
            "the collector closes a micro-batch file (and the landing sensor may ingest it) after this many seconds"),
    Setting("ECOMARKET_COLLECTOR_ROTATE_KB", "collector", "rotate_kb", "... or once it holds this many KiB"),
    Setting("ECOMARKET_COLLECTOR_MAX_BODY_KB", "collector", "max_body_kb",
            "the collector answers 413 to a request body larger than this many KiB"),
    Setting("ECOMARKET_COLLECTOR_MAX_FIELD_CHARS", "collector", "max_field_chars",
            "the collector refuses an event with a longer text value (`too_long_<column>`)"),
    Setting("ECOMARKET_COLLECTOR_FUTURE_SKEW_SECONDS", "collector", "future_skew_seconds",
            "the collector refuses an event dated more than this many seconds ahead of its clock "
            "(`future_event_time`)"),
    Setting("ECOMARKET_FLOWS_DIR", "flows", "flows_dir", "folder of the triggered-flow YAML specs",
            "`flows/` in the checkout"),
    Setting("ECOMARKET_FLOW_WEBHOOK_URL", "flows", "webhook_url",
            "the flow sensor POSTs each treatment send there (JSON, `Idempotency-Key` header); empty: outbox files only",
            "(none)"),
    Setting("ECOMARKET_FLOW_WEBHOOK_MAX_ATTEMPTS", "flows", "webhook_max_attempts",
            "attempts per send, over all ticks, before the webhook gives up on it"),
)


def settings_of(key: str) -> list[Setting]:
    return [s for s in SETTINGS if s.resource == key]


def resource_args(key: str) -> dict[str, dg.EnvVar | dg.IntEnvVar]:
    """Constructor arguments of resource `key`: an `EnvVar` for each of its settings set now; the rest default."""
    return {s.field: s.env_var() for s in settings_of(key) if s.is_set()}


def resources() -> dict[str, dg.ConfigurableResource]:
    """Every shared resource, its settings bound to their variables (what defs/resources.py registers); the
    values set now are checked first (`check_settings`)."""
    check_settings()
    return {key: cls(**resource_args(key)) for key, cls in RESOURCES.items()}


def check_settings() -> None:
    """Each setting set now, checked as its resource checks a value (a whole number, the webhook URL): a bad
    one fails the definitions as they load, naming its variable, instead of the first run or sensor tick that
    reads it. Only the checks' own messages are shown: pydantic's would print the value, maybe a secret."""
    problems = []
    for key, cls in RESOURCES.items():
        try:
            plain(cls)
        except ValidationError as exc:
            env = {s.field: s.env for s in settings_of(key)}
            for error in exc.errors():
                message = error["msg"].removeprefix("Value error, ")
                name = env.get(str(error["loc"][0])) if error["loc"] else None
                problems.append(message if name is None or name in message else f"{name}: {message}")
        except ValueError as exc:  # value_now: not a whole number
            problems.append(str(exc))
    if problems:
        raise ValueError("invalid settings:\n" + "\n".join(problems))


def plain(cls: type[R]) -> R:
    """`cls` with the values its variables hold now, for code that runs outside a Dagster run."""
    [key] = [k for k, c in RESOURCES.items() if c is cls]
    return cls(**{s.field: s.value_now() for s in settings_of(key) if s.is_set()})


def partitions_start() -> str:
    """First daily partition (ISO date), read when the definitions load; see the module docstring."""
    return os.environ.get("ECOMARKET_PARTITIONS_START") or DEFAULT_START.isoformat()


def keep_hub_offline() -> None:
    """The code location never asks the Hugging Face hub for anything: its model ships in a package.

    Called when the definitions load, so before `sentence_transformers` is first imported (models load on the
    first text to encode); an explicit HF_HUB_OFFLINE=0 in the environment is kept.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def readme_table() -> str:
    """The Configuration table of the README (test_settings.py keeps the two equal)."""
    lines = ["| variable | sets | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        sets = "(the daily partitions)" if s.resource == AT_LOAD else f"`{s.resource}.{s.field}`"
        lines.append(f"| `{s.env}` | {sets} | {_shown_default(s)} | {s.help} |")
    return "\n".join(lines)


def _shown_default(setting: Setting) -> str:
    if setting.shown_default:
        return setting.shown_default
    return f"`{setting.default}`" if setting.default != "" else "(empty)"


if __name__ == "__main__":
    print(readme_table())
