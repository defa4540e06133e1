"""The rules campaign lists and the files marketing gets may never break (blocking), empty audiences and lists
(WARN), and measured uplift against the true uplift where the source knows it."""

import dagster as dg
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.campaigns import explain
from ecomarket_assets.campaigns.consent import current_consent
from ecomarket_assets.campaigns.guards import export_violations, rule_violations
from ecomarket_assets.campaigns.inputs import audience_users
from ecomarket_assets.campaigns.store import CampaignStore
from ecomarket_assets.defs.campaigns.assets import (
    campaign_audiences,
    campaign_lists,
    campaign_results,
)
from ecomarket_assets.resources import DataDirResource
from ecomarket_assets.storage import read_frame


@dg.asset_check(asset=campaign_lists, blocking=True,
                description="Checked on the written lists, independently of the planner: every channel consented "
                "(newest customers table), nobody on a suppression list, nobody twice in a campaign, nobody over a "
                "frequency cap across campaigns, every send within its budget, groups equal to the stable hash, send "
                "times in the window.")
def campaign_lists_respect_rules(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    store = CampaignStore(layout)
    violations = rule_violations(store.read_lists(), store.read_specs(), current_consent(layout))
    return dg.AssetCheckResult(passed=not any(violations.values()), metadata=violations)


@dg.asset_check(asset=campaign_lists, blocking=True,
                description="Checked on the files marketing actually gets (every CSV and Parquet under "
                "campaign_lists/exports/, read as text like a spreadsheet would) and on the control group's files "
                "(campaign_lists/control/): exactly one CSV and one Parquet per send and group and no other file, "
                "treatment rows only in the files marketing imports and control rows only in the control files, the "
                "(campaign, send_date, user_id) rows equal the lists table, nobody suppressed, everyone consented to "
                "the row's channel (newest customers table), no CSV text cell starting with = + - @ tab or carriage "
                "return. campaign_lists runs the same validation before swapping the files in.")
def campaign_exports_match_lists(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    store = CampaignStore(layout)
    violations, counts = export_violations(store.exports, store.read_lists(), current_consent(layout), store.control)
    return dg.AssetCheckResult(passed=not any(violations.values()), severity=dg.AssetCheckSeverity.ERROR,
                               metadata={**counts, **violations, "exports": dg.MetadataValue.path(str(store.exports)),
                                         "control_exports": dg.MetadataValue.path(str(store.control))})


def _empty_result(reasons: dict[str, str], why: str | None, counts: dict[str, int], what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not reasons and why is None, severity=dg.AssetCheckSeverity.WARN,
                               metadata={**counts, "why_empty": why or "not empty",
                                         "empty_campaigns": md.table(reasons, "campaign", what)})


@dg.asset_check(asset=campaign_audiences, blocking=False,
                description="WARN when an enabled campaign has nobody eligible (the metadata says why: no consent, "
                "suppressed, no product, or a rule that matches nobody).")
def campaign_audiences_not_empty(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    store = CampaignStore(layout)
    specs = [s for s in store.read_specs() if s.enabled]
    audiences = read_frame(store.audiences_path)
    funnel = explain.audience_funnel(audiences, [s.name for s in specs])
    why = explain.audience_empty_reason(funnel, specs, audience_users(layout))
    return _empty_result(explain.campaign_audience_reasons(funnel, specs), why,
                         {"campaigns": len(specs), "eligible": int(audiences["eligible"].sum())},
                         "why nobody is eligible")


@dg.asset_check(asset=campaign_lists, blocking=False,
                description="WARN when an enabled campaign has no recipient over the horizon (the metadata says why, "
                "from the audience and per-send funnels).")
def campaign_lists_not_empty(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    store = CampaignStore(layout)
    specs = [s for s in store.read_specs() if s.enabled]
    lists, send_funnel = store.read_lists(), read_frame(store.funnel_path)
    funnel = explain.audience_funnel(read_frame(store.audiences_path), [s.name for s in specs])
    why = explain.lists_empty_reason(lists, send_funnel, funnel, specs, audience_users(layout))
    return _empty_result(explain.campaign_list_reasons(lists, send_funnel, funnel, specs), why,
                         {"campaigns": len(specs), "recipients": len(lists)}, "why nobody is on its list")


@dg.asset_check(asset=campaign_results, blocking=False,
                description="Where the source knows it (the built-in simulated shop): each campaign's true uplift "
                "lies inside its measured 95% interval "
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
