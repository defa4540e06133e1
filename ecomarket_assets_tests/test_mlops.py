"""The MLflow layer against a throwaway SQLite store per test (never the repo's mlruns)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from sklearn.linear_model import LinearRegression

from ecomarket_assets.mlops import registry, tracking
from ecomarket_assets.mlops.tracking import (
    DEFAULT_ARTIFACT_ROOT,
    DEFAULT_TRACKING_URI,
    DEFAULT_UI_URL,
    REPO_ROOT,
    MlflowResource,
    dagster_tags,
)
from ecomarket_assets.settings import plain

ENV_TRACKING_URI = "ECOMARKET_MLFLOW_TRACKING_URI"
ENV_ARTIFACT_ROOT = "ECOMARKET_MLFLOW_ARTIFACT_ROOT"
ENV_UI_URL = "ECOMARKET_MLFLOW_UI_URL"

MODEL = "demand_test"
UI = "http://mlflow.test:5000"
KNOWN_X = pd.DataFrame({"x": [0.0, 1.0, 2.5, -4.0]})
# Pinned requirements: without them log_model infers requirements in a subprocess (~10 s).
PIP = [f"scikit-learn=={__import__('sklearn').__version__}"]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated empty MLflow database; creating the schema costs seconds, copying does not."""
    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def _clean_mlflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No inherited URIs, and a scratch cwd: MLflow's fallback store is `sqlite:///mlflow.db`
    in the cwd, so anything that escapes the resource's store shows up there."""
    for key in (ENV_TRACKING_URI, ENV_ARTIFACT_ROOT, ENV_UI_URL, "MLFLOW_TRACKING_URI",
                "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(key, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield
    assert mlflow.active_run() is None
    assert list(cwd.iterdir()) == [], "MLflow wrote outside the resource's store"


@pytest.fixture
def resource(tmp_path: Path, template_db: Path) -> MlflowResource:
    shutil.copyfile(template_db, tmp_path / "mlflow.db")
    return MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                          artifact_root=str(tmp_path / "artifacts"), ui_url=UI + "/")


def _train(slope: float, intercept: float) -> LinearRegression:
    x = pd.DataFrame({"x": np.arange(8, dtype=float)})
    return LinearRegression().fit(x, slope * x["x"] + intercept)


def _log(resource: MlflowResource, model: LinearRegression, run_name: str) -> ModelInfo:
    with resource.start_run("demand", run_name, tags={"dagster.run_id": run_name}):
        mlflow.log_param("slope", float(model.coef_[0]))
        mlflow.log_metric("rmse", 0.0)
        return mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(KNOWN_X, model.predict(KNOWN_X)),
            input_example=KNOWN_X.head(2), pip_requirements=PIP,
        )


