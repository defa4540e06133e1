"""A simulated month of campaigns: measured uplift against the simulator's true uplift, and uplift targeting
against propensity and random targeting at the same budget.

Runs the real Dagster assets in fresh processes (MLflow in the working folder): the simulated shop
(default 20,000 users) through profiles and recommendations, then campaign_specs -> campaign_audiences
(ranked by propensity x order value, as a shop without an uplift model would) -> campaign_lists (4 weeks
from the day after the last event) -> campaign_outcomes (simulated from the true response) ->
campaign_results -> campaign_uplift_model (trained on the first half of send dates, scored on the rest).

    .venv/bin/python benchmarks/campaign_eval.py [--users 20000] [--data-dir DIR --skip-upstream]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stages import REPO_ROOT, run_stage, use_source  # noqa: E402

UPSTREAM = [("ingest", ["catalog", "customers", "reviews"], False),
            ("ingest", ["raw_events", "user_daily_activity"], True),
            ("profiles", ["user_features", "user_profiles", "user_segments", "product_embeddings"], False),
            ("recommender", ["rec_candidates", "recommender_model", "recommendations"], False)]
CAMPAIGNS = ["campaign_specs", "campaign_audiences", "campaign_lists", "campaign_outcomes", "campaign_results"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--data-dir", type=Path, default=None, help="working folder (data/ and mlflow.db inside)")
    parser.add_argument("--skip-upstream", action="store_true", help="reuse profiles and recommendations in --data-dir")
    parser.add_argument("--skip-ingest", action="store_true", help="reuse the ingested shop in --data-dir")
    args = parser.parse_args()
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="ecomarket-campaign-bench-"))
    use_source("simulator", Path(), root)
    os.environ["ECOMARKET_SIM_USERS"] = str(args.users)
    os.environ["ECOMARKET_CAMPAIGNS_DIR"] = str(REPO_ROOT / "campaigns")
    print(f"simulated shop: {args.users} users; working folder: {root}")
    upstream = [] if args.skip_upstream else UPSTREAM[2:] if args.skip_ingest else UPSTREAM
    stages = [run_stage(n, sel, partitioned=p) for n, sel, p in upstream]
    ranking = {"ops": {"campaign_audiences": {"config": {"ranking": "propensity"}}}}
    stages += [run_stage("campaigns", CAMPAIGNS, run_config=ranking), run_stage("uplift", ["campaign_uplift_model"])]
    _report(root / "data", stages)


def _report(data_dir: Path, stages: list[dict]) -> None:
    import pandas as pd

    from ecomarket_assets.campaigns.store import CampaignStore
    from ecomarket_assets.storage import DataLayout, read_frame

    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    store = CampaignStore(DataLayout(data_dir))
    lists = store.read_lists()
    funnel = read_frame(store.funnel_path)
    print(f"\nlists: {len(lists)} sends ({(lists['group'] == 'treatment').sum()} treatment, "
          f"{(lists['group'] == 'control').sum()} control) to {lists['user_id'].nunique()} people, "
          f"{lists['send_date'].min()} .. {lists['send_date'].max()}")
    print(funnel.groupby("campaign")[["pool", "already_in_campaign", "frequency_cap", "over_budget", "recipients",
                                       "cost", "expected_value"]].sum().round(2).to_string())
    columns = ["campaign", "treatment", "control", "conversion_treatment", "conversion_control", "uplift", "uplift_low",
               "uplift_high", "true_uplift", "true_within_ci", "revenue_uplift", "revenue_uplift_low",
               "revenue_uplift_high", "true_revenue_uplift", "true_revenue_within_ci", "incremental_revenue"]
    by_campaign = read_frame(store.results / "by_campaign.parquet")
    print("\nuplift per campaign (all send dates; 95% Welch intervals):\n" + by_campaign[columns].round(4).to_string(index=False))
    by_send = read_frame(store.results / "by_send.parquet")
    measured = by_send["true_within_ci"].dropna()
    print(f"per send: true conversion uplift inside the interval for {int(measured.sum())}/{len(measured)} sends; "
          f"revenue {int(by_send['true_revenue_within_ci'].dropna().sum())}/{len(by_send['true_revenue_within_ci'].dropna())}")
    qini = read_frame(store.uplift / "qini_summary.parquet")
    print("\nQini on held-out sends (observed outcomes):\n" + qini.round(3).to_string(index=False))
    budget = read_frame(store.uplift / "true_targeting_at_budget.parquet")
    print("\ntrue incremental conversions at each held-out send's budget, chosen from its eligible pool:")
    print(budget.round(2).to_string(index=False))
    totals = budget[["uplift", "propensity", "random", "as_planned", "oracle"]].sum()
    print("totals: " + ", ".join(f"{k} {v:.1f}" for k, v in totals.items()))
    print(f"uplift targeting vs propensity targeting: {totals['uplift'] / totals['propensity'] - 1:+.1%}")
    print("\nstage                                              wall s   peak GB")
    for stage in stages:
        print(f"{stage['stage'] + ' ' + ','.join(stage['meta']) :<50}{stage['seconds']:>7.1f}{stage['peak_gb']:>10.2f}")


if __name__ == "__main__":
    main()
