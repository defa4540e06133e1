"""Materialize the profiles group on a small simulated shop, checks included."""

import dagster as dg

from ecomarket_assets.defs.profiles import assets as profile_assets
from ecomarket_assets.defs.profiles import checks as profile_checks
from ecomarket_assets.defs.text import assets as text_assets
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets.text.model import EmbeddingModelResource
from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS, ALL_CHECKS, checks_by_name

PROFILE_ASSETS = [profile_assets.user_daily_activity, profile_assets.user_features, profile_assets.user_profiles,
                  profile_assets.user_segments]
EVERYTHING = [*ALL_ASSETS, *ALL_CHECKS, *PROFILE_ASSETS, *dg.load_asset_checks_from_modules([profile_checks]),
              text_assets.product_embeddings]
RANGE = partition_range_tags("2025-11-10", "2025-11-30")


def test_profiles_group_materializes_with_checks(small_resources, data_dir):
    small_resources = {**small_resources, "embedding_model": EmbeddingModelResource()}
    instance = dg.DagsterInstance.ephemeral()
    run = lambda selection, **kw: dg.materialize(EVERYTHING, resources=small_resources, selection=selection, instance=instance, **kw)  # noqa: E731
    assert run(["catalog", "customers", "reviews"]).success
    daily = run(["raw_events", "user_daily_activity"], tags=RANGE)
    assert daily.success and all(checks_by_name(daily).values())
    rest = run(["product_embeddings", "user_features", "user_profiles", "user_segments"])
    assert rest.success
    outcome = checks_by_name(rest)
    assert {"user_features_valid", "user_profiles_valid", "every_user_segmented", "churn_model_quality"} <= set(outcome)
    assert all(outcome.values())

    layout = DataLayout(data_dir)
    profiles = read_frame(layout.table("user_profiles"))
    customers = read_frame(layout.table("customers"))
    assert set(customers["user_id"]) <= set(profiles["user_id"])
    assert (profiles["as_of"].astype(str) == "2025-11-30").all()
    buyers = profiles[profiles["orders"] > 0]
    assert len(buyers) > 50 and buyers["rfm_segment"].ne("prospects").all()
    segments = read_frame(layout.table("user_segments"))
    assert len(segments) == len(profiles) and segments["segment_name"].notna().all()
    meta = rest.asset_materializations_for_node("user_profiles")[0].metadata
    assert meta["backtest"].value == "not enough history for a 90-day backtest"  # 21 days only
    assert meta["prediction_models"].value.count("bg_nbd") == 3  # no window to validate the supervised model on
    assert "too little history" in meta["prediction_model_note"].value and not meta["prediction_models_reused"].value
    assert "plot" in rest.asset_materializations_for_node("user_segments")[0].metadata
    interests = read_frame(layout.root / "user_profiles" / "interest_embeddings.parquet")
    assert meta["users_with_interest_embedding"].value == len(interests) > 0.5 * len(profiles)
