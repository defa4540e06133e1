"""Materialize the campaign group on a small simulated shop: specs -> lists -> outcomes -> uplift, MLflow in tmp_path."""


import dagster as dg
import pandas as pd
import pytest

from ecomarket_assets.campaigns.planner import assign_group
from ecomarket_assets.campaigns.store import MODEL_NAME, CampaignStore
from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.campaigns import assets as campaign_assets
from ecomarket_assets.defs.campaigns import checks as campaign_checks
from ecomarket_assets.defs.operations import model_checks, promotion_assets
from ecomarket_assets.defs.profiles import assets as profile_assets
from ecomarket_assets.defs.recommender import assets as rec_assets
from ecomarket_assets.defs.text import assets as text_assets
from ecomarket_assets.mlops import promotion, registry
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.resources import CampaignsResource, DataDirResource, ShopSourceResource
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets.text.model import EmbeddingModelResource
from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS, ALL_CHECKS, checks_by_name

SIM = {"sim_users": 1200, "sim_products": 60, "sim_days": 84, "sim_start": "2025-08-01", "sim_seed": 5}
RANGE = partition_range_tags("2025-08-01", "2025-10-23")
CAMPAIGNS = [campaign_assets.campaign_specs, campaign_assets.campaign_audiences, campaign_assets.campaign_lists,
             campaign_assets.campaign_outcomes, campaign_assets.campaign_results, campaign_assets.campaign_uplift_model]
UPSTREAM = [profile_assets.user_daily_activity, profile_assets.user_features, profile_assets.user_profiles,
            profile_assets.user_segments, text_assets.product_embeddings, rec_assets.rec_candidates,
            rec_assets.recommender_model, rec_assets.recommendations]
EVERYTHING = [*ALL_ASSETS, *ALL_CHECKS, *UPSTREAM, *CAMPAIGNS, *dg.load_asset_checks_from_modules([campaign_checks]),
              promotion_assets.campaign_uplift_promotion, model_checks.campaign_uplift_model_version_check]
ACTIVE = """
name: {name}
objective: {objective}
audience:
  rule: '{rule}'
channels: [email, push, sms]
creatives:
  - id: heavy
    subject: "Back in stock: {{first_product}}"
    when: "orders >= 3"
  - id: default
    subject: "Picked for you"
schedule: {{weekdays: [{day}], start_hour: 9, end_hour: 20}}
budget: {{max_recipients: {budget}}}
frequency_cap: {{messages: 1, days: 7}}
control_share: 0.5
priority: {priority}
"""


def _folder(root, broken: bool = False):
    folder = root / ("broken" if broken else "campaigns")
    folder.mkdir()
    (folder / "buyers.yaml").write_text(ACTIVE.format(name="buyers", objective="cross-sell", rule="orders >= 1",
                                                      day="mon", budget=150, priority=1))
    (folder / "browsers.yaml").write_text(ACTIVE.format(name="browsers", objective="new-arrival",
                                                        rule="orders == 0 and events >= 1", day="wed", budget=120,
                                                        priority=2))
    if broken:
        (folder / "browsers.yaml").write_text(ACTIVE.format(name="browsers", objective="new-arrival", rule="ordrs >= 1",
                                                            day="wed", budget=120, priority=2)
                                              .replace("control_share: 0.5", "control_share: 2"))
    return folder


REC_CONFIG = {"ops": {"rec_candidates": {"config": {"window_days": 14, "per_generator": 30}},
                      "recommendations": {"config": {"k": 10}}}}


def build_campaign_shop(root, sim: dict, range_tags: dict, definitions: list, first_selection: list[str]):
    """Materialize a simulated shop through recommendations, then `first_selection`: (tracking, run, first)."""
    tracking = MlflowResource(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "artifacts"))
    resources = {"data_dir": DataDirResource(path=str(root / "data")), "source": ShopSourceResource(**sim),
                 "compute": ComputeResource(), "campaigns": CampaignsResource(specs_dir=str(_folder(root))),
                 "embedding_model": EmbeddingModelResource(), "mlflow_tracking": tracking}
    instance = dg.DagsterInstance.ephemeral()

    def run(selection, **kw):
        return dg.materialize(definitions, resources=resources, selection=selection, instance=instance, **kw)

    assert run(["catalog", "customers", "reviews"]).success
    assert run(["raw_events", "user_daily_activity"], tags=range_tags).success
    upstream = [a.key.to_user_string() for a in UPSTREAM if a is not profile_assets.user_daily_activity]
    assert run(upstream, run_config=REC_CONFIG).success
    first = run(first_selection)
    assert first.success
    return tracking, run, first


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaigns")
    tracking, run, first = build_campaign_shop(root, SIM, RANGE, EVERYTHING, [a.key.to_user_string() for a in CAMPAIGNS])
    return root, tracking, run, first, REC_CONFIG


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def test_lists_pass_the_blocking_rules_check_and_are_exported(shop):
    root, _, _, first, _ = shop
    assert checks_by_name(first)["campaign_lists_respect_rules"]
    store = CampaignStore(DataLayout(root / "data"))
    lists = store.read_lists()
    assert set(lists["campaign"]) == {"buyers", "browsers"}
    assert lists.groupby(["campaign", "send_date"]).size().max() <= 150
    for (campaign, day), part in lists.groupby(["campaign", "send_date"]):
        csv = pd.read_csv(store.exports / campaign / day.isoformat() / f"{campaign}_{day.isoformat()}.csv")
        assert sorted(csv["user_id"]) == sorted(part.loc[part["group"] == "treatment", "user_id"])  # who to message
        control = pd.read_csv(store.control / campaign / day.isoformat() / f"{campaign}_{day.isoformat()}_control.csv")
        assert sorted(control["user_id"]) == sorted(part.loc[part["group"] == "control", "user_id"])
    meta = _meta(first, "campaign_lists")
    assert meta["dagster/row_count"] == len(lists) and meta["treatment"] + meta["control"] == len(lists)
    assert "frequency_cap_share" in meta["share_removed_by_rule"]


