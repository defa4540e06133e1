"""Materialize the recommender group on a small simulated shop, MLflow in tmp_path, checks included."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.profiles import assets as profile_assets
from ecomarket_assets.defs.recommender import assets as rec_assets
from ecomarket_assets.defs.recommender import checks as rec_checks
from ecomarket_assets.defs.text import assets as text_assets
from ecomarket_assets.mlops import registry
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.recommender.evaluation import BASELINES, MODEL, SERVED
from ecomarket_assets.recommender.rerank import SERVE_GRID
from ecomarket_assets.recommender.store import MODEL_NAME, RecStore
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets.text.model import EmbeddingModelResource
from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS, ALL_CHECKS, checks_by_name

SIM = {"sim_users": 500, "sim_products": 60, "sim_days": 84, "sim_start": "2025-08-01", "sim_seed": 4}
RANGE = partition_range_tags("2025-08-01", "2025-10-23")
RECOMMENDER = [rec_assets.rec_candidates, rec_assets.recommender_model, rec_assets.recommendations,
               rec_assets.rec_evaluation]
EVERYTHING = [*ALL_ASSETS, *ALL_CHECKS, text_assets.product_embeddings, profile_assets.user_daily_activity,
              *RECOMMENDER, *dg.load_asset_checks_from_modules([rec_checks])]
CONFIG = {"ops": {"rec_candidates": {"config": {"window_days": 14, "per_generator": 30}},
                  "recommendations": {"config": {"k": 10}}, "rec_evaluation": {"config": {"k": 10}}}}
K = 10


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommender")
    tracking = MlflowResource(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "artifacts"))
    resources = {"data_dir": DataDirResource(path=str(root / "data")), "source": ShopSourceResource(**SIM),
                 "embedding_model": EmbeddingModelResource(), "mlflow_tracking": tracking,
                 "compute": ComputeResource()}
    instance = dg.DagsterInstance.ephemeral()

    def run(selection, **kw):
        return dg.materialize(EVERYTHING, resources=resources, selection=selection, instance=instance, **kw)

    run.instance = instance

    assert run(["catalog", "customers", "reviews"]).success
    assert run(["raw_events", "user_daily_activity"], tags=RANGE).success
    first = run(["product_embeddings", *[a.key.to_user_string() for a in RECOMMENDER]], run_config=CONFIG)
    assert first.success
    return root, tracking, run, first


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def test_recommender_group_materializes_with_checks(shop):
    _, _, run, first = shop
    outcome = checks_by_name(first)
    assert outcome["rec_candidates_time_split"] and outcome["recommendations_are_well_formed"]
    progress = [e.user_message for e in run.instance.all_logs(first.run_id) if "candidate set" in e.user_message]
    assert [m.split(" ")[2] for m in progress] == ["1/4", "2/4", "3/4", "4/4"]  # train_1, train_2, holdout, serving
    assert "ranker_beats_baselines" in outcome
    meta = _meta(first, "rec_candidates")
    assert 0.3 < meta["holdout_candidate_recall"] <= 1.0
    assert meta["serving_users"] > 400


def test_every_customer_gets_k_recommendations_from_the_champion(shop):
    root, _, _, first = shop
    layout = DataLayout(root / "data")
    recs = read_frame(RecStore(layout).recommendations_path)
    customers = read_frame(layout.table("customers"))
    signed_up = customers[customers["signup_time"] < pd.Timestamp("2025-10-24", tz="UTC")]
    assert set(signed_up["user_id"]) <= set(recs["user_id"])  # cold customers included
    assert (recs.groupby("user_id").size() == K).all()
    assert recs["cold_user"].any() and (~recs["cold_user"]).any()
    assert (recs["model_version"] == "1").all()
    assert str(recs["as_of"].iloc[0]) == "2025-10-24"  # the day after the last event
    assert recs["product_id"].isin(read_frame(layout.table("catalog"))["product_id"]).all()
    assert _meta(first, "recommendations")["users_with_fewer_than_k"] == 0


def test_filters_hold_in_the_served_lists(shop):
    """With the filter threshold and MMR weight the model chose on its validation users, not hand-set ones."""
    root, _, _, first = shop
    store = RecStore(DataLayout(root / "data"))
    recs = read_frame(store.recommendations_path)
    serving = store.read_candidates("serving")
    joined = recs.merge(serving, on=["user_id", "product_id"], how="left", validate="one_to_one")
    chosen, used = _meta(first, "recommender_model"), _meta(first, "recommendations")
    assert (used["repeatable_rate"], used["mmr_lambda"]) == (chosen["serve_repeatable_rate"], chosen["serve_mmr_lambda"])
    assert used["repeatable_rate"] in SERVE_GRID["repeatable_rate"] and used["mmr_lambda"] in SERVE_GRID["mmr_lambda"]
    tuning = chosen["serve_tuning"]
    assert "ndcg@10" in tuning and "0.85" in tuning  # the whole grid is shown
    bought_before = joined["ui_purchase_days"] > 0
    assert (joined.loc[bought_before, "item_repurchase_rate"] >= used["repeatable_rate"]).all()
    assert not (joined["item_last_seen_days"] > 56).any()
    forced = shop[2](["recommendations"], run_config={"ops": {"recommendations": {"config": {
        "k": K, "repeatable_rate": 0.9, "mmr_lambda": 0.5}}}})
    assert (_meta(forced, "recommendations")["repeatable_rate"], _meta(forced, "recommendations")["mmr_lambda"]) == (0.9, 0.5)
    again = read_frame(store.recommendations_path).merge(serving, on=["user_id", "product_id"], how="left")
    assert not ((again["ui_purchase_days"] > 0) & (again["item_repurchase_rate"] < 0.9)).any()  # config overrides
    restore = {"ops": {"recommendations": CONFIG["ops"]["recommendations"]}}
    assert shop[2](["recommendations"], run_config=restore).success  # the chosen values again, for the other tests


def test_evaluation_compares_the_ranker_with_every_baseline_for_all_and_cold_users(shop):
    root, _, _, first = shop
    store = RecStore(DataLayout(root / "data"))
    table = read_frame(store.evaluation / "metrics.parquet")
    assert set(table["method"]) == {MODEL, SERVED, *BASELINES}
    assert set(table["users_group"]) == {"all", "cold"}
    everyone = table[table["users_group"] == "all"].set_index("method")
    assert everyone["users"].nunique() == 1 and everyone["users"].iloc[0] > 50
    for metric in ("recall@10", "recall@20", "ndcg@10", "map@10", "hit_rate@10", "catalog_coverage@10", "novelty@10"):
        assert everyone[metric].between(0, 20).all() and everyone[metric].max() > 0
    assert (everyone["recall@20"] >= everyone["recall@10"]).all()
    assert everyone.loc[MODEL, "ndcg@10"] > everyone.loc["most_popular", "ndcg@10"]
    truth = read_frame(store.evaluation / "against_truth.parquet").set_index("method")
    assert truth.loc[MODEL, "true_ndcg@10"] > truth.loc["most_popular", "true_ndcg@10"]
    assert "mlflow_run" in _meta(first, "rec_evaluation")


def test_retraining_adds_a_challenger_and_serving_stays_on_the_champion(shop):
    _, tracking, run, _ = shop
    again = run(["recommender_model", "recommendations"], run_config={"ops": {"recommendations": CONFIG["ops"]["recommendations"]}})
    assert again.success
    client: MlflowClient = tracking.client()
    assert str(registry.champion_version(client, MODEL_NAME).version) == "1"
    assert str(registry.alias_version(client, MODEL_NAME, registry.CHALLENGER).version) == "2"
    assert _meta(again, "recommender_model")["registered_version"] == 2
    recs_meta = _meta(again, "recommendations")
    assert recs_meta["champion_version"].endswith("/versions/1")
    run_data = client.get_run(client.get_model_version(MODEL_NAME, "2").run_id).data
    assert 0 < run_data.metrics["holdout_ndcg_at_10"] <= 1
    assert np.isfinite(run_data.metrics["valid_ndcg_at_10"])
