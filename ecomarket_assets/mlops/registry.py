"""Champion/challenger bookkeeping on MLflow registry aliases.

Stages are deprecated in MLflow 3, so the registry state is two aliases per model:
`challenger` = the newest registered version, `champion` = the version that serves.
Serving loads `models:/<name>@champion`, so promotion and rollback are one alias move each.
Every move leaves version tags (`promotion`, `previous_champion`, `promoted_reason`) so the
history is readable in the UI and a rollback knows where to go.

MLflow 3's `log_model` stores the model as a *logged model* (`models:/m-<id>`), not under the
run's artifacts, so `runs:/<run_id>/<name>` has no MLmodel file; `register_challenger`
resolves such URIs to the logged model the run produced, like `mlflow.register_model` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import (
    ALREADY_EXISTS,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from ecomarket_assets.mlops.tracking import MlflowResource, fluent_uris

CHAMPION = "champion"
CHALLENGER = "challenger"

# Version tags written here (values are strings, as MLflow stores them).
TAG_PROMOTION = "promotion"  # pending | initial_champion | promoted | refused | deferred | superseded | rolled_back | restored
PENDING = "pending"
INITIAL_CHAMPION = "initial_champion"
TAG_PREVIOUS_CHAMPION = "previous_champion"  # version that was champion before this one
TAG_PROMOTED_REASON = "promoted_reason"
TAG_ROLLED_BACK_TO = "rolled_back_to"

READY_TIMEOUT_S = 300


@dataclass
class RegisteredVersion:
    """What a registration did, for asset metadata and the promotion step."""

    name: str
    version: str
    run_id: str
    aliases: list[str] = field(default_factory=list)
    became_champion: bool = False

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _error_is(error: MlflowException, *codes: int) -> bool:
    return error.error_code in {ErrorCode.Name(code) for code in codes}


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if not _error_is(error, RESOURCE_ALREADY_EXISTS, ALREADY_EXISTS):
            raise


def _logged_model_id(model_uri: str) -> str | None:
    """`m-...` from a `models:/<model_id>` URI; None for `models:/<name>/<version|@alias>`."""
    if not model_uri.startswith("models:/"):
        return None
    rest = model_uri[len("models:/"):].strip("/")
    return rest if rest and "/" not in rest and "@" not in rest else None


def _resolve_source(client: MlflowClient, model_uri: str) -> tuple[str, str | None]:
    """(source, logged model id) for `create_model_version`, which does no resolving itself."""
    model_id = _logged_model_id(model_uri)
    if model_id is not None or not model_uri.startswith("runs:/"):
        return model_uri, model_id
    run_id, _, artifact_path = model_uri[len("runs:/"):].partition("/")
    artifact_path = artifact_path.strip("/")
    run = client.get_run(run_id)
    models = [
        m
        for m in client.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"name = '{artifact_path}'"
        )
        if m.source_run_id == run_id
    ]
    if models:  # what `log_model(name=...)` produced in MLflow 3
        newest = max(models, key=lambda m: m.creation_timestamp)
        return f"models:/{newest.model_id}", newest.model_id
    # A model folder uploaded with `log_artifacts`. `client.list_artifacts` would also list a
    # logged model's files under the run, so only the run's own artifact store is checked.
    own = get_artifact_repository(run.info.artifact_uri).list_artifacts(artifact_path)
    if not any(f.path.rsplit("/", 1)[-1] == "MLmodel" for f in own):
        raise LookupError(f"run {run_id} logged no model named {artifact_path!r} ({model_uri})")
    return f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}", None


def _wait_ready(client: MlflowClient, version: ModelVersion) -> ModelVersion:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        status = ModelVersionStatus.from_string(version.status)
        if status == ModelVersionStatus.READY:
            return version
        if status == ModelVersionStatus.FAILED_REGISTRATION or time.monotonic() > deadline:
            raise RuntimeError(
                f"model {version.name!r} version {version.version} is {version.status}: "
                f"{version.status_message or 'no message'}"
            )
        time.sleep(0.5)
        version = client.get_model_version(version.name, version.version)


def register_challenger(
    client: MlflowClient,
    name: str,
    model_uri: str,
    run_id: str,
    tags: dict[str, str] | None = None,
    description: str = "",
) -> RegisteredVersion:
    """Register a new version as `challenger`; the first version of a model is also `champion`.

    A model with no champion would leave serving with nothing to load, so the first version
    serves at once (`promotion=initial_champion`); later ones wait for an explicit
    `set_champion` (`promotion=pending`). Accepts `models:/m-<id>` (what `log_model` returns),
    `runs:/<run_id>/<name>` and plain artifact URIs.
    """
    _ensure_registered_model(client, name)
    # Created already tagged `promotion=pending`: a crash before the aliases move leaves a version the
    # registry sensor still judges (the promotion step makes a model's first version champion).
    tags = {TAG_PROMOTION: PENDING, **{k: str(v) for k, v in (tags or {}).items()}}
    # MLflow resolves logged models (`models:/<model_id>`, also behind `runs:/` artifact
    # listings) through the *global* tracking URI, not the client's (a TODO in
    # mlflow/store/model_registry), so point the globals at this client's store meanwhile.
    with fluent_uris(client.tracking_uri, client._registry_uri):
        source, model_id = _resolve_source(client, model_uri)
        created = client.create_model_version(
            name,
            source,
            run_id=run_id,
            tags=tags,
            description=description or None,
            await_creation_for=READY_TIMEOUT_S,
            model_id=model_id,
        )
    version = _wait_ready(client, created).version
    client.set_registered_model_alias(name, CHALLENGER, version)
    became_champion = champion_version(client, name) is None
    if became_champion:
        client.set_registered_model_alias(name, CHAMPION, version)
    if became_champion:
        client.set_model_version_tag(name, version, TAG_PROMOTION, INITIAL_CHAMPION)
    aliases = list(client.get_model_version(name, version).aliases)
    return RegisteredVersion(name, str(version), run_id, sorted(aliases), became_champion)


def register_logged_model(
    client: MlflowClient,
    name: str,
    model_info: ModelInfo,
    tags: dict[str, str] | None = None,
    description: str = "",
) -> RegisteredVersion:
    """`register_challenger` for the `ModelInfo` that `mlflow.<flavor>.log_model` returns."""
    return register_challenger(
        client, name, model_info.model_uri, model_info.run_id, tags=tags, description=description
    )


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding `alias`, or None when the model or the alias does not exist."""
    try:
        registered = client.get_registered_model(name)
    except MlflowException as error:
        if _error_is(error, RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = registered.aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def champion_version(client: MlflowClient, name: str) -> ModelVersion | None:
    return alias_version(client, name, CHAMPION)


def champion_uri(name: str) -> str:
    return f"models:/{name}@{CHAMPION}"


def load_champion(
    target: MlflowResource | MlflowClient | str, name: str
) -> mlflow.pyfunc.PyFuncModel:
    """Load the serving version of `name` from the store `target` points at.

    `target` is the resource, a client or a tracking URI (also used as registry URI).
    Raises `LookupError` naming the model when nothing is champion yet, instead of
    MLflow's generic error, so callers can fall back (e.g. to a baseline forecaster).
    """
    if isinstance(target, MlflowResource):
        client = target.client()
    elif isinstance(target, MlflowClient):
        client = target
    else:
        client = MlflowClient(tracking_uri=target, registry_uri=target)
    tracking_uri = client.tracking_uri
    registry_uri = client._registry_uri
    if champion_version(client, name) is None:
        raise LookupError(
            f"model {name!r} has no {CHAMPION!r} version in {registry_uri}; "
            "register one with register_challenger first"
        )
    with fluent_uris(tracking_uri, registry_uri):
        return mlflow.pyfunc.load_model(champion_uri(name))


def set_champion(
    client: MlflowClient, name: str, version: str | int, reason: str
) -> ModelVersion:
    """Make `version` serve, remembering the version it replaces for `rollback_champion`.

    Tags on the new champion: `previous_champion` (absent when there was none),
    `promoted_reason`, `promotion=promoted`. Promoting the current champion is a no-op.
    """
    version = str(version)
    target = client.get_model_version(name, version)  # fails early for an unknown version
    current = champion_version(client, name)
    if current is not None and str(current.version) == version:
        return target
    if current is not None:
        client.set_model_version_tag(name, version, TAG_PREVIOUS_CHAMPION, str(current.version))
    elif TAG_PREVIOUS_CHAMPION in target.tags:
        client.delete_model_version_tag(name, version, TAG_PREVIOUS_CHAMPION)
    client.set_model_version_tag(name, version, TAG_PROMOTED_REASON, reason)
    client.set_model_version_tag(name, version, TAG_PROMOTION, "promoted")
    client.set_registered_model_alias(name, CHAMPION, version)
    return client.get_model_version(name, version)


def rollback_champion(client: MlflowClient, name: str, reason: str = "") -> ModelVersion:
    """Give `champion` back to the version in the current champion's `previous_champion` tag.

    The demoted version gets `promotion=rolled_back` and `rolled_back_to=<version>`; the
    restored one gets `promotion=restored` and a `promoted_reason`, and keeps its own
    `previous_champion`, so rolling back again walks further back in history.
    """
    current = champion_version(client, name)
    if current is None:
        raise LookupError(f"model {name!r} has no {CHAMPION!r} to roll back")
    previous = current.tags.get(TAG_PREVIOUS_CHAMPION)
    if not previous:
        raise LookupError(
            f"model {name!r} champion version {current.version} has no "
            f"{TAG_PREVIOUS_CHAMPION!r} tag: nothing to roll back to"
        )
    client.get_model_version(name, previous)  # fails clearly if it was deleted
    client.set_model_version_tag(name, current.version, TAG_PROMOTION, "rolled_back")
    client.set_model_version_tag(name, current.version, TAG_ROLLED_BACK_TO, previous)
    client.set_model_version_tag(
        name, previous, TAG_PROMOTED_REASON, reason or f"rollback from version {current.version}"
    )
    client.set_model_version_tag(name, previous, TAG_PROMOTION, "restored")
    client.set_registered_model_alias(name, CHAMPION, previous)
    return client.get_model_version(name, previous)


def load_version(client: MlflowClient, name: str, version: str | int) -> mlflow.pyfunc.PyFuncModel:
    """Load one registered version from the store `client` points at (the promotion step loads both contenders)."""
    with fluent_uris(client.tracking_uri, client._registry_uri):
        return mlflow.pyfunc.load_model(f"models:/{name}/{version}")
