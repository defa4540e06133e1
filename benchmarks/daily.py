"""What a day costs: one new day against a full rebuild, and a warm weekly retrain against a full search.

    make bench-daily                                                  # = daily.py all: every part below
    .venv/bin/python benchmarks/daily.py night [--work-dir DIR]       # Online Retail: graph, a night, a full night
    .venv/bin/python benchmarks/daily.py demand --data-dir DIR/data   # demand_model: full search vs warm retrain
    .venv/bin/python benchmarks/daily.py states [--events 1e7]        # each running state, simulated shop

`night`: `make run` through the day before the file's last (`run_all --through`, a per-asset time table), then
the last day as a night (`daily_ingest_job`'s partition, then `daily_refresh_job`), then the same night with
`full_rebuild` on the incremental assets; their outputs are compared (floats within 1e-9 relative).

`demand`: on a data directory where `demand_training_set` has been materialized (e.g. by `make run`), it
replays a weekly retrain. A week earlier (the panel cut 7 days short) Optuna searches with the deployment's
budget and product sample: that is the record a warm retrain reuses. Today it (a) searches on the product
sample (`--tuning-products`, the default of `ECOMARKET_FORECAST_TUNING_PRODUCTS`) and fits, (b) searches on
every product with the budget it had before the sample (240 s) and fits, and (c) retrains warm: last week's
choices, their rounds and calibration found again on today's folds (`training.warm_tuning`), then the fit.
All are then scored by the same rolling-origin backtest on today's data (the windows after the tuning folds).
Prints wall seconds, peak memory and backtest WAPE of each (`--variants` picks some).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
ONLINE_RETAIL = REPO_ROOT.parent / "shared" / "datasets" / "online_retail" / "online_retail_2010-12_to_2011-09.csv.gz"


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _search(panel, basis, trials: int, timeout: int, products: int, warm_params: dict | None = None):
    """Optuna on the product sample (as demand_model searches), or with `warm_params` its warm retrain."""
    from ecomarket_assets.forecasting import training as tr
    from ecomarket_assets.forecasting.features import PanelSums

    sums = PanelSums(panel)
    train = tr.make_training_set(panel, basis, cumulative=sums)
    folds = [tr.fold_data(panel, o, basis, sums) for o in tr.plan_folds(len(panel.days)).tuning_origins]
    sample, sample_folds = tr.tuning_sample(train, folds, products)
    if warm_params is not None:
        return tr.warm_tuning(sample, sample_folds, warm_params), train
    return tr.tune(sample, sample_folds, n_trials=trials, timeout=timeout), train


def model_backtest(panel, train, tuning, basis) -> dict:
    """The rolling-origin backtest of the model alone (demand_backtest's windows, without its baselines: AutoETS
    alone takes minutes here and does not depend on the tuning)."""
    from ecomarket_assets.forecasting import metrics
    from ecomarket_assets.forecasting import training as tr
    from ecomarket_assets.forecasting.features import PanelSums

    sums = PanelSums(panel)
    actual, forecast, history, low, high = [], [], [], [], []
    for origin in tr.plan_folds(len(panel.days)).backtest_origins:
        fold = tr.fold_data(panel, origin, basis, sums)
        predicted = tr.fit_final(train, tuning, basis, origin).predict(fold.features)
        shape = fold.actual.shape
        actual.append(fold.actual)
        forecast.append(predicted["forecast"].to_numpy().reshape(shape))
        low.append(predicted["p10"].to_numpy().reshape(shape))
        high.append(predicted["p90"].to_numpy().reshape(shape))
        padded = np.full((len(fold.products), panel.units.shape[1]), np.nan)
        padded[:, : origin + 1] = panel.units[fold.products, : origin + 1]
        history.append(padded)
    return metrics.evaluate(np.vstack(actual), np.vstack(forecast), np.vstack(history), np.vstack(low),
                            np.vstack(high))


def demand(data_dir: Path, trials: int, timeout: int, products: int, all_timeout: int,
           only: tuple[str, ...] = ("sample", "all", "warm")) -> list[dict]:
    from ecomarket_assets.forecasting import training as tr
    from ecomarket_assets.forecasting.store import ForecastStore
    from ecomarket_assets.storage import DataLayout

    store = ForecastStore(DataLayout(data_dir))
    panel, basis = store.read_panel(), store.read_basis()
    print(f"panel: {len(panel.product_ids):,} products x {len(panel.days)} days "
          f"({panel.days[0].date()} .. {panel.days[-1].date()})", flush=True)
    start = time.perf_counter()
    last_week, _ = _search(panel.truncated(len(panel.days) - 8), basis, trials, timeout, products)
    print(f"last week's search: {time.perf_counter() - start:.0f} s, {len(last_week.trials)} trials, "
          f"rounds {last_week.rounds}, CV WAPE {last_week.best_wape:.4f}", flush=True)
    rows = []
    variants = {"sample": (f"search on {products} products ({timeout} s) + fit", (products, timeout)),
                "all": (f"search on all products ({all_timeout} s) + fit", (0, all_timeout)),
                "warm": ("warm retrain (last week's choices)", last_week)}
    for key in only:
        name, tuning_of = variants[key]
        start = time.perf_counter()
        if isinstance(tuning_of, tuple):
            tuning, train = _search(panel, basis, trials, tuning_of[1], tuning_of[0])
        else:
            tuning, train = _search(panel, basis, trials, timeout, products, warm_params=tuning_of.params)
        tr.fit_final(train, tuning, basis, origin=len(panel.days) - 1 - 28)
        seconds = time.perf_counter() - start
        print(f"{name}: {seconds:.0f} s", flush=True)
        scores = model_backtest(panel, train, tuning, basis)
        rows.append({"retrain": name, "wall_s": round(seconds), "trials": len(tuning.trials),
                     "rounds": tuning.rounds, "backtest_wape_day": round(scores["wape_day"], 4),
                     "backtest_wape_week": round(scores["wape_week"], 4),
                     "coverage_p10_p90_day": round(scores["coverage_day"], 3), "peak_gb": round(_peak_gb(), 2)})
        print(rows[-1], flush=True)
    wape = dict(zip(only, (r["backtest_wape_day"] for r in rows), strict=True))
    if "all" in wape:
        print("backtest WAPE relative to the search on all products: " + ", ".join(
            f"{variants[k][0]} {100 * (v / wape['all'] - 1):+.2f} %" for k, v in wape.items() if k != "all"))
    _table(rows)
    return rows


NIGHT_CONFIG_ASSETS = ("user_features", "demand_training_set", "rec_candidates")  # the ones with full_rebuild


def _env(source: str, path: Path | None, root: Path) -> dict:
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from stages import use_source

    use_source(source, path or Path(), root)
    (root / ".dagster").mkdir(parents=True, exist_ok=True)
    (root / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    return {**os.environ, "DAGSTER_HOME": str(root), "ECOMARKET_DAGSTER_STORAGE": str(root / ".dagster"),
            "ECOMARKET_DAGSTER_COMPUTE_LOGS": str(root / ".dagster" / "logs"), "PYTHONUNBUFFERED": "1"}


def _done_lines(output: str) -> dict[str, float]:
    """`asset -> seconds` from run_all's progress lines ("    done <asset> <s> s  <figure>")."""
    found = re.findall(r"^\s+done (\S+)\s+([\d.]+) s", output, flags=re.M)
    return {asset: float(seconds) for asset, seconds in found}


