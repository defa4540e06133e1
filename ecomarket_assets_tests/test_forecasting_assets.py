"""Materialize the forecasting group on a 130-day simulated shop, MLflow in tmp_path, checks included."""

import dagster as dg
import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.forecasting import assets as forecast_assets
from ecomarket_assets.defs.forecasting import checks as forecast_checks
from ecomarket_assets.defs.text import assets as text_assets
from ecomarket_assets.forecasting import training as tr
from ecomarket_assets.forecasting.store import MODEL_NAME, ForecastStore, tuning_from_dict
from ecomarket_assets.mlops import registry
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.resources import DataDirResource, ForecastTrainingResource, ShopSourceResource
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets.text.model import EmbeddingModelResource
from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS, ALL_CHECKS, checks_by_name

SIM = {"sim_users": 700, "sim_products": 50, "sim_days": 130, "sim_start": "2025-06-20", "sim_seed": 5}
RANGE = partition_range_tags("2025-06-20", "2025-10-27")
FORECASTING = [forecast_assets.demand_training_set, forecast_assets.demand_model, forecast_assets.demand_forecast,
               forecast_assets.demand_backtest]
EVERYTHING = [*ALL_ASSETS, *ALL_CHECKS, text_assets.product_embeddings, *FORECASTING,
              *dg.load_asset_checks_from_modules([forecast_checks])]
# A small Optuna budget for one run, as the launchpad's resources section would set it.
QUICK = {"resources": {"forecast_training": {"config": {"n_trials": 3, "timeout_seconds": 120}}}}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    tracking = MlflowResource(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "artifacts"))
    resources = {"data_dir": DataDirResource(path=str(root / "data")), "source": ShopSourceResource(**SIM),
                 "embedding_model": EmbeddingModelResource(), "mlflow_tracking": tracking,
                 "compute": ComputeResource(), "forecast_training": ForecastTrainingResource()}
    instance = dg.DagsterInstance.ephemeral()

    def run(selection, **kw):
        return dg.materialize(EVERYTHING, resources=resources, selection=selection, instance=instance, **kw)

    run.instance = instance
    assert run(["catalog", "customers", "reviews"]).success
    assert run(["raw_events"], tags=RANGE).success
    first = run(["product_embeddings", *[a.key.to_user_string() for a in FORECASTING]], run_config=QUICK)
    assert first.success
    return root, tracking, run, first


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def test_forecasting_group_materializes_with_checks(shop):
    root, tracking, run_assets, first = shop
    outcome = checks_by_name(first)
    assert outcome["demand_training_set_reconciles"] and outcome["demand_forecast_valid"]
    assert "demand_model_beats_baselines" in outcome and "demand_interval_coverage" in outcome

    store = ForecastStore(DataLayout(root / "data"))
    forecast = read_frame(store.forecast / "demand_forecast.parquet")
    assert forecast.groupby("product_id").size().eq(28).all()
    assert str(forecast["date"].min()) == "2025-10-28" and str(forecast["date"].max()) == "2025-11-24"
    assert ((forecast["p10"] <= forecast["p50"]) & (forecast["p50"] <= forecast["p90"])).all()

    meta = _meta(first, "demand_backtest")
    table = read_frame(store.backtest / "metrics.parquet").set_index("method")
    assert set(table.index) == {"lightgbm", "lightgbm_expected_units", "seasonal_naive", "weekday_mean", "moving_average",
                                "auto_ets"}
    assert abs(table.loc["lightgbm_expected_units", "bias_day"]) < abs(table.loc["lightgbm", "bias_day"])
    assert table.loc["lightgbm", "wape_day"] == pytest.approx(meta["model_wape"])
    assert 0.5 < table.loc["lightgbm", "coverage_day"] <= 1.0
    assert table.loc["lightgbm", "wape_day"] < table.loc["seasonal_naive", "wape_day"]  # sparse counts: naive is poor
    assert "against_true_demand" in meta and 0 < meta["model_wape_vs_truth"] < table.loc["lightgbm", "wape_day"]
    predictions = read_frame(store.backtest / "predictions.parquet")
    assert predictions["origin"].astype(str).nunique() == 2 and predictions["horizon"].max() == 28
    # The newest backtest origin is the registered fit's own (holdout_days = one horizon): scored, not refitted,
    # and a refit with the same tuning on the same days forecasts exactly the same.
    panel, basis = store.read_panel(), store.read_basis()
    newest = tr.plan_folds(len(panel.days)).backtest_origins[-1]
    assert meta["origins_scored_with_the_registered_fit"] == str(panel.days[newest].date())
    registered = store.read_final_model(str(panel.days[newest].date()))
    refit = tr.fit_final(store.read_training_set(panel, basis), tuning_from_dict(store.read_tuning()), basis, newest)
    fold = tr.fold_data(panel, newest, basis)
    pd.testing.assert_frame_equal(registered.predict(fold.features), refit.predict(fold.features))

    model_meta = _meta(first, "demand_model")
    assert model_meta["registered_version"] == 1 and model_meta["aliases"] == "challenger, champion"
    assert model_meta["optuna_trials"] == 3
    progress = [e.user_message for e in run_assets.instance.all_logs(first.run_id) if "Optuna trial" in e.user_message]
    assert [m.split(":")[0] for m in progress] == [f"Optuna trial {n}/3" for n in (1, 2, 3)]  # in the run log
    run = MlflowClient(tracking.resolved_tracking_uri()).get_run(_run_id(model_meta["mlflow_run"]))
    assert run.data.tags["dagster.asset"] == "demand_model" and "cv_wape" in run.data.metrics
    artifacts = {a.path for a in MlflowClient(tracking.resolved_tracking_uri()).list_artifacts(run.info.run_id)}
    assert {"feature_importance.png", "optuna_history.png", "optuna_trials.json"} <= artifacts


