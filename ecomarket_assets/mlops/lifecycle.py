"""One lifecycle for every model: train inside an MLflow run, log, register, tag, verify; clean up after crashes.

A model asset trains inside `training_run(...)` and ends with `TrainingRun.register(...)`:

1. the model is logged as an MLflow pyfunc *from code* (`mlops/model_code/<file>.py`, a type-hinted
   `predict`; nothing is pickled), with a signature, an input example and pinned pip requirements;
2. the version is created with every tag it needs in the same call (`dagster_run_id`, `trained_through`,
   `engine`, `data_fingerprint`, `promotion=pending`), so a process killed right after the creation still
   leaves a version the registry sensor judges (its promotion step makes a first version champion);
3. `challenger` moves to it; a model's first version also becomes `champion`.

`verify_version` loads a registered version back and predicts on its own input example: the blocking
check of every model asset. `reap_stale_runs` marks FAILED the MLflow runs whose process died (a
`kill -9` leaves them RUNNING forever); every training and promotion run calls it first.
"""


import hashlib
import os
import runpy
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus
from mlflow.models import infer_signature

from ecomarket_assets.mlops import registry
from ecomarket_assets.mlops.promotion import TAG_TRAINED_THROUGH
from ecomarket_assets.mlops.tracking import MlflowResource, dagster_tags, pip_requirements

MODEL_CODE = Path(__file__).resolve().parent / "model_code"

# Version (and run) tags every model carries.
TAG_DAGSTER_RUN = "dagster_run_id"
TAG_ENGINE = "engine"
TAG_FINGERPRINT = "data_fingerprint"  # hash of the training rows: same data, same fingerprint
# Run tags that say which process owns a RUNNING run, so a later start can tell a dead one.
TAG_HOST, TAG_PID = "ecomarket.host", "ecomarket.pid"
TAG_REAPED = "ecomarket.reaped"

STALE_AFTER_S = 24 * 3600  # a RUNNING run nobody can vouch for is dead after a day
_DAGSTER_ACTIVE = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}


@dataclass(frozen=True)
class ModelKind:
    """What the registry knows a model by: its name, experiment, models-from-code file and artifact key."""

    name: str
    experiment: str
    code: str  # file name in mlops/model_code/
    artifact: str  # the artifact folder key the model code loads in `load_context`
    requirements: tuple[str, ...] = ("lightgbm",)

    @property
    def code_path(self) -> Path:
        return MODEL_CODE / self.code


@dataclass
class Registered:
    """What `register` did, as asset metadata."""

    run_id: str
    run_url: str
    version: registry.RegisteredVersion
    version_url: str
    tags: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "registered": True,
            "mlflow_run": dg.MetadataValue.url(self.run_url),
            "model_version": dg.MetadataValue.url(self.version_url),
            "registered_version": int(self.version.version),
            "aliases": ", ".join(self.version.aliases) or "-",
            TAG_TRAINED_THROUGH: self.tags.get(TAG_TRAINED_THROUGH, ""),
            TAG_FINGERPRINT: self.tags.get(TAG_FINGERPRINT, ""),
        }


