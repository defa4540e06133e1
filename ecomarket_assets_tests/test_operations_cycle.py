"""A whole operating cycle without a person: ingest, train, register; a market shift; drift fails; the sensor
retrains; the registry sensor launches promotion; the decision is recorded. Then a deliberately worse challenger
is refused. Jobs, schedules and sensors are the ones `dagster dev` and the daemon run (ecomarket_assets.definitions);
the test evaluates each sensor tick and executes the runs it requests, as the daemon would."""

import datetime as dt
import tempfile
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from ecomarket_assets.defs.forecasting.assets import DEMAND_FORECASTER
from ecomarket_assets.forecasting import training as tr
from ecomarket_assets.forecasting.serving import save_model
from ecomarket_assets.forecasting.store import ForecastStore, tuning_from_dict
from ecomarket_assets.mlops import lifecycle, promotion, registry
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.settings import plain
from ecomarket_assets.storage import DataLayout

pytestmark = pytest.mark.slow

START = dt.date(2025, 5, 1)
DAYS, SHIFT_DAY = 160, 130
SIM_ENV = {"ECOMARKET_SOURCE": "simulator", "ECOMARKET_SIM_USERS": "600", "ECOMARKET_SIM_PRODUCTS": "60",
           "ECOMARKET_SIM_DAYS": str(DAYS), "ECOMARKET_SIM_START": START.isoformat(), "ECOMARKET_SIM_SEED": "9",
           "ECOMARKET_FORECAST_TRIALS": "2", "ECOMARKET_FORECAST_TIMEOUT": "120"}
BOOTSTRAP = ["product_embeddings", "user_features", "user_profiles", "user_segments",
             "demand_training_set", "demand_model", "demand_forecast", "rec_candidates", "recommender_model",
             "recommendations", "drift_reference"]
MODELS = ("demand_forecaster", "recommender")


def _day(index: int) -> str:
    return (START + dt.timedelta(days=index)).isoformat()


