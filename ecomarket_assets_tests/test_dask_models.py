"""The models train on the Dask engine through their assets, and land in MLflow exactly like local ones.

Slow (`make test-slow`): Optuna tuning, the demand model's final fit with DaskLGBMRegressor and the
recommender's DaskLGBMRanker on a 2-worker LocalCluster, each registered as the first `champion`.
"""

import dagster as dg
import mlflow
import pytest
from mlflow import MlflowClient

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.forecasting import assets as forecast_assets
from ecomarket_assets.defs.profiles import assets as profile_assets
from ecomarket_assets.defs.recommender import assets as rec_assets
from ecomarket_assets.forecasting.store import MODEL_NAME as DEMAND_MODEL
from ecomarket_assets.mlops.tracking import MlflowResource, fluent_uris
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.recommender.store import MODEL_NAME as RECOMMENDER
from ecomarket_assets.resources import DataDirResource, ForecastTrainingResource, ShopSourceResource
from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS, ALL_CHECKS

pytestmark = pytest.mark.slow

SIM = {"sim_users": 700, "sim_products": 50, "sim_days": 130, "sim_start": "2025-06-20", "sim_seed": 5}
RANGE = partition_range_tags("2025-06-20", "2025-10-27")
EVERYTHING = [*ALL_ASSETS, *ALL_CHECKS, profile_assets.user_daily_activity, forecast_assets.demand_training_set,
              forecast_assets.demand_model, rec_assets.rec_candidates, rec_assets.recommender_model]
CONFIG = {"ops": {"rec_candidates": {"config": {"window_days": 14, "per_generator": 30}}}}
MODELS = ["demand_training_set", "demand_model", "rec_candidates", "recommender_model"]


def test_models_train_on_dask_and_register_like_local_ones(tmp_path):
    tracking = MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "artifacts"))
    resources = {"data_dir": DataDirResource(path=str(tmp_path / "data")), "source": ShopSourceResource(**SIM),
                 "mlflow_tracking": tracking, "compute": ComputeResource(engine="dask", workers=2),
                 "forecast_training": ForecastTrainingResource(n_trials=3, timeout_seconds=120)}

    def run(selection, **kw):
        result = dg.materialize(EVERYTHING, resources=resources, selection=selection, **kw)
        assert result.success
        return result

    run(["catalog", "customers", "reviews"])
    run(["raw_events", "user_daily_activity"], tags=RANGE)
    result = run(MODELS, run_config=CONFIG)
    meta = {name: result.asset_materializations_for_node(name)[0].metadata for name in MODELS}
    for name in MODELS:
        assert meta[name]["engine"].value == "dask" and meta[name]["dask_workers"].value == 2, name

    client = MlflowClient(tracking.tracking_uri)
    for model in (DEMAND_MODEL, RECOMMENDER):
        champion = client.get_model_version_by_alias(model, "champion")
        assert str(champion.version) == "1" and "challenger" in champion.aliases
        source_run = client.get_run(champion.run_id)
        assert source_run.data.tags["engine"] == "dask"
        with fluent_uris(tracking.tracking_uri):  # served the way every local model is
            loaded = mlflow.pyfunc.load_model(f"models:/{model}@champion")
        assert loaded.metadata.get_input_schema() is not None
    assert meta["recommender_model"]["holdout_ndcg@10"].value > 0.05
    assert meta["demand_model"]["registered_version"].value == 1
