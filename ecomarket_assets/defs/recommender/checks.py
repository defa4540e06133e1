"""Contracts on the recommender outputs (blocking) and a quality alarm on the evaluation (WARN)."""

import dagster as dg
import numpy as np
import pandas as pd

from ecomarket_assets.defs.recommender.assets import rec_candidates, rec_evaluation, recommendations
from ecomarket_assets.recommender.evaluation import lift_over_best_baseline
from ecomarket_assets.recommender.store import RecStore
from ecomarket_assets.resources import DataDirResource
from ecomarket_assets.storage import read_frame


@dg.asset_check(asset=rec_candidates, blocking=True,
                description="Every labelled set's candidates come from history before its cutoff: no candidate "
                "row's user-product history is dated on or after the cutoff, and every serving user has candidates.")
def rec_candidates_time_split(data_dir: DataDirResource) -> dg.AssetCheckResult:
    store = RecStore(data_dir.layout())
    plan, saved = store.read_plan()
    negative_ages = 0
    for name in plan.sets():
        frame = store.read_candidates(name)
        ages = frame[["ui_days_since_seen", "ui_days_since_bought", "item_last_seen_days", "user_days_since_seen"]]
        negative_ages += int((ages < 0).sum().sum())
    serving = store.read_candidates("serving")
    sets = pd.DataFrame(saved["sets"])
    missing = int(sets.loc[sets["set"] == "serving", "users"].iloc[0]) - int(serving["user_id"].nunique())
    return dg.AssetCheckResult(passed=negative_ages == 0 and missing == 0,
                               metadata={"rows_with_future_history": negative_ages, "serving_users_without_candidates": missing})


@dg.asset_check(asset=recommendations, blocking=True,
                description="At most k rows per user, ranks 1..n without gaps, no product twice for a user, every "
                "product in the catalog, every reason non-empty and its named product real.")
def recommendations_are_well_formed(data_dir: DataDirResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    recs = read_frame(RecStore(layout).recommendations_path)
    catalog_ids = set(read_frame(layout.table("catalog"), columns=["product_id"])["product_id"])
    ranks_ok = recs.groupby("user_id")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1))).all()
    duplicates = int(recs.duplicated(["user_id", "product_id"]).sum())
    unknown = int((~recs["product_id"].isin(catalog_ids)).sum())
    named = recs["reason_product_id"].dropna()
    bad_reasons = int((recs["reason"].fillna("") == "").sum() + (~named.isin(catalog_ids)).sum())
    return dg.AssetCheckResult(
        passed=bool(ranks_ok) and duplicates == 0 and unknown == 0 and bad_reasons == 0,
        metadata={"ranks_contiguous": bool(ranks_ok), "duplicate_user_products": duplicates,
                  "unknown_products": unknown, "bad_reasons": bad_reasons,
                  "max_per_user": int(recs.groupby("user_id").size().max()) if len(recs) else 0},
    )


@dg.asset_check(asset=rec_evaluation, blocking=False,
                description="WARN when the ranker's NDCG@10 on the hold-out is not above the best baseline's.")
def ranker_beats_baselines(data_dir: DataDirResource) -> dg.AssetCheckResult:
    table = read_frame(RecStore(data_dir.layout()).evaluation / "metrics.parquet")
    best, lift = lift_over_best_baseline(table)
    return dg.AssetCheckResult(passed=bool(np.isfinite(lift) and lift > 0), severity=dg.AssetCheckSeverity.WARN,
                               metadata={"best_baseline": best, "ndcg@10_lift": float(lift)})