def _python(args: list[str], env: dict) -> tuple[str, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout, time.perf_counter() - start


def night_run(day: str, full: bool) -> None:
    """(child process) One night: the day's daily_ingest_job partition, then daily_refresh_job's assets."""
    import dagster as dg

    from ecomarket_assets import run_all
    from ecomarket_assets.definitions import defs as load_defs
    from ecomarket_assets.defs.operations.automation import daily_refresh_job

    defs, instance = load_defs(), dg.DagsterInstance.get()
    run_all._materialize(defs, dg.AssetSelection.assets("raw_events", "user_daily_activity"), instance,
                         partition_key=day)
    ops = {name: {"config": dict(op["config"])} for name, op in daily_refresh_job.config["ops"].items()}
    for name in NIGHT_CONFIG_ASSETS if full else ():
        ops.setdefault(name, {"config": {}})["config"]["full_rebuild"] = True
    run_all._materialize(defs, daily_refresh_job.selection, instance, ops=ops)
    print(f"peak_gb {_peak_gb():.2f}")


def _snapshot(data: Path) -> dict:
    """The incremental assets' outputs, to compare a night with a full rebuild of the same day."""
    from ecomarket_assets.forecasting.store import ForecastStore
    from ecomarket_assets.recommender.store import RecStore
    from ecomarket_assets.storage import DataLayout, read_frame

    layout = DataLayout(data)
    store = ForecastStore(layout)
    return {"user_features": read_frame(layout.table("user_features")),
            "demand panel": read_frame(store.panel_path),
            "demand feature rows": store.read_features(),
            "serving candidates": read_frame(RecStore(layout).candidate_path("serving"))}


def _equal(left, right) -> str:
    import pandas as pd

    try:
        pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True), rtol=1e-9,
                                      check_dtype=False)
        return "equal"
    except AssertionError as error:
        return "DIFFERENT: " + str(error).splitlines()[0][:120]


