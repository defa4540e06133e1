"""Demand backtest benchmark: the real assets, end to end, on Online Retail or the simulator.

    .venv/bin/python benchmarks/forecast_backtest.py                       # Online Retail, ten months
    .venv/bin/python benchmarks/forecast_backtest.py --source simulator    # default demo shop
    options: --path FILE  --trials N  --data-dir DIR (default: a temporary folder)

Stages run in fresh processes so each one's peak memory is its own:
1. ingest (catalog, customers, reviews, raw_events over every day, product_embeddings, demand_training_set);
2. train: `demand_model` (Optuna on the tuning folds, final fit, MLflow logging and registration);
3. backtest: `demand_backtest` over the last two 28-day windows (the last 8 weeks), model vs baselines.
Prints the backtest table, per-window results and wall time / peak memory of each stage. Not a test.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from stages import ONLINE_RETAIL, run_stage, use_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="online_retail", choices=["online_retail", "simulator"])
    parser.add_argument("--path", type=Path, default=ONLINE_RETAIL)
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="ecomarket-forecast-bench-"))
    use_source(args.source, args.path, root)
    print(f"source: {args.source} {os.environ['ECOMARKET_SOURCE_PATH']}\nworking folder: {root}")
    stages = [
        run_stage("ingest", ["catalog", "customers", "reviews"]),
        run_stage("ingest", ["raw_events"], partitioned=True),
        run_stage("ingest", ["product_embeddings", "demand_training_set"]),
        run_stage("train", ["demand_model"],
                  run_config={"resources": {"forecast_training": {"config": {"n_trials": args.trials}}}}),
        run_stage("backtest", ["demand_backtest"]),
    ]
    _report(root / "data", stages)


def _report(data_dir: Path, stages: list[dict]) -> None:
    import pandas as pd

    from ecomarket_assets.forecasting.store import ForecastStore
    from ecomarket_assets.storage import DataLayout, read_frame

    pd.set_option("display.width", 200)
    store = ForecastStore(DataLayout(data_dir))
    training = stages[2]["meta"]["demand_training_set"]
    model = stages[3]["meta"]["demand_model"]
    backtest = stages[4]["meta"]["demand_backtest"]
    print(f"\npanel: {training['products']} products x {training['days']} days "
          f"({training['first_day']} .. {training['last_day']}), {training['feature_rows']:,} training rows, "
          f"zero-sales share {training['zero_sales_share']:.1%}")
    tuning = store.read_tuning()
    print("windows: " + "; ".join(f"{w['role']} {w['forecast_from']}..{w['forecast_to']}" for w in tuning["plan"]))
    print(f"Optuna: {model['optuna_trials']} trials, best tuning-fold WAPE {model['cv_wape']:.4f}; "
          f"params {tuning['params']} rounds {tuning['rounds']}")
    table = read_frame(store.backtest / "metrics.parquet")
    print("\nbacktest over the last 8 weeks (two 28-day windows, product-day and product-week):")
    print(table.round(4).to_string(index=False))
    model_row = table.set_index("method").loc["lightgbm"]
    ets = table.set_index("method").loc["auto_ets"]
    print(f"\nLightGBM WAPE {model_row['wape_day']:.4f}: {-model_row['wape_vs_seasonal_naive']:.1%} below seasonal "
          f"naive (aim >= 15%), {1 - model_row['wape_day'] / ets['wape_day']:.1%} below AutoETS (aim > 0); "
          f"P10-P90 coverage {model_row['coverage_day']:.1%} (aim 80% +- 5)")
    if "model_wape_vs_truth" in backtest:
        print(f"against the simulator's true demand rate: model WAPE {backtest['model_wape_vs_truth']:.4f}")
    print("\nstage                 wall s   peak GB")
    for stage in stages:
        print(f"{stage['stage'] + ' ' + ','.join(stage['meta']) :<22}{stage['seconds']:>7.1f}{stage['peak_gb']:>10.2f}")
    print(f"training detail: tuning {model['tuning_seconds']} s, final fit {model['final_fit_seconds']} s; "
          f"backtest retraining {backtest['train_seconds']} s of {backtest['wall_seconds']} s")


if __name__ == "__main__":
    main()