def test_registry_round_trip(resource: MlflowResource, tmp_path: Path) -> None:
    client = resource.client()
    v1_model, v2_model = _train(2.0, 1.0), _train(-3.0, 0.5)

    info1 = _log(resource, v1_model, "train-1")
    assert info1.model_uri.startswith("models:/m-")  # MLflow 3: a logged model, not runs:/
    assert info1.artifact_path.startswith((tmp_path / "artifacts" / "demand").as_uri())
    first = registry.register_logged_model(client, MODEL, info1, tags={"data_window": "w1"})
    assert (first.version, first.run_id, first.became_champion) == ("1", info1.run_id, True)
    assert first.aliases == [registry.CHALLENGER, registry.CHAMPION]
    v1 = client.get_model_version(MODEL, "1")
    assert v1.tags == {"data_window": "w1", "promotion": "initial_champion"}
    assert v1.run_id == info1.run_id and v1.status == "READY"

    # A runs:/ URI has no MLmodel under the run in MLflow 3; it resolves to the logged model.
    # Registered from inside the run, as the training asset does; the run's URIs survive it.
    with resource.start_run("demand", "train-2") as run:
        info2 = mlflow.sklearn.log_model(v2_model, name="model", pip_requirements=PIP)
        second = registry.register_challenger(
            client, MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id, description="2nd"
        )
        with pytest.raises(LookupError, match="'nope'"):
            registry.register_challenger(client, MODEL, f"runs:/{run.info.run_id}/nope", "x")
        mlflow.log_metric("after_registration", 1.0)
        assert mlflow.get_tracking_uri() == resource.resolved_tracking_uri()
    assert client.get_run(run.info.run_id).data.metrics == {"after_registration": 1.0}
    assert (second.version, second.aliases, second.became_champion) == (
        "2", [registry.CHALLENGER], False)
    assert client.get_model_version(MODEL, "2").source == info2.model_uri
    assert client.get_model_version(MODEL, "2").tags == {"promotion": "pending"}
    assert str(registry.champion_version(client, MODEL).version) == "1"
    assert str(registry.alias_version(client, MODEL, registry.CHALLENGER).version) == "2"
    assert client.get_model_version(MODEL, "1").aliases == [registry.CHAMPION]

    expected = np.array([1.0, 3.0, 6.0, -7.0])  # 2x + 1
    served = registry.load_champion(resource, MODEL).predict(KNOWN_X)
    np.testing.assert_allclose(served, expected, atol=1e-9)
    np.testing.assert_array_equal(served, v1_model.predict(KNOWN_X))
    by_uri = registry.load_champion(resource.resolved_tracking_uri(), MODEL).predict(KNOWN_X)
    np.testing.assert_array_equal(by_uri, served)

    promoted = registry.set_champion(client, MODEL, 2, reason="lower WAPE")
    assert promoted.aliases == [registry.CHALLENGER, registry.CHAMPION]
    assert promoted.tags["previous_champion"] == "1"
    assert promoted.tags["promoted_reason"] == "lower WAPE"
    assert promoted.tags["promotion"] == "promoted"
    np.testing.assert_allclose(registry.load_champion(client, MODEL).predict(KNOWN_X),
                               v2_model.predict(KNOWN_X))
    assert registry.set_champion(client, MODEL, "2", reason="again").tags["promoted_reason"] == (
        "lower WAPE")  # re-promoting the champion changes nothing

    restored = registry.rollback_champion(client, MODEL)
    assert str(restored.version) == "1" and registry.CHAMPION in restored.aliases
    assert restored.tags["promotion"] == "restored"
    assert restored.tags["promoted_reason"] == "rollback from version 2"
    demoted = client.get_model_version(MODEL, "2")
    assert demoted.aliases == [registry.CHALLENGER]
    assert demoted.tags["promotion"] == "rolled_back" and demoted.tags["rolled_back_to"] == "1"
    np.testing.assert_array_equal(registry.load_champion(resource, MODEL).predict(KNOWN_X),
                                  served)
    with pytest.raises(LookupError, match="previous_champion"):
        registry.rollback_champion(client, MODEL)  # v1 was the first champion

    assert not (REPO_ROOT / "mlruns" / "artifacts" / "demand").exists()


def test_missing_champion_is_a_lookup_error(resource: MlflowResource) -> None:
    client = resource.client()
    with pytest.raises(LookupError, match="'nope'"):
        registry.load_champion(resource, "nope")
    client.create_registered_model("empty")
    with pytest.raises(LookupError, match="'empty'"):
        registry.load_champion(client, "empty")
    assert registry.champion_version(client, "nope") is None
    assert registry.alias_version(client, "empty", registry.CHALLENGER) is None
    with pytest.raises(LookupError, match="'empty'"):
        registry.rollback_champion(client, "empty")
    assert registry.champion_uri("demand") == "models:/demand@champion"


