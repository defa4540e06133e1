"""The real Online Retail file through profiles and the recommender to campaign lists (slow: `make test-slow`).

The file has no consent data: every campaign asset must succeed with an empty list that says why. With a
consent file for some customers (one revoked later), the lists are non-empty and every file marketing
receives names only customers who consented to the row's channel.
"""

import dagster as dg
import pandas as pd
import pytest

from ecomarket_assets.campaigns.audience import CONSENT_COLUMN
from ecomarket_assets.campaigns.store import CampaignStore
from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.resources import CampaignsResource, DataDirResource, ShopSourceResource
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets.text.model import EmbeddingModelResource
from ecomarket_assets_tests.test_campaign_assets import CAMPAIGNS, EVERYTHING, UPSTREAM
from ecomarket_assets_tests.test_ingestion_assets import checks_by_name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # about 5 min idle, 10 min on a shared machine

PROFILE_CHAIN = ["customers", "user_features", "user_profiles", "user_segments"]


def _consent_file(customers: pd.DataFrame) -> pd.DataFrame:
    """Every third customer opts in to email (every sixth also to SMS); a few of them revoke email later."""
    chosen = customers["user_id"].sort_values().iloc[::3].reset_index(drop=True)
    rows = pd.DataFrame({"user_id": chosen, "email_opt_in": "yes", "sms_opt_in": ["yes" if i % 2 else "no" for i in range(len(chosen))],
                         "push_opt_in": "", "updated_at": "2011-01-05T10:00:00Z"})
    revoked = rows.iloc[::10].assign(email_opt_in="no", sms_opt_in="no", updated_at="2011-06-01T10:00:00Z")
    return pd.concat([rows, revoked], ignore_index=True)


def _exported_rows(store: CampaignStore) -> pd.DataFrame:
    trees = (store.exports, store.control)  # the files marketing imports and the control group's
    files = sorted(path for tree in trees for path in tree.rglob("*.csv"))
    frames = [pd.read_csv(path, dtype={"user_id": str}) for path in files]
    frames += [read_frame(path) for tree in trees for path in sorted(tree.rglob("*.parquet"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["user_id", "channel"])


def test_online_retail_lists_are_empty_without_consent_and_hold_only_consenting_customers_with_it(
        online_retail_file, tmp_path):
    tracking = MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "artifacts"))
    source = ShopSourceResource(kind="online_retail", path=str(online_retail_file))
    resources = {"data_dir": DataDirResource(path=str(tmp_path / "data")), "source": source,
                 "compute": ComputeResource(), "embedding_model": EmbeddingModelResource(), "mlflow_tracking": tracking,
                 "campaigns": CampaignsResource()}
    instance = dg.DagsterInstance.ephemeral()
    layout = DataLayout(tmp_path / "data")

    def run(selection, **kw):
        result = dg.materialize(EVERYTHING, resources=resources, selection=selection, instance=instance, **kw)
        assert result.success
        return result

    run(["catalog", "customers", "reviews"])
    days = [d for d in source.staged(layout).days() if d != "undated"]
    run(["raw_events", "user_daily_activity"],
        tags=partition_range_tags(days[0], days[-1]))
    run([a.key.to_user_string() for a in UPSTREAM if a.key.to_user_string() != "user_daily_activity"])
    campaigns = [a.key.to_user_string() for a in CAMPAIGNS]

    empty = run(campaigns)
    store = CampaignStore(layout)
    assert len(store.read_lists()) == 0
    lists_meta = {k: v.value for k, v in empty.asset_materializations_for_node("campaign_lists")[0].metadata.items()}
    assert "consent" in str(lists_meta).lower()  # the metadata says why the list is empty
    assert not any(store.exports.rglob("*.csv"))
    warnings = {e.check_name: e for e in empty.get_asset_check_evaluations() if not e.passed}
    assert warnings and all(e.severity == dg.AssetCheckSeverity.WARN for e in warnings.values())

    consent = _consent_file(read_frame(layout.table("customers")))
    (layout.root / "consent").mkdir(parents=True, exist_ok=True)
    consent.to_csv(layout.root / "consent" / "newsletter_export.csv", index=False)
    result = run(PROFILE_CHAIN + campaigns)
    assert checks_by_name(result)["campaign_lists_respect_rules"]

    lists = store.read_lists()
    assert len(lists) > 0
    latest = consent.sort_values("updated_at").drop_duplicates("user_id", keep="last").set_index("user_id")
    for frame in (lists, _exported_rows(store)):
        assert len(frame) > 0
        flags = latest.reindex(frame["user_id"])
        opted = [flags.iloc[i][CONSENT_COLUMN[channel]] == "yes" for i, channel in enumerate(frame["channel"])]
        assert all(opted)  # everyone named consented to the row's channel, in their latest row
    revoked = set(consent.loc[consent["updated_at"] > "2011-02", "user_id"])
    assert revoked and not set(lists["user_id"]) & revoked  # revoked later: in no list