def frame_fingerprint(*frames: pd.DataFrame) -> str:
    """A short hash of the rows (values and column names) a model learned from."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update("|".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


class TrainingRun:
    """The MLflow run a model trains in; `register` ends its lifecycle step."""

    def __init__(self, mlflow_tracking: MlflowResource, kind: ModelKind, run: mlflow.ActiveRun, dagster_run_id: str):
        self.mlflow_tracking, self.kind, self.run, self.dagster_run_id = mlflow_tracking, kind, run, dagster_run_id

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def register(self, save: Callable[[Path], Path], example: pd.DataFrame, *, trained_through: str, engine: str,
                 fingerprint: str, tags: dict[str, str] | None = None) -> Registered:
        """Log the model `save(folder)` writes, register it tagged, and return the metadata.

        The signature comes from the logged model's own prediction on `example`, so it is what serving returns.
        """
        lineage = {TAG_DAGSTER_RUN: self.dagster_run_id, TAG_TRAINED_THROUGH: trained_through, TAG_ENGINE: engine,
                   TAG_FINGERPRINT: fingerprint}
        mlflow.set_tags(lineage)
        with tempfile.TemporaryDirectory() as tmp:
            folder = save(Path(tmp) / self.kind.artifact)
            info = _log_pyfunc(self.kind, folder, example)
        version = registry.register_challenger(self.mlflow_tracking.client(), self.kind.name, info.model_uri,
                                               self.run_id, tags={**(tags or {}), **lineage})
        return Registered(self.run_id, self.mlflow_tracking.run_url(self.run_id), version,
                          self.mlflow_tracking.model_version_url(self.kind.name, version.version), lineage)


def _log_pyfunc(kind: ModelKind, folder: Path, example: pd.DataFrame) -> mlflow.models.model.ModelInfo:
    """Log from code; the signature's output is the model's own answer on the example."""
    python_model = _load_code_model(kind, folder)
    output = python_model.predict(None, example)
    with warnings.catch_warnings():
        # Our integer features (counts, flags) are never missing, which is all this hint warns about.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(example, output)
        return mlflow.pyfunc.log_model(name="model", python_model=str(kind.code_path),
                                       artifacts={kind.artifact: str(folder)}, signature=signature,
                                       input_example=example, pip_requirements=pip_requirements(*kind.requirements))


def _load_code_model(kind: ModelKind, folder: Path) -> mlflow.pyfunc.PythonModel:
    """The python model the code file sets, loaded on `folder` exactly as serving will load it."""
    from mlflow.models import model as model_module
    from mlflow.pyfunc.model import PythonModelContext

    runpy.run_path(str(kind.code_path), run_name="__ecomarket_model_code__")  # calls mlflow.models.set_model
    model = model_module.__dict__.pop("__mlflow_model__", None)
    if not isinstance(model, mlflow.pyfunc.PythonModel):
        raise TypeError(f"{kind.code_path} must call mlflow.models.set_model(<a PythonModel>)")
    model.load_context(PythonModelContext(artifacts={kind.artifact: str(folder)}, model_config={}))
    return model


@contextmanager
def training_run(context: Any, mlflow_tracking: MlflowResource, kind: ModelKind, run_name: str,
                 tags: dict[str, str] | None = None) -> Iterator[TrainingRun]:
    """An MLflow run for training `kind`, tagged with the Dagster run and the owning process.

    Dead runs of earlier processes are marked FAILED first. An exception inside marks this run FAILED.
    """
    client = mlflow_tracking.client()
    reap_stale_runs(client, getattr(context, "instance", None))
    run_tags = {**dagster_tags(context), **owner_tags(), **(tags or {})}
    with mlflow_tracking.start_run(kind.experiment, run_name, run_tags) as run:
        yield TrainingRun(mlflow_tracking, kind, run, run_tags["dagster.run_id"])


def owner_tags() -> dict[str, str]:
    return {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid())}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def run_is_dead(run: Run, dagster_status: Callable[[str], str | None] | None = None,
                now: float | None = None) -> str:
    """Why a RUNNING MLflow run is dead ("" when it may be alive).

    Its own process on this host decides when it said which it is; else the Dagster run's status; else age.
    """
    tags = run.data.tags
    pid, host = tags.get(TAG_PID), tags.get(TAG_HOST)
    if pid and host == socket.gethostname():
        if int(pid) == os.getpid():
            return ""
        return "" if _process_alive(int(pid)) else f"its process {pid} on {host} is gone"
    status = dagster_status(tags.get("dagster.run_id", "")) if dagster_status and tags.get("dagster.run_id") else None
    if status is not None:
        return "" if status in _DAGSTER_ACTIVE else f"its Dagster run {tags['dagster.run_id']} is {status}"
    age = (now or time.time()) - run.info.start_time / 1000
    return f"RUNNING for {age / 3600:.0f} h with no live owner" if age > STALE_AFTER_S else ""


def reap_stale_runs(client: MlflowClient, instance: dg.DagsterInstance | None = None) -> list[str]:
    """Mark FAILED every RUNNING run whose owner is dead; returns their ids."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=1000)

    def dagster_status(run_id: str) -> str | None:
        found = instance.get_run_by_id(run_id) if instance is not None else None
        return None if found is None else found.status.value

    reaped = []
    for run in running:
        why = run_is_dead(run, dagster_status if instance is not None else None)
        if why:
            client.set_tag(run.info.run_id, TAG_REAPED, f"marked FAILED at a later start: {why}")
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
            reaped.append(run.info.run_id)
    return reaped


@dataclass
class Verification:
    passed: bool
    metadata: dict[str, Any]


def verify_version(client: MlflowClient, name: str, version: str) -> Verification:
    """Load a registered version as serving would and predict on its own input example."""
    start = time.perf_counter()
    try:
        model = registry.load_version(client, name, version)
        example = model.input_example
        if example is None:
            return Verification(False, {"problem": f"{name} v{version} was logged without an input example"})
        output = model.predict(example)
    except Exception as error:  # noqa: BLE001 - any failure to load or predict is the finding
        return Verification(False, {"problem": f"{name} v{version} does not load and predict: {error}"[:2000]})
    values = np.asarray(pd.DataFrame(output).select_dtypes("number"), dtype=float)
    rows = len(output)
    problems = []
    if rows != len(example):
        problems.append(f"{rows} predictions for {len(example)} example rows")
    if not np.isfinite(values).all():
        problems.append("non-finite predictions")
    return Verification(not problems, {
        "model_version": f"{name} v{version}", "example_rows": len(example), "predictions": rows,
        "load_and_predict_seconds": round(time.perf_counter() - start, 2), "problem": "; ".join(problems) or "none"})


def registered_version_check(asset: Any, model_name: str) -> dg.AssetChecksDefinition:
    """Blocking check of a model asset: the version it just registered loads and predicts on its input example."""

    @dg.asset_check(asset=asset, name="registered_version_loads_and_predicts", blocking=True,
                    description=f"The `{model_name}` version this materialization registered loads from the MLflow "
                    "registry as serving loads it and predicts on its own input example (finite, one row per row).")
    def check(context: dg.AssetCheckExecutionContext, mlflow_tracking: MlflowResource) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(context.check_specs[0].asset_key)
        metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
        if "registered_version" not in metadata:
            why = metadata.get("why_no_model")
            return dg.AssetCheckResult(passed=True, metadata={
                "registered": False, "why": why.value if why is not None else "no version in the metadata"})
        version = str(metadata["registered_version"].value)
        result = verify_version(mlflow_tracking.client(), model_name, version)
        return dg.AssetCheckResult(passed=result.passed, metadata=result.metadata)

    return check