def _run_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def test_champion_serves_and_a_retrain_only_adds_a_challenger(shop):
    root, tracking, run, first = shop
    client = tracking.client()
    champion = registry.load_champion(tracking, MODEL_NAME)
    store = ForecastStore(DataLayout(root / "data"))
    features = store.read_features().head(50)
    served = champion.predict(features.drop(columns=["product_id", "target_date", "units"]))
    assert list(served.columns) == ["forecast", "expected_units", "p10", "p50", "p90"] and np.isfinite(served.to_numpy()).all()

    second = run(["demand_model", "demand_forecast"], run_config=QUICK)
    assert second.success
    retrained = _meta(second, "demand_model")  # same data, a search made today: refit with its choices
    assert retrained["tuning"] == "warm" and "0 days old" in retrained["tuning_reason"]
    # One trial of the searched params on the same folds finds the same rounds and scores the same CV WAPE.
    assert "optuna_history" not in retrained and retrained["optuna_trials"] == 1
    assert retrained["cv_wape"] == pytest.approx(_meta(first, "demand_model")["cv_wape"], rel=1e-9)
    assert retrained["best_params"] == _meta(first, "demand_model")["best_params"]
    first_run = MlflowClient(tracking.resolved_tracking_uri()).get_run(_run_id(retrained["mlflow_run"]))
    assert first_run.data.params["tuning_mode"] == "warm"
    assert str(registry.champion_version(client, MODEL_NAME).version) == "1"
    assert str(registry.alias_version(client, MODEL_NAME, registry.CHALLENGER).version) == "2"
    forecast = read_frame(store.forecast / "demand_forecast.parquet")
    assert (forecast["model_version"] == "1").all()  # serving follows the champion alias, not the newest version
    assert not mlflow.get_tracking_uri().startswith(f"sqlite:///{root}")  # the resource restored the global URI

    forced = run(["demand_model"], run_config={**QUICK, "ops": {"demand_model": {"config": {"tuning": "full"}}}})
    assert _meta(forced, "demand_model")["tuning"] == "full" and _meta(forced, "demand_model")["optuna_trials"] == 3
    study = optuna.load_study(study_name=ForecastStore(DataLayout(root / "data")).last_tuning()["study"],
                              storage=store.optuna_storage())
    assert len(study.trials) == 3  # the search is kept, queryable after the run


def test_training_set_has_real_zero_days(shop):
    root = shop[0]
    panel = read_frame(ForecastStore(DataLayout(root / "data")).panel_path)
    per_product = panel.groupby("product_id")["date"].agg(["min", "max", "size"])
    span = (pd.to_datetime(per_product["max"]) - pd.to_datetime(per_product["min"])).dt.days + 1
    assert (span == per_product["size"]).all() and (panel["units"] == 0).mean() > 0.3
