"""What a day costs: one new day against a full rebuild, and a warm weekly retrain against a full search.

    .venv/bin/python benchmarks/daily.py demand --data-dir DIR      # demand_model: full search vs warm retrain
    make bench-daily                                                # every part, Online Retail + 10M-event shop

`demand`: on a data directory where `demand_training_set` has been materialized (e.g. by `make run`), it
replays a weekly retrain. A week earlier (the panel cut 7 days short) Optuna searches with the deployment's
budget: that is the record a warm retrain reuses. Today it (a) searches again and fits, and (b) only refits
with last week's choices. Both are then scored by the same rolling-origin backtest on today's data (the
windows after the tuning folds). Prints wall seconds, peak memory and backtest WAPE of each.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _search(panel, basis, trials: int, timeout: int):
    from ecomarket_assets.forecasting import training as tr
    from ecomarket_assets.forecasting.features import PanelSums

    sums = PanelSums(panel)
    train = tr.make_training_set(panel, basis, cumulative=sums)
    folds = [tr.fold_data(panel, o, basis, sums) for o in tr.plan_folds(len(panel.days)).tuning_origins]
    return tr.tune(train, folds, n_trials=trials, timeout=timeout), train


def demand(data_dir: Path, trials: int, timeout: int) -> list[dict]:
    from ecomarket_assets.forecasting import backtest as bt
    from ecomarket_assets.forecasting import training as tr
    from ecomarket_assets.forecasting.features import PanelSums
    from ecomarket_assets.forecasting.store import ForecastStore
    from ecomarket_assets.storage import DataLayout

    store = ForecastStore(DataLayout(data_dir))
    panel, basis = store.read_panel(), store.read_basis()
    print(f"panel: {len(panel.product_ids):,} products x {len(panel.days)} days "
          f"({panel.days[0].date()} .. {panel.days[-1].date()})", flush=True)
    start = time.perf_counter()
    last_week, _ = _search(panel.truncated(len(panel.days) - 8), basis, trials, timeout)
    print(f"last week's search: {time.perf_counter() - start:.0f} s, {len(last_week.trials)} trials, "
          f"rounds {last_week.rounds}, CV WAPE {last_week.best_wape:.4f}", flush=True)
    rows = []
    for name, tuning_of in (("full search + fit", None), ("warm retrain (last week's choices)", last_week)):
        start = time.perf_counter()
        sums = PanelSums(panel)
        if tuning_of is None:
            tuning, train = _search(panel, basis, trials, timeout)
        else:
            tuning, train = tuning_of, tr.make_training_set(panel, basis, cumulative=sums)
        tr.fit_final(train, tuning, basis, origin=len(panel.days) - 1 - 28)
        seconds = time.perf_counter() - start
        result = bt.run_backtest(panel, train, tr.plan_folds(len(panel.days)), tuning, basis, cumulative=sums)
        model = result.table.set_index("method").loc[bt.MODEL]
        rows.append({"retrain": name, "wall_s": round(seconds), "trials": len(tuning.trials),
                     "rounds": tuning.rounds, "backtest_wape_day": round(float(model["wape_day"]), 4),
                     "backtest_wape_week": round(float(model.get("wape_week", float("nan"))), 4),
                     "coverage_p10_p90_day": round(float(model["coverage_day"]), 3),
                     "peak_gb": round(_peak_gb(), 2)})
        print(rows[-1], flush=True)
    full, warm = (r["backtest_wape_day"] for r in rows)
    print(f"warm retrain backtest WAPE vs full search: {100 * (warm / full - 1):+.2f} % (relative)")
    _table(rows)
    return rows


def _table(rows: list[dict]) -> None:
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["demand"])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--timeout", type=int, default=240)
    args = parser.parse_args()
    if args.part == "demand":
        demand(args.data_dir, args.trials, args.timeout)


if __name__ == "__main__":
    main()
