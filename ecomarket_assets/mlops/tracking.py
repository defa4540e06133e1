"""Where MLflow runs go, as a Dagster resource, so every asset logs to the same store.

MLflow 3.17 refuses a plain `./mlruns` file store, so the local default is a SQLite
database (tracking *and* registry, which is what makes aliases work) with artifacts
in a folder beside it. The resource also points MLflow's global "fluent" API at that
store for the duration of a run only, so `mlflow.log_metric` and friends work inside
an asset without leaking the URI into the rest of the process.
"""

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import dagster as dg
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.tracking._model_registry import utils as _registry_utils
from mlflow.tracking._tracking_service import utils as _tracking_utils

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRACKING_URI = f"sqlite:///{REPO_ROOT}/mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = f"{REPO_ROOT}/mlruns/artifacts"
DEFAULT_UI_URL = "http://127.0.0.1:5000"

# Tracking URIs served by a tracking server, which owns its artifact store.
_SERVER_SCHEMES = ("http", "https", "databricks")


def _is_server_uri(uri: str) -> bool:
    return urlparse(uri).scheme in _SERVER_SCHEMES


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, None for other stores or an in-memory db."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _artifact_location(root: str, name: str) -> str:
    """`<root>/<name>`; a local folder becomes a file URI so MLflow never guesses the scheme."""
    scheme = urlparse(root).scheme
    if len(scheme) > 1:  # a real URI (s3://, file://, mlflow-artifacts:/); not a drive letter
        return f"{root.rstrip('/')}/{name}"
    return (Path(root).expanduser().absolute() / name).as_uri()


@contextmanager
def fluent_uris(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    """Point MLflow's global API at one store for the block, then restore exactly what was there.

    `mlflow.set_tracking_uri` also writes `MLFLOW_TRACKING_URI` into `os.environ` (and
    `set_registry_uri` writes `MLFLOW_REGISTRY_URI` without ever removing it), so a naive
    "get, set, set back" would pin or leak URIs; the module state and both env vars are
    snapshotted and put back. Process-global: not safe with threads logging to other stores.
    """
    registry_uri = registry_uri or tracking_uri
    old_tracking = _tracking_utils._tracking_uri
    old_registry = _registry_utils._registry_uri
    old_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_tracking)
        _registry_utils._registry_uri = old_registry
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_READY_DATABASES: set[str] = set()


def ensure_database(uri: str, artifact_root: str) -> None:
    """Create (or migrate) a SQLite store under a file lock, once per process.

    Without the lock, two steps that start together on a missing `mlflow.db` both run MLflow's
    schema creation and one dies with an alembic error; with it, the second finds the tables made.
    """
    db_file = _sqlite_file(uri)
    if db_file is None or uri in _READY_DATABASES:
        return
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    db_file.parent.mkdir(parents=True, exist_ok=True)
    with open(db_file.with_name(db_file.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            TrackingStore(uri, artifact_root)  # creates the tables, or checks they are current
            RegistryStore(uri)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _READY_DATABASES.add(uri)


class MlflowResource(dg.ConfigurableResource):
    """The MLflow store assets log to. Empty fields mean the local defaults (settings.py binds each field to its
    variable, e.g. `tracking_uri` to ECOMARKET_MLFLOW_TRACKING_URI).

    `tracking_uri` serves both tracking and the model registry. `artifact_root` is where new
    experiments keep their artifacts; with an http(s) tracking server and no explicit root, the
    server decides (it usually proxies artifacts). `ui_url` only builds links for metadata.
    """

    tracking_uri: str = ""
    artifact_root: str = ""
    ui_url: str = ""

    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or DEFAULT_TRACKING_URI

    def resolved_artifact_root(self) -> str:
        """Configured root, else the local default; "" means "let the tracking server decide"."""
        if self.artifact_root:
            return self.artifact_root
        return "" if _is_server_uri(self.resolved_tracking_uri()) else DEFAULT_ARTIFACT_ROOT

    def resolved_ui_url(self) -> str:
        return (self.ui_url or DEFAULT_UI_URL).rstrip("/")

    def client(self) -> MlflowClient:
        """A client whose tracking and registry both use `resolved_tracking_uri()` (a new database is created once)."""
        uri = self.resolved_tracking_uri()
        ensure_database(uri, self.resolved_artifact_root() or DEFAULT_ARTIFACT_ROOT)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def experiment_id(self, name: str) -> str:
        """Get or create the experiment; new ones keep artifacts under `<artifact_root>/<name>`."""
        client = self.client()
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        root = self.resolved_artifact_root()
        location = _artifact_location(root, name) if root else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # Another process created it between the lookup and the create.
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    @contextmanager
    def start_run(
        self, experiment: str, run_name: str, tags: Mapping[str, str] | None = None
    ) -> Iterator[mlflow.ActiveRun]:
        """An MLflow run in this store; the fluent API (log_param, log_model...) works inside.

        The global tracking/registry URIs are restored afterwards. A run left by an exception
        is marked FAILED by MLflow itself.
        """
        experiment_id = self.experiment_id(experiment)
        with (
            fluent_uris(self.resolved_tracking_uri()),
            mlflow.start_run(
                experiment_id=experiment_id, run_name=run_name, tags=dict(tags or {})
            ) as run,
        ):
            yield run

    def run_url(self, run_id: str) -> str:
        experiment_id = self.client().get_run(run_id).info.experiment_id
        return f"{self.resolved_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"

    def model_version_url(self, name: str, version: str | int) -> str:
        return f"{self.resolved_ui_url()}/#/models/{quote(name, safe='')}/versions/{version}"


def pip_requirements(*names: str) -> list[str]:
    """Pinned requirements for a logged model; explicit, because MLflow's inference costs ~10 s per run."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "pandas", "numpy", *names)]


def gain_importance(booster: Any) -> pd.DataFrame:
    """A LightGBM booster's total gain per feature, with each feature's share, largest first."""
    frame = pd.DataFrame({"feature": booster.feature_name(), "gain": booster.feature_importance(importance_type="gain")})
    frame["share"] = frame["gain"] / max(frame["gain"].sum(), 1e-12)
    return frame.sort_values("gain", ascending=False, ignore_index=True)


def dagster_tags(context: Any) -> dict[str, str]:
    """Run tags linking an MLflow run back to the Dagster run, asset and partition."""
    try:
        asset = context.asset_key.to_user_string()
    except Exception:  # op contexts and multi-assets have no single asset key
        asset = ""
    partition = ""
    try:
        if context.has_partition_key:
            partition = str(context.partition_key)
        elif getattr(context, "has_partition_key_range", False):
            key_range = context.partition_key_range
            partition = f"{key_range.start}...{key_range.end}"
    except Exception:  # contexts built without a partitions definition
        partition = ""
    try:
        run_id = context.run.run_id  # `context.run_id` is deprecated on asset contexts
    except Exception:
        run_id = context.run_id
    return {"dagster.run_id": str(run_id), "dagster.asset": asset, "dagster.partition": partition}