class Platform:
    """The project's definitions on one instance, with the environment a deployment would set."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root, self.monkeypatch = root, monkeypatch
        self.instance = dg.DagsterInstance.ephemeral()
        env = {**SIM_ENV, "ECOMARKET_DATA_DIR": str(root / "data"),
               "ECOMARKET_MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
               "ECOMARKET_MLFLOW_ARTIFACT_ROOT": str(root / "artifacts")}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        self.load()

    def load(self) -> None:
        from ecomarket_assets.definitions import defs

        self.defs = defs()
        self.tracking = plain(MlflowResource)
        self.client = self.tracking.client()

    def shift(self) -> None:
        self.monkeypatch.setenv("ECOMARKET_SIM_SHIFT_DAY", str(SHIFT_DAY))
        self.load()

    def job(self, name: str, **kwargs) -> dg.ExecuteInProcessResult:
        result = self.defs.resolve_job_def(name).execute_in_process(instance=self.instance, **kwargs)
        assert result.success, name
        return result

    def ingest(self, first: int, last: int) -> None:
        self.job("daily_ingest_job", tags=partition_range_tags(_day(first), _day(last)))

    def materialize(self, keys: list[str]) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=self.instance, asset_selection=[dg.AssetKey(k) for k in keys])
        assert result.success
        return result

    def tick(self, sensor_name: str, cursor: str | None = None) -> dg.SensorResult:
        sensor = self.defs.resolve_sensor_def(sensor_name)
        context = dg.build_sensor_context(instance=self.instance, cursor=cursor, definitions=self.defs,
                                          resources={"mlflow_tracking": self.tracking})
        return sensor(context)

    def launch(self, request: dg.RunRequest, default_job: str) -> dg.ExecuteInProcessResult:
        return self.job(request.job_name or default_job, run_config=request.run_config, tags=request.tags)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


@pytest.fixture(scope="module")
def cycle():
    monkeypatch = pytest.MonkeyPatch()
    root = Path(tempfile.mkdtemp(prefix="ecomarket-cycle-"))
    platform = Platform(root, monkeypatch)
    story: dict = {}
    try:
        # Day 1: the shop's history so far, both models trained and serving, the drift reference taken.
        platform.job("shop_tables_job")
        platform.ingest(0, SHIFT_DAY - 1)
        platform.materialize(BOOTSTRAP)
        story["after_bootstrap"] = platform.tick("model_version_sensor")
        story["calm_refresh"] = platform.job("daily_refresh_job")
        story["calm_drift_tick"] = platform.tick("drift_retrain_sensor")
        # A month of a shifted market: prices up 30%, a new category takes over part of the busiest one.
        platform.shift()
        platform.job("shop_tables_job")
        platform.ingest(SHIFT_DAY, DAYS - 1)
        story["shifted_refresh"] = platform.job("daily_refresh_job")
        story["drift_tick"] = platform.tick("drift_retrain_sensor", story["calm_drift_tick"].cursor)
        story["retrain"] = [platform.launch(r, "retrain_models_job") for r in story["drift_tick"].run_requests]
        story["version_tick"] = platform.tick("model_version_sensor")
        story["promotions"] = {r.tags["ecomarket/model"]: platform.launch(r, "") for r in story["version_tick"].run_requests}
        story["quiet_tick"] = platform.tick("model_version_sensor")
        yield platform, story
    finally:
        monkeypatch.undo()


def test_calm_days_do_not_trigger_anything(cycle):
    platform, story = cycle
    assert not story["after_bootstrap"].run_requests  # first versions are champions at once
    for model in MODELS:
        assert str(registry.champion_version(platform.client, model).version) == "1"
    checks = _checks(story["calm_refresh"])
    assert checks["profile_drift_within_threshold"] and checks["recommendation_drift_within_threshold"]
    assert _meta(story["calm_refresh"], "recommendation_drift")["drifted_share"] == 0.0
    assert not story["calm_drift_tick"].run_requests


def test_shift_fails_drift_and_retrains_without_a_person(cycle):
    platform, story = cycle
    checks = _checks(story["shifted_refresh"])
    assert checks["recommendation_drift_within_threshold"] is False
    meta = _meta(story["shifted_refresh"], "recommendation_drift")
    assert "category" in meta["drifted_columns"] and "price" in meta["drifted_columns"]
    assert meta["mean_price_current"] > 1.15 * meta["mean_price_reference"]
    assert "smart_home" in meta["recommended_categories"]
    assert Path(meta["report_html"]).stat().st_size > 10_000
    requests = story["drift_tick"].run_requests
    assert len(requests) == 1 and requests[0].tags["ecomarket/trigger"] == "drift"
    assert "recommendation_drift_within_threshold" in requests[0].tags["ecomarket/failed_checks"]
    retrained = story["retrain"][0]
    for model, asset in (("demand_forecaster", "demand_model"), ("recommender", "recommender_model")):
        assert _meta(retrained, asset)["registered_version"] == 2
        assert str(registry.alias_version(platform.client, model, registry.CHALLENGER).version) == "2"


def test_new_versions_get_a_recorded_promotion_decision(cycle):
    platform, story = cycle
    assert sorted(r.run_key for r in story["version_tick"].run_requests) == ["demand_forecaster-v2-attempt0", "recommender-v2-attempt0"]
    for model in MODELS:
        meta = _meta(story["promotions"][model], "demand_model_promotion" if model == "demand_forecaster"
                     else "recommender_promotion")
        assert meta["decision"] in {"promoted", "refused"}, meta["reason"]
        assert meta["champion_after"] == ("2" if meta["decision"] == "promoted" else "1")
        challenger = platform.client.get_model_version(model, "2")
        assert challenger.tags[promotion.TAG_DECISION] == meta["decision"]
        assert challenger.tags[promotion.TAG_COMPARED_WITH] == "1"
        first = platform.client.get_model_version(model, "1")
        assert first.tags[promotion.TAG_LAST_CHALLENGE].startswith(f"v2 {meta['decision']}")
        assert "challenger" in meta["comparison"] and "champion" in meta["comparison"]
        assert str(registry.champion_version(platform.client, model).version) == meta["champion_after"]
    assert not story["quiet_tick"].run_requests  # decided versions are not pending any more


def _register_underfit_demand_model(platform: Platform) -> str:
    """A demand model with 2 boosting rounds on the same data cut as the champion: worse by construction."""
    store = ForecastStore(DataLayout(platform.root / "data"))
    panel, basis = store.read_panel(), store.read_basis()
    tuning = tuning_from_dict(store.read_tuning())
    tuning.rounds = 2
    champion = registry.champion_version(platform.client, "demand_forecaster")
    cut = champion.tags[promotion.TAG_TRAINED_THROUGH]
    origin = int(panel.days.tz_localize(None).searchsorted(cut))
    model = tr.fit_final(tr.make_training_set(panel, basis), tuning, basis, origin=origin)
    example = tr.fold_data(panel, origin, basis, horizon=2).features.head(5)
    context = SimpleNamespace(run_id="underfit-by-hand", instance=platform.instance)
    with lifecycle.training_run(context, platform.tracking, DEMAND_FORECASTER, "underfit") as run:
        registered = run.register(lambda folder: save_model(model, folder), example, trained_through=cut,
                                  engine="local", fingerprint=lifecycle.frame_fingerprint(example))
    return registered.version.version


def test_a_worse_challenger_is_refused(cycle):
    platform, _ = cycle
    before = str(registry.champion_version(platform.client, "demand_forecaster").version)
    worse = _register_underfit_demand_model(platform)
    requests = platform.tick("model_version_sensor").run_requests
    assert [r.run_key for r in requests] == [f"demand_forecaster-v{worse}-attempt0"]
    meta = _meta(platform.launch(requests[0], ""), "demand_model_promotion")
    assert meta["decision"] == "refused" and "wape" in meta["reason"]
    assert str(registry.champion_version(platform.client, "demand_forecaster").version) == before
    tags = platform.client.get_model_version("demand_forecaster", worse).tags
    assert tags[registry.TAG_PROMOTION] == "refused"
    assert float(tags["promotion_wape"]) > float(tags["promotion_champion_wape"])
