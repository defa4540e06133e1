"""`make run`: materialize the whole asset graph once on the configured source (the simulated shop by default).

Runs go into the Dagster instance at $DAGSTER_HOME (the Makefile points it at the
checkout), so `make dev` then shows every materialization, its metadata and checks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from ecomarket_assets.definitions import defs as load_defs
from ecomarket_assets.ingestion.staging import UNDATED
from ecomarket_assets.partitions import daily_partitions, partition_range_tags
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.settings import plain

UNPARTITIONED_ROOTS = ["catalog", "customers", "reviews"]


def _instance() -> dg.DagsterInstance:
    try:
        return dg.DagsterInstance.get()
    except Exception:  # no DAGSTER_HOME: still run, but nothing persists for the UI
        print("DAGSTER_HOME is not set: using a temporary instance (run through `make run` to keep the history).")
        return dg.DagsterInstance.ephemeral()


def _materialize(defs: dg.Definitions, selection: dg.AssetSelection, instance: dg.DagsterInstance,
                 ops: dict | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    """Materialize `selection` and its checks in one run, printing each asset as it finishes; a failed blocking
    check raises. `ops`: run config of the assets (e.g. `{"user_features": {"config": {"full_rebuild": True}}}`)."""
    job = defs.resolve_implicit_global_asset_job_def()
    keys = selection.resolve(defs.resolve_asset_graph())
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}, **({"ops": ops} if ops else {})}
    run_id = str(uuid.uuid4())
    with _progress(instance, run_id, {k.to_user_string() for k in keys}):
        return job.execute_in_process(instance=instance, asset_selection=list(keys), run_config=quiet, run_id=run_id,
                                      **kwargs)


STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


@contextmanager
def _progress(instance: dg.DagsterInstance, run_id: str, assets: set[str], every: float = 2.0) -> Iterator[None]:
    """A watcher thread reads the run's event log and prints one line per asset step as it ends."""
    stop = threading.Event()

    def watch() -> None:
        started: dict[str, float] = {}
        reported: set[str] = set()
        while True:
            last_pass = stop.is_set()
            for entry in instance.all_logs(run_id, of_type=STEP_EVENTS):
                step = entry.step_key or ""
                if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
                    started.setdefault(step, entry.timestamp)
                elif step in assets and step not in reported:
                    reported.add(step)
                    print(_progress_line(instance, step, entry, entry.timestamp - started.get(step, entry.timestamp)),
                          flush=True)
            if last_pass:
                return
            stop.wait(every)

    watcher = threading.Thread(target=watch, name="make-run-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=60)


def _progress_line(instance: dg.DagsterInstance, asset: str, entry, seconds: float) -> str:
    if entry.dagster_event_type == dg.DagsterEventType.STEP_FAILURE:
        return f"    failed {asset} after {seconds:.0f} s"
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    figure = next((f"{k.removeprefix('dagster/')} {_fmt(meta[k].value)}" for k in SHOWN if k in meta), "")
    return f"    done {asset:<26} {seconds:6.1f} s  {figure}"


def source_days(source: ShopSourceResource, data_dir: DataDirResource) -> tuple[str, str]:
    """First and last day with data, clipped to the partitions that exist."""
    layout = data_dir.layout()
    for bad in source.intake_landing(layout).quarantined:
        print(f"quarantined landing file {bad.file}: {bad.problem} (fix: {bad.fix})")
    days = sorted({d for s in source.event_sources(layout) for d in s.days() if d != UNDATED})
    valid = set(daily_partitions.get_partition_keys())
    days = [d for d in days if d in valid]
    if not days:
        raise SystemExit("the source has no days inside the partitions; set ECOMARKET_PARTITIONS_START")
    return days[0], days[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Materialize the whole asset graph once (`make run`).")
    parser.add_argument("--through", metavar="YYYY-MM-DD", help="last day to ingest (default: the source's last); "
                        "a later `daily_ingest_job` + `daily_refresh_job` run then adds the next day like a night")
    args = parser.parse_args(argv)
    # Steps run one at a time in this process, so the sentence model never encodes beside a LightGBM fit here and
    # may take every core (product_embeddings 9.7 s against 19.4 s on half of 2 cores, 2026-12-03).
    os.environ.setdefault("ECOMARKET_TORCH_THREADS", str(len(os.sched_getaffinity(0))))
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # MLflow's INFO chatter would drown the progress lines
    started = time.time()
    defs = load_defs()
    instance = _instance()
    data_dir, source = plain(DataDirResource), plain(ShopSourceResource)  # what this run's resources resolve to
    layout = data_dir.layout()
    print(f"source: {source.kind} {source.path or ''}  data directory: {layout.root}")

    graph = defs.resolve_asset_graph()
    partitioned = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None]
    roots = dg.AssetSelection.assets(*UNPARTITIONED_ROOTS)
    print("1/3 source tables: " + ", ".join(UNPARTITIONED_ROOTS))
    _materialize(defs, roots, instance)
    first, last = source_days(source, data_dir)
    last = min(last, args.through) if args.through else last
    print(f"2/3 daily assets {first} .. {last}: " + ", ".join(k.to_user_string() for k in partitioned))
    _materialize(defs, dg.AssetSelection.assets(*partitioned), instance,
                 tags=partition_range_tags(first, last))
    rest = dg.AssetSelection.all() - roots - dg.AssetSelection.assets(*partitioned)
    rest_keys = rest.resolve(graph)
    if rest_keys:
        print("3/3 the rest of the graph: " + ", ".join(sorted(k.to_user_string() for k in rest_keys)))
        _materialize(defs, rest, instance)
    _summary(instance, layout, time.time() - started)
    return 0


# Metadata the summary shows; the progress line shows the first of `SHOWN` an asset has.
SUMMARY = ("rows_read", "rows_kept", "rows_quarantined", "dagster/row_count", "backtest_churn_auc",
           "backtest_purchases_corr", "segments", "products_per_second", "cv_wape", "registered_version",
           "aliases", "units_next_28_days", "model_wape", "wape_vs_seasonal_naive", "model_coverage_p10_p90",
           "model_wape_vs_truth", "holdout_ndcg@10", "ndcg@10_lift_over_best_baseline", "users_with_fewer_than_k",
           "why_no_model", "decision", "champion_after")
SHOWN = ("decision", "cv_wape", "model_wape", "holdout_ndcg@10", "ndcg@10_lift_over_best_baseline",
         "backtest_churn_auc", "why_no_model", "rows_kept", "dagster/row_count")


def _fmt(value: object) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)


def _summary(instance: dg.DagsterInstance, layout, seconds: float) -> None:
    print(f"\nmaterialized the asset graph in {seconds:.0f} s. Outputs under {layout.root}:")
    shown = SUMMARY
    for key in sorted(instance.get_asset_keys(), key=lambda k: k.to_user_string()):
        event = instance.get_latest_materialization_event(key)
        meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
        values = [f"{k.removeprefix('rows_').removeprefix('dagster/')} {_fmt(meta[k].value)}" for k in shown if k in meta]
        print(f"  {key.to_user_string():<22} {', '.join(values)}")
    print(f"  quarantine   {layout.root / 'quarantine'}")
    print("\nOpen the UI: `make dev`, then http://127.0.0.1:3000 (asset graph, metadata, checks, run history).")


if __name__ == "__main__":
    sys.exit(main())
