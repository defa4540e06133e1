"""Contracts on the profile assets (blocking) and model-quality alarms (WARN)."""

import dagster as dg
import numpy as np
import pandas as pd

from ecomarket_assets.defs.profiles.assets import (
    user_daily_activity,
    user_features,
    user_profiles,
    user_segments,
)
from ecomarket_assets.partitions import daily_partitions
from ecomarket_assets.profiles import activity as act
from ecomarket_assets.resources import DataDirResource
from ecomarket_assets.storage import read_frame

MIN_CHURN_AUC = 0.65


@dg.asset_check(asset=user_daily_activity, blocking=True, partitions_def=daily_partitions,
                description="Views, carts and purchased units per day equal those of the day's non-guest raw events.")
def activity_reconciles_with_events(context: dg.AssetCheckExecutionContext, data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    mismatched = []
    for day in context.partition_keys:
        events = read_frame(layout.raw_events_day(day), columns=["user_id", "event_type", "quantity"])
        events = events[events["user_id"].notna()]
        expected = {"views": int((events["event_type"] == "view").sum()), "carts": int((events["event_type"] == "cart").sum()),
                    "purchase_units": int(events.loc[events["event_type"] == "purchase", "quantity"].sum())}
        stored = act.read_days(layout, [day]).interactions[list(expected)].sum().astype(int).to_dict()
        if stored != expected:
            mismatched.append(f"{day}: {stored} != {expected}")
    return dg.AssetCheckResult(passed=not mismatched, metadata={"days_checked": len(context.partition_keys),
                                                               "mismatches": "; ".join(mismatched[:5]) or "none"})


@dg.asset_check(asset=user_features, blocking=True, description="One row per user; rates in [0, 1]; affinity vectors sum to 1.")
def user_features_valid(data_dir: DataDirResource) -> dg.AssetCheckResult:
    features = read_frame(data_dir.layout().table("user_features"))
    rates = features[["cart_abandonment_rate", "return_rate"]]
    affinity = features.filter(like="affinity_")
    sums = affinity.sum(axis=1)[affinity.notna().any(axis=1)]
    problems = {
        "duplicate_users": int(features["user_id"].duplicated().sum()),
        "rates_out_of_range": int(((rates < 0) | (rates > 1)).sum().sum()),
        "affinity_not_normalised": int((~np.isclose(sums, 1.0)).sum()),
    }
    return dg.AssetCheckResult(passed=not any(problems.values()), metadata={**problems, "rows": len(features)})


@dg.asset_check(asset=user_profiles, blocking=True,
                description="Churn probability in [0, 1], predictions non-negative, RFM scores 1..5 for buyers.")
def user_profiles_valid(data_dir: DataDirResource) -> dg.AssetCheckResult:
    profiles = read_frame(data_dir.layout().table("user_profiles"))
    scores = profiles[["r_score", "f_score", "m_score"]]
    buyers = profiles["orders"] > 0
    problems = {
        "churn_probability_out_of_range": int((~profiles["churn_probability"].between(0, 1)).sum()),
        "negative_predictions": int(((profiles["predicted_purchases"] < 0) | (profiles["predicted_clv"] < 0)).sum()),
        "buyers_without_rfm": int(scores[buyers].isna().any(axis=1).sum()),
        "rfm_out_of_range": int(((scores[buyers] < 1) | (scores[buyers] > 5)).sum().sum()),
    }
    return dg.AssetCheckResult(passed=not any(problems.values()), metadata={**problems, "rows": len(profiles)})


@dg.asset_check(asset=user_profiles, blocking=False,
                description=f"Alarm when the 90-day backtest churn AUC falls below {MIN_CHURN_AUC}.")
def churn_model_quality(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(user_profiles.key)
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    auc = meta.get("backtest_churn_auc")
    if auc is None:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"note": "no backtest (not enough history)"})
    return dg.AssetCheckResult(passed=auc.value >= MIN_CHURN_AUC, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"churn_auc": auc.value, "threshold": MIN_CHURN_AUC})


@dg.asset_check(asset=user_segments, blocking=True, description="Every profiled user is in exactly one named segment.")
def every_user_segmented(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    users = read_frame(layout.table("user_profiles"), columns=["user_id"])["user_id"]
    assigned = read_frame(layout.table("user_segments"))
    missing = int((~users.isin(assigned["user_id"])).sum())
    duplicated = int(assigned["user_id"].duplicated().sum())
    unnamed = int(assigned["segment_name"].isna().sum())
    sizes = assigned["segment_name"].value_counts(normalize=True)
    return dg.AssetCheckResult(passed=missing == duplicated == unnamed == 0,
                               metadata={"missing": missing, "duplicated": duplicated, "unnamed": unnamed,
                                         "smallest_segment_share": float(sizes.min()) if len(sizes) else 0.0,
                                         "sizes": dg.MetadataValue.md(pd.DataFrame(sizes).to_markdown())})
