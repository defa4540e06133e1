"""The rules campaign lists may never break (blocking), and measured uplift against the simulator's truth."""

import dagster as dg
import pandas as pd

from ecomarket_assets.campaigns.guards import rule_violations
from ecomarket_assets.campaigns.store import CampaignStore
from ecomarket_assets.defs.campaigns.assets import campaign_lists, campaign_results
from ecomarket_assets.resources import DataDirResource
from ecomarket_assets.storage import read_frame


@dg.asset_check(asset=campaign_lists, blocking=True,
                description="Checked on the written lists, independently of the planner: every channel consented, "
                "nobody on a suppression list, nobody twice in a campaign, nobody over a frequency cap across "
                "campaigns, every send within its budget, groups equal to the stable hash, send times in the window.")
def campaign_lists_respect_rules(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    store = CampaignStore(layout)
    suppressed, _ = store.suppressed_users()
    violations = rule_violations(store.read_lists(), store.read_specs(), read_frame(layout.table("customers")), suppressed)
    return dg.AssetCheckResult(passed=not any(violations.values()), metadata=violations)


@dg.asset_check(asset=campaign_results, blocking=False,
                description="On the simulator: each campaign's true uplift lies inside its measured 95% interval "
                "(WARN otherwise; with several campaigns one miss in twenty is expected).")
def campaign_uplift_matches_truth(data_dir: DataDirResource) -> dg.AssetCheckResult:
    by_campaign = read_frame(CampaignStore(data_dir.layout()).results / "by_campaign.parquet")
    if "true_within_ci" not in by_campaign:
        return dg.AssetCheckResult(passed=True, metadata={"note": "no ground truth for this source"})
    missed = by_campaign.loc[by_campaign["true_within_ci"].eq(False), "campaign"].tolist()
    return dg.AssetCheckResult(passed=not missed, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"campaigns": len(by_campaign), "missed": ", ".join(missed) or "none",
                                         "table": dg.MetadataValue.md(pd.DataFrame(by_campaign[["campaign", "uplift",
                                         "uplift_low", "uplift_high", "true_uplift"]]).round(4).to_markdown(index=False))})
