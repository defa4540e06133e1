"""The nightly demand refresh: a full rebuild against folding in one new day, on the local engine or Dask.

    .venv/bin/python benchmarks/incremental_refresh.py [--events 2e6] [--engine local|dask] [--reuse]

The shop comes from scale.py's preparation (simulated raw_events day files and the catalog in
`--work-dir/<size>`, kept for `--reuse`). Its day files but the last are linked into a scratch data
folder, where `refresh_demand_state` runs once with `full_rebuild` (what every night cost before) and
then, after the last day file arrives, once incrementally (what a night costs now). For reference, the
whole-history path (`panel_from_layout` + `make_training_set`, what the asset did before) is timed too.
Seconds per part (aggregate, panel, features, write) and the rows are printed; not a timed test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))


def _link_days(source, target, days: list[str]) -> None:
    for day in days:
        path = target.raw_events_day(day)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(source.raw_events_day(day), path)


def _row(name: str, seconds: float, report=None) -> str:
    parts = "" if report is None else "  ".join(f"{k} {v:6.2f}" for k, v in report.seconds.items())
    extra = "" if report is None else (f"  days aggregated {report.days_aggregated:4d}  rows computed "
                                       f"{report.feature_rows_appended:9,d}  rows stored {report.feature_rows:9,d}")
    return f"{name:<34}{seconds:8.2f} s  {parts}{extra}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=float, default=2e6)
    parser.add_argument("--engine", default="local", choices=["local", "dask"])
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "ecomarket-scale")
    parser.add_argument("--reuse", action="store_true", help="reuse the prepared shop of an earlier run")
    args = parser.parse_args()

    import scale

    from ecomarket_assets.compute import ComputeResource
    from ecomarket_assets.forecasting import training as tr
    from ecomarket_assets.forecasting.panel import event_days, panel_from_layout
    from ecomarket_assets.forecasting.refresh import refresh_demand_state
    from ecomarket_assets.resources import ShopSourceResource
    from ecomarket_assets.storage import DataLayout

    n = int(args.events)
    work_dir = args.work_dir.expanduser().resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    manifest = scale.prepare(n, work_dir, args.reuse)
    source = DataLayout(work_dir / scale.label(n))
    days = event_days(source)
    calendar = ShopSourceResource().sales_calendar
    scratch = Path(tempfile.mkdtemp(prefix="refresh-", dir=work_dir))
    try:
        target = DataLayout(scratch / "data")
        target.table("catalog").parent.mkdir(parents=True)
        shutil.copy(source.table("catalog"), target.table("catalog"))
        _link_days(source, target, days[:-1])
        with ComputeResource(engine=args.engine).session() as engine:
            print(f"{manifest['events']:,} events over {len(days)} days, {manifest['products']:,} products; "
                  f"engine {engine.kind}", flush=True)
            start = time.perf_counter()
            panel = panel_from_layout(target, calendar, engine)
            train = tr.make_training_set(panel, None)
            print(_row(f"before: whole history ({len(days) - 1} d)", time.perf_counter() - start)
                  + f"  rows {len(train.target):,}", flush=True)
            start = time.perf_counter()
            full = refresh_demand_state(target, calendar, engine, full_rebuild=True)
            print(_row(f"full rebuild ({len(days) - 1} days)", time.perf_counter() - start, full), flush=True)
            _link_days(source, target, days[-1:])
            start = time.perf_counter()
            nightly = refresh_demand_state(target, calendar, engine)
            print(_row(f"incremental (+1 day: {days[-1]})", time.perf_counter() - start, nightly), flush=True)
            assert nightly.refresh == "incremental" and nightly.days_aggregated == 1, nightly.reason
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
