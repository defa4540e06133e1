"""Recommender evaluation benchmark: the real assets, end to end, on Online Retail or the simulator.

    .venv/bin/python benchmarks/recommender_eval.py                       # Online Retail, ten months
    .venv/bin/python benchmarks/recommender_eval.py --source simulator    # default demo shop
    options: --path FILE  --data-dir DIR (default: a temporary folder; an already ingested DIR is reused
             with --skip-ingest)  --per-generator N

Stages run in fresh processes so each one's peak memory is its own:
1. ingest: catalog, customers, reviews; raw_events + user_daily_activity over every day; product_embeddings;
2. rec_candidates (training cutoffs, the hold-out = last 4 weeks, serving as of the day after the last event);
3. recommender_model (lambdarank, MLflow, registry); 4. rec_evaluation; 5. recommendations.
Prints the evaluation table (all hold-out buyers and cold ones), the lift over the best baseline and the
wall time / peak memory of each stage. Not a test.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from stages import ONLINE_RETAIL, run_stage, use_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="online_retail", choices=["online_retail", "simulator"])
    parser.add_argument("--path", type=Path, default=ONLINE_RETAIL)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--per-generator", type=int, default=100)
    args = parser.parse_args()
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="ecomarket-rec-bench-"))
    use_source(args.source, args.path, root)
    print(f"source: {args.source} {args.path if args.source != 'simulator' else ''}\nworking folder: {root}")
    stages = []
    if not args.skip_ingest:
        stages += [run_stage("ingest", ["catalog", "customers", "reviews"]),
                   run_stage("ingest", ["raw_events", "user_daily_activity"], partitioned=True),
                   run_stage("ingest", ["product_embeddings"])]
    candidates_config = {"ops": {"rec_candidates": {"config": {"per_generator": args.per_generator}}}}
    stages += [run_stage("candidates", ["rec_candidates"], run_config=candidates_config),
               run_stage("train", ["recommender_model"]),
               run_stage("evaluate", ["rec_evaluation"]),
               run_stage("serve", ["recommendations"])]
    _report(root / "data", stages)


def _report(data_dir: Path, stages: list[dict]) -> None:
    import pandas as pd

    from ecomarket_assets.recommender.evaluation import lift_over_best_baseline
    from ecomarket_assets.recommender.store import RecStore
    from ecomarket_assets.storage import DataLayout, read_frame

    pd.set_option("display.width", 220)
    store = RecStore(DataLayout(data_dir))
    plan, saved = store.read_plan()
    print("\ncutoffs:\n" + plan.describe().to_string(index=False))
    print("\ncandidate sets:\n" + pd.DataFrame(saved["sets"]).round(4).to_string(index=False))
    meta = {name: m for stage in stages for name, m in stage["meta"].items()}
    model = meta.get("recommender_model", {})
    print(f"\nranker: {model.get('boosting_rounds')} rounds, cold-user policy {model.get('cold_user_policy')}, "
          f"{model.get('train_rows')} training rows; EASE l2 {saved['ease_l2']}")
    table = read_frame(store.evaluation / "metrics.parquet")
    print(f"\nhold-out {plan.holdout} .. {plan.serving - pd.Timedelta(days=1)} (the last {plan.window_days} days):")
    print(table.round(4).to_string(index=False))
    for method in ("ranker", "ranker_served"):
        for group in ("all", "cold"):
            best, lift = lift_over_best_baseline(table, method=method, group=group)
            print(f"{method} NDCG@10 vs best baseline ({best}), {group} users: {lift:+.1%}")
    truth = store.evaluation / "against_truth.parquet"
    if truth.exists():
        print("\nagainst the simulator's true preferences:\n" + read_frame(truth).round(4).to_string(index=False))
    recs = read_frame(store.recommendations_path)
    print(f"\nrecommendations: {recs['user_id'].nunique()} users x up to {recs['rank'].max()} "
          f"as of {recs['as_of'].iloc[0]} -> {store.recommendations_path}")
    print("\nstage                 wall s   peak GB")
    for stage in stages:
        print(f"{stage['stage'] + ' ' + ','.join(stage['meta']) :<40}{stage['seconds']:>7.1f}{stage['peak_gb']:>10.2f}")


if __name__ == "__main__":
    main()