def night(source: str, path: Path | None, root: Path) -> list[dict]:
    """`make run` through the day before the last, then the last day as a night, then that night as a full rebuild."""
    import pandas as pd

    env = _env(source, path, root)
    out, _ = _python(["-c", "from ecomarket_assets.run_all import *; from ecomarket_assets.settings import plain;"
                      "print('LAST', source_days(plain(ShopSourceResource), plain(DataDirResource))[1])"], env)
    last = out.split("LAST ")[1].split()[0]
    day_before = (pd.Timestamp(last) - pd.Timedelta(days=1)).date().isoformat()
    out, graph_seconds = _python(["-m", "ecomarket_assets.run_all", "--through", day_before], env)
    graph = _done_lines(out)
    print(f"whole graph through {day_before}: {graph_seconds:.0f} s", flush=True)
    out, night_seconds = _python([__file__, "_night", "--day", last], env)
    nightly = _done_lines(out)
    incremental = _snapshot(root / "data")
    out, full_seconds = _python([__file__, "_night", "--day", last, "--full"], env)
    full = _done_lines(out)
    rebuilt = _snapshot(root / "data")
    rows = [{"asset": a, "whole graph s": graph.get(a), "night (one new day) s": nightly.get(a),
             "night, full rebuild s": full.get(a)} for a in dict.fromkeys([*graph, *nightly])]
    print(f"\nwhole graph {graph_seconds:.0f} s; night {night_seconds:.0f} s; night as a full rebuild {full_seconds:.0f} s"
          " (each includes ~10 s of process start and definitions load)")
    _table(rows)
    for name in incremental:
        print(f"{name}: one new day vs full rebuild: {_equal(incremental[name], rebuilt[name])}")
    return rows


def states(events: str, work_dir: Path) -> None:
    """Each incremental state on a simulated shop (10M events by default): full rebuild vs one new day."""
    bench = REPO_ROOT / "benchmarks"
    for script, args in (("incremental_refresh.py", ["--events", events, "--work-dir", str(work_dir), "--reuse"]),
                         ("incremental_state.py", ["--work-dir", str(work_dir / _label(events)), "--repeat", "1"])):
        out, _ = _python([str(bench / script), *args], {**os.environ, "PYTHONUNBUFFERED": "1"})
        print(out)


def _label(events: str) -> str:
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from scale import label

    return label(int(float(events)))


def _table(rows: list[dict]) -> None:
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["all", "demand", "night", "states", "_night"])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--work-dir", type=Path, help="night: folder for the shop's data, MLflow and Dagster")
    parser.add_argument("--source", default="online_retail", choices=["online_retail", "simulator"])
    parser.add_argument("--events", default="1e7", help="states: simulated shop size (scale.py's preparation)")
    parser.add_argument("--day", help="(internal) the night's day")
    parser.add_argument("--full", action="store_true", help="(internal) the night as a full rebuild")
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--timeout", type=int, default=120, help="demand: the search budget (the deployment's default)")
    parser.add_argument("--all-products-timeout", type=int, default=240,
                        help="demand: the budget of the search on every product (the default before the sample)")
    parser.add_argument("--variants", default="sample,all,warm", help="demand: which retrains to run")
    parser.add_argument("--tuning-products", type=int, default=1200, help="demand: the sampled search's products")
    args = parser.parse_args()
    if args.part == "demand":
        demand(args.data_dir, args.trials, args.timeout, args.tuning_products, args.all_products_timeout,
               tuple(args.variants.split(",")))
    elif args.part == "night":
        root = args.work_dir or Path(tempfile.mkdtemp(prefix="ecomarket-daily-"))
        night(args.source, ONLINE_RETAIL if args.source == "online_retail" else None, root)
    elif args.part == "states":
        states(args.events, args.work_dir or Path(tempfile.gettempdir()) / "ecomarket-scale")
    elif args.part == "all":
        root = args.work_dir or Path(tempfile.mkdtemp(prefix="ecomarket-daily-"))
        night("online_retail", ONLINE_RETAIL, root / "online_retail")
        demand(root / "online_retail" / "data", args.trials, args.timeout, args.tuning_products,
               args.all_products_timeout)
        states(args.events, root / "scale")
    elif args.part == "_night":
        night_run(args.day, args.full)


if __name__ == "__main__":
    main()