def test_run_carries_dagster_tags_and_restores_global_uris(resource: MlflowResource) -> None:
    daily = dg.DailyPartitionsDefinition(start_date="2025-01-01")
    seen: dict[str, str] = {}

    @dg.asset(partitions_def=daily)
    def forecast(context: dg.AssetExecutionContext, mlflow_store: MlflowResource) -> None:
        with mlflow_store.start_run("demand", "forecast", tags=dagster_tags(context)) as run:
            assert mlflow.get_tracking_uri() == mlflow_store.resolved_tracking_uri()
            assert mlflow.get_registry_uri() == mlflow_store.resolved_tracking_uri()
            mlflow.log_metric("wape", 0.25)
            seen["run_id"], seen["dagster"] = run.info.run_id, context.run.run_id

    @dg.asset
    def plain(context: dg.AssetExecutionContext) -> None:
        seen.update(dagster_tags(context))

    before = mlflow.get_tracking_uri()
    result = dg.materialize([forecast], resources={"mlflow_store": resource},
                            partition_key="2025-01-03")
    assert result.success
    assert mlflow.get_tracking_uri() == before
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ

    run = resource.client().get_run(seen["run_id"])
    assert run.info.run_name == "forecast" and run.info.status == "FINISHED"
    assert run.data.metrics == {"wape": 0.25}
    assert {k: v for k, v in run.data.tags.items() if k.startswith("dagster.")} == {
        "dagster.run_id": seen["dagster"], "dagster.asset": "forecast",
        "dagster.partition": "2025-01-03"}

    assert dg.materialize([plain]).success
    assert seen["dagster.asset"] == "plain" and seen["dagster.partition"] == ""


def test_failed_run_is_marked_failed_and_uris_restored(resource: MlflowResource) -> None:
    mlflow.set_tracking_uri("sqlite:///elsewhere.db")
    try:
        with pytest.raises(RuntimeError), resource.start_run("demand", "boom") as run:
            raise RuntimeError("training blew up")
        assert mlflow.get_tracking_uri() == "sqlite:///elsewhere.db"
        assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"
    finally:
        mlflow.set_tracking_uri(None)
    assert resource.client().get_run(run.info.run_id).info.status == "FAILED"


def test_urls_and_experiment_location(resource: MlflowResource, tmp_path: Path) -> None:
    experiment_id = resource.experiment_id("recs")
    assert resource.experiment_id("recs") == experiment_id
    location = resource.client().get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "artifacts" / "recs").as_uri()
    run = resource.client().create_run(experiment_id)
    assert resource.run_url(run.info.run_id) == (
        f"{UI}/#/experiments/{experiment_id}/runs/{run.info.run_id}")
    assert resource.model_version_url("demand", 3) == f"{UI}/#/models/demand/versions/3"


def test_settings_then_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blank = plain(MlflowResource)  # no ECOMARKET_MLFLOW_* variable set (the autouse fixture clears them)
    assert blank.resolved_tracking_uri() == DEFAULT_TRACKING_URI
    assert f"sqlite:///{REPO_ROOT}/mlruns/mlflow.db" == DEFAULT_TRACKING_URI
    assert blank.resolved_artifact_root() == DEFAULT_ARTIFACT_ROOT
    assert f"{REPO_ROOT}/mlruns/artifacts" == DEFAULT_ARTIFACT_ROOT
    assert blank.resolved_ui_url() == DEFAULT_UI_URL == "http://127.0.0.1:5000"

    db = tmp_path / "nested" / "dir" / "mlflow.db"
    monkeypatch.setenv(ENV_TRACKING_URI, f"sqlite:///{db}")
    monkeypatch.setenv(ENV_ARTIFACT_ROOT, str(tmp_path / "art"))
    monkeypatch.setenv(ENV_UI_URL, "https://mlflow.example/")
    assert MlflowResource().resolved_tracking_uri() == DEFAULT_TRACKING_URI  # a resource never reads the environment
    configured = plain(MlflowResource)  # settings.py binds the fields to the variables
    assert configured.resolved_tracking_uri() == f"sqlite:///{db}"
    assert configured.resolved_artifact_root() == str(tmp_path / "art")
    assert configured.resolved_ui_url() == "https://mlflow.example"

    # client(): folder of the sqlite file made first (a real client would then spend seconds
    # creating the schema, so it is stubbed), tracking and registry on the same store.
    monkeypatch.setattr(tracking, "MlflowClient", lambda **uris: uris)
    assert configured.client() == {"tracking_uri": f"sqlite:///{db}", "registry_uri": f"sqlite:///{db}"}
    assert db.parent.is_dir()

    monkeypatch.delenv(ENV_ARTIFACT_ROOT)
    monkeypatch.setenv(ENV_TRACKING_URI, "http://mlflow:5000")
    assert plain(MlflowResource).resolved_artifact_root() == ""  # a tracking server owns its artifact store
