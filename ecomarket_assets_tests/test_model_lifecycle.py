"""The model lifecycle under faults: a process killed between creating a version and moving its aliases, a run
killed mid-way, a promotion after a rollback, a missing MLflow database opened by several steps at once."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pandas as pd
import pytest
from mlflow import MlflowClient

from ecomarket_assets.defs.operations.automation import model_version_sensor
from ecomarket_assets.defs.operations.promotion_assets import demand_model_promotion
from ecomarket_assets.forecasting.store import MODEL_NAME
from ecomarket_assets.mlops import lifecycle, promotion, registry
from ecomarket_assets.mlops.tracking import MlflowResource, fluent_uris
from ecomarket_assets.resources import DataDirResource

MODEL_CODE = '''
import mlflow
import pandas as pd
from pathlib import Path


class Doubler(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.factor = float((Path(context.artifacts["doubler"]) / "factor.txt").read_text())

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.Series:
        return pd.Series(model_input["x"].to_numpy(float) * self.factor, name="y")


mlflow.models.set_model(Doubler())
'''
EXAMPLE = pd.DataFrame({"x": [1.0, 2.0, 3.0]})


@pytest.fixture
def tracking(tmp_path) -> MlflowResource:
    return MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=str(tmp_path / "art"))


@pytest.fixture
def kind(tmp_path) -> lifecycle.ModelKind:
    code = tmp_path / "doubler.py"
    code.write_text(MODEL_CODE)
    return lifecycle.ModelKind(MODEL_NAME, "lifecycle_test", str(code), "doubler", requirements=())


def _save(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "factor.txt").write_text("2")
    return folder


def _train(tracking: MlflowResource, kind: lifecycle.ModelKind, through: str | None = "2025-03-31") -> str:
    context = SimpleNamespace(run_id="dagster-run", instance=None)
    with lifecycle.training_run(context, tracking, kind, "train") as run:
        registered = run.register(_save, EXAMPLE, trained_through=through or "", engine="local",
                                  fingerprint=lifecycle.frame_fingerprint(EXAMPLE))
    if through is None:
        tracking.client().delete_model_version_tag(MODEL_NAME, registered.version.version, promotion.TAG_TRAINED_THROUGH)
    return registered.version.version


def _promote(tracking: MlflowResource, instance: dg.DagsterInstance, tmp_path: Path, **config) -> dict:
    result = dg.materialize([demand_model_promotion], instance=instance,
                            resources={"mlflow_tracking": tracking, "data_dir": DataDirResource(path=str(tmp_path / "d"))},
                            run_config={"ops": {"demand_model_promotion": {"config": config}}})
    return {k: v.value for k, v in result.asset_materializations_for_node("demand_model_promotion")[0].metadata.items()}


def _in_subprocess(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "step.py"
    path.write_text(textwrap.dedent(script))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])


def test_a_version_is_registered_with_its_lineage_and_serves_its_example(tracking, kind):
    version = _train(tracking, kind)
    client = tracking.client()
    tags = client.get_model_version(MODEL_NAME, version).tags
    assert tags[registry.TAG_PROMOTION] == registry.INITIAL_CHAMPION
    assert tags[lifecycle.TAG_DAGSTER_RUN] == "dagster-run" and tags[promotion.TAG_TRAINED_THROUGH] == "2025-03-31"
    assert tags[lifecycle.TAG_FINGERPRINT] == lifecycle.frame_fingerprint(EXAMPLE) != lifecycle.frame_fingerprint(EXAMPLE * 2)
    verified = lifecycle.verify_version(client, MODEL_NAME, version)
    assert verified.passed and verified.metadata["predictions"] == 3
    source = Path(client.get_model_version(MODEL_NAME, version).source.removeprefix("file://"))
    artifacts = next(Path(tracking.resolved_artifact_root()).rglob("factor.txt"), None)
    assert artifacts is not None
    artifacts.unlink()  # a version whose files are gone must fail its check
    broken = lifecycle.verify_version(client, MODEL_NAME, version)
    assert not broken.passed and "does not load and predict" in broken.metadata["problem"], source


def test_kill_between_creating_a_version_and_its_aliases_is_recovered(tracking, kind, tmp_path):
    """kill -9 right after `create_model_version`: the version is already tagged pending, the sensor judges it,
    and its promotion step makes it the first champion; the training run left RUNNING is marked FAILED."""
    done = _in_subprocess(f"""
        import os, signal
        from types import SimpleNamespace
        import pandas as pd
        from mlflow import MlflowClient
        from ecomarket_assets.mlops import lifecycle
        from ecomarket_assets.mlops.tracking import MlflowResource, fluent_uris
        from ecomarket_assets_tests.test_model_lifecycle import EXAMPLE, _save

        MlflowClient.set_registered_model_alias = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        tracking = MlflowResource(tracking_uri={tracking.tracking_uri!r}, artifact_root={tracking.artifact_root!r})
        kind = lifecycle.ModelKind({MODEL_NAME!r}, "lifecycle_test", {str(kind.code_path)!r}, "doubler", requirements=())
        with lifecycle.training_run(SimpleNamespace(run_id="r1", instance=None), tracking, kind, "train") as run:
            run.register(_save, EXAMPLE, trained_through="2025-03-31", engine="local", fingerprint="f")
    """, tmp_path)
    assert done.returncode == -9, done.stderr[-2000:]
    client = tracking.client()
    created = client.get_model_version(MODEL_NAME, "1")
    assert created.aliases == [] and created.tags[registry.TAG_PROMOTION] == promotion.PENDING
    assert created.tags[promotion.TAG_TRAINED_THROUGH] == "2025-03-31"
    stale = client.search_runs([client.get_experiment_by_name("lifecycle_test").experiment_id])
    assert [r.info.status for r in stale] == ["RUNNING"]

    assert lifecycle.reap_stale_runs(client) == [stale[0].info.run_id]
    reaped = client.get_run(stale[0].info.run_id)
    assert reaped.info.status == "FAILED" and "is gone" in reaped.data.tags[lifecycle.TAG_REAPED]

    instance = dg.DagsterInstance.ephemeral()
    tick = model_version_sensor(dg.build_sensor_context(instance=instance, resources={"mlflow_tracking": tracking}))
    [request] = tick.run_requests
    assert request.tags["ecomarket/version"] == "1" and request.job_name == "promote_demand_model_job"
    meta = _promote(tracking, instance, tmp_path, version="1")
    assert meta["decision"] == registry.INITIAL_CHAMPION and meta["champion_after"] == "1"
    assert str(registry.champion_version(client, MODEL_NAME).version) == "1"
    assert promotion.versions_to_judge(client, MODEL_NAME) == []


def test_a_version_registered_without_any_tag_is_judged(tracking, kind, tmp_path):
    _train(tracking, kind)
    client = tracking.client()
    first = client.get_model_version(MODEL_NAME, "1")
    with fluent_uris(tracking.resolved_tracking_uri()):  # MLflow resolves logged models through the global URI
        client.create_model_version(MODEL_NAME, first.source, run_id=first.run_id, model_id=first.model_id)  # by hand
    assert registry.TAG_PROMOTION not in client.get_model_version(MODEL_NAME, "2").tags
    assert promotion.versions_to_judge(client, MODEL_NAME) == ["2"]
    meta = _promote(tracking, dg.DagsterInstance.ephemeral(), tmp_path, version="2")
    assert meta["decision"] == "deferred" and "trained_through" in meta["reason"]  # it cannot prove a fresh hold-out
    assert promotion.versions_to_judge(client, MODEL_NAME) == []


def test_a_dead_dagster_run_and_an_old_orphan_are_reaped_but_a_live_run_is_not(tracking, kind):
    client = tracking.client()
    experiment = tracking.experiment_id("lifecycle_test")
    failed_run = client.create_run(experiment, tags={"dagster.run_id": "gone"}).info.run_id
    live_run = client.create_run(experiment, tags={"dagster.run_id": "busy"}).info.run_id
    mine = client.create_run(experiment, tags=lifecycle.owner_tags()).info.run_id
    statuses = {"gone": "FAILURE", "busy": "STARTED"}
    runs = {r.info.run_id: r for r in client.search_runs([experiment])}
    assert "FAILURE" in lifecycle.run_is_dead(runs[failed_run], statuses.get)
    assert lifecycle.run_is_dead(runs[live_run], statuses.get) == ""
    assert lifecycle.run_is_dead(runs[mine], statuses.get) == ""  # this very process
    later = time.time() + lifecycle.STALE_AFTER_S + 60
    assert "no live owner" in lifecycle.run_is_dead(runs[live_run], None, now=later)


def test_a_rolled_back_version_is_not_promoted_again_without_an_override(tracking, kind, tmp_path):
    _train(tracking, kind, through=None)
    _train(tracking, kind, through=None)
    client = tracking.client()
    registry.set_champion(client, MODEL_NAME, "2", "won its comparison")
    registry.rollback_champion(client, MODEL_NAME, "bad week")
    assert str(registry.champion_version(client, MODEL_NAME).version) == "1"
    assert str(registry.alias_version(client, MODEL_NAME, registry.CHALLENGER).version) == "2"
    assert promotion.versions_to_judge(client, MODEL_NAME) == []  # the sensor leaves it alone

    instance = dg.DagsterInstance.ephemeral()
    meta = _promote(tracking, instance, tmp_path)  # the step rerun by hand on the challenger
    assert meta["decision"] == "refused" and "rolled back" in meta["reason"]
    assert str(registry.champion_version(client, MODEL_NAME).version) == "1"
    assert registry.TAG_ROLLED_BACK_TO in client.get_model_version(MODEL_NAME, "2").tags

    meta = _promote(tracking, instance, tmp_path, allow_rolled_back=True)  # judged on its merits again
    assert meta["decision"] == "deferred" and "rolled back" not in meta["reason"]


def test_the_sensor_judges_the_newest_version_and_relaunches_a_promotion_that_died(tracking, kind, tmp_path):
    for _ in range(3):
        _train(tracking, kind, through=None)
    client = tracking.client()
    instance = dg.DagsterInstance.ephemeral()

    def tick():
        return model_version_sensor(dg.build_sensor_context(instance=instance, resources={"mlflow_tracking": tracking}))

    [request] = tick().run_requests
    assert request.run_key == f"{MODEL_NAME}-v3-attempt0"

    @dg.asset
    def dies() -> None:
        raise RuntimeError("killed mid-way")

    failed = dg.materialize([dies], instance=instance, raise_on_error=False, tags=request.tags)
    assert not failed.success
    [again] = tick().run_requests
    assert again.run_key == f"{MODEL_NAME}-v3-attempt1"

    _promote(tracking, instance, tmp_path, version="3")
    assert client.get_model_version(MODEL_NAME, "2").tags[registry.TAG_PROMOTION] == promotion.SUPERSEDED
    assert promotion.versions_to_judge(client, MODEL_NAME) == []
    assert not tick().run_requests


def test_a_missing_database_is_created_once_by_concurrent_steps(tmp_path):
    uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"
    start = time.time() + 3
    script = f"""
        import time
        from ecomarket_assets.mlops.tracking import MlflowResource, fluent_uris
        while time.time() < {start}:
            time.sleep(0.005)
        tracking = MlflowResource(tracking_uri={uri!r}, artifact_root={str(tmp_path / 'art')!r})
        tracking.experiment_id("concurrent")
        print(len(tracking.client().search_experiments()))
    """
    path = tmp_path / "step.py"
    path.write_text(textwrap.dedent(script))
    steps = [subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1]) for _ in range(4)]
    outcomes = [step.communicate(timeout=300) for step in steps]
    assert [s.returncode for s in steps] == [0, 0, 0, 0], [err[-1500:] for _, err in outcomes]
    assert all(out.strip() == "2" for out, _ in outcomes)  # Default + concurrent, created once
    assert len(MlflowClient(tracking_uri=uri).search_experiments()) == 2
    assert os.path.exists(tmp_path / "fresh" / "mlflow.db")


def test_a_promotion_step_with_nothing_registered_says_so(tracking, tmp_path):
    meta = _promote(tracking, dg.DagsterInstance.ephemeral(), tmp_path)
    assert meta["decision"] == "nothing_to_decide" and "no registered version" in meta["reason"]