def test_measured_uplift_is_close_to_the_true_uplift(shop):
    root, _, _, first, _ = shop
    by_campaign = read_frame(CampaignStore(DataLayout(root / "data")).results / "by_campaign.parquet")
    assert set(by_campaign["campaign"]) == {"buyers", "browsers"}
    for row in by_campaign.itertuples():
        half_width = (row.uplift_high - row.uplift_low) / 2
        assert 0 < half_width < 0.15
        assert abs(row.uplift - row.true_uplift) < 2 * half_width  # ~4 standard errors: a bug, not bad luck
    meta = _meta(first, "campaign_results")
    assert meta["sends_measured"] > 0 and meta["sends_waiting_for_outcomes"] == 0


def test_uplift_model_is_registered_and_then_ranks_the_audiences(shop):
    root, tracking, run, first, config = shop
    meta = _meta(first, "campaign_uplift_model")
    assert meta["registered_version"] == 1 and "champion" in meta["aliases"]
    assert "uplift" in meta["qini"] and "propensity" in meta["qini"]
    assert all(f"| {m} " in meta["true_incremental_conversions_at_budget"] for m in ("uplift", "propensity", "oracle"))
    assert str(registry.champion_version(tracking.client(), MODEL_NAME).version) == "1"
    store = CampaignStore(DataLayout(root / "data"))
    before = store.read_lists()
    again = run(["campaign_audiences", "campaign_lists"])
    assert again.success and checks_by_name(again)["campaign_lists_respect_rules"]
    assert _meta(again, "campaign_audiences")["ranking"].startswith(f"uplift x order value ({MODEL_NAME} v1")
    audiences = read_frame(store.audiences_path)
    assert audiences.loc[audiences["eligible"], "uplift_score"].notna().all()
    after = store.read_lists()
    both = before.merge(after, on=["campaign", "user_id"], suffixes=("_before", "_after"))
    assert len(both) > 0 and (both["group_before"] == both["group_after"]).all()  # reruns agree on groups
    for campaign, part in after.groupby("campaign"):
        assert (part["group"].to_numpy() == assign_group(campaign, part["user_id"], 0.5)).all()


def test_a_malformed_campaign_file_fails_naming_file_and_field(shop, tmp_path):
    _, _, run, _, _ = shop
    broken = _folder(tmp_path, broken=True)
    result = run(["campaign_specs"], run_config={"resources": {"campaigns": {"config": {"specs_dir": str(broken)}}}},
                 raise_on_error=False)
    assert not result.success
    message = str(result.failure_data_for_node("campaign_specs").error)
    assert "broken/browsers.yaml: audience.rule" in message and "ordrs" in message
    assert "broken/browsers.yaml: control_share" in message
    assert "buyers.yaml" not in message


def test_a_later_uplift_version_is_judged_by_its_promotion_job(shop):
    """v2 learns from the same send dates as the champion: both rank the same fresh later sends. The same model
    cannot beat itself by the 2 % margin; with the margin at zero it may take over."""
    _, tracking, run, first, _ = shop
    assert checks_by_name(first)["registered_version_loads_and_predicts"]
    retrained = run(["campaign_uplift_model"])
    assert retrained.success and checks_by_name(retrained)["registered_version_loads_and_predicts"]
    assert _meta(retrained, "campaign_uplift_model")["registered_version"] == 2
    client = tracking.client()
    assert promotion.versions_to_judge(client, MODEL_NAME) == ["2"]
    judged = _meta(run(["campaign_uplift_promotion"]), "campaign_uplift_promotion")
    assert judged["decision"] == "refused" and "qini" in judged["comparison"], judged["reason"]
    assert str(registry.champion_version(client, MODEL_NAME).version) == "1"
    tags = client.get_model_version(MODEL_NAME, "2").tags
    assert tags[promotion.TAG_DECISION] == "refused" and float(tags["promotion_qini"]) == pytest.approx(
        float(tags["promotion_champion_qini"]))
    again = run(["campaign_uplift_promotion"],
                run_config={"ops": {"campaign_uplift_promotion": {"config": {"version": "2", "margin": 0.0}}}})
    assert _meta(again, "campaign_uplift_promotion")["decision"] == "promoted"
    assert str(registry.champion_version(client, MODEL_NAME).version) == "2"
