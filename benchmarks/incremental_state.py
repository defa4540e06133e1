"""A night's refresh of the running states: full rebuild vs folding one new day, on the local engine.

    .venv/bin/python benchmarks/incremental_state.py [--users 10000] [--days 180] [--work-dir DIR (reused when it holds days)] [--repeat 3]

Preparation (not timed): the simulator's events become `user_daily_activity` day files in `--work-dir`.
Timed, as the assets call them: `refresh_user_state` (behind `user_features`) and `refresh_pair_state`
(behind `rec_candidates`, serving cutoff) rebuilding from every day, then the state as of the day before
the last folding in the last day. Prints a table; not a timed test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path


def main() -> None:
    from ecomarket_assets.profiles.user_state import refresh_user_state
    from ecomarket_assets.recommender.pair_state import refresh_pair_state
    from ecomarket_assets.storage import DataLayout, remove_tree

    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    layout = DataLayout(args.work_dir or tempfile.mkdtemp(prefix="ecomarket-state-"))
    start = time.perf_counter()
    if layout.activity_days():  # prepared before: reuse
        print(f"{len(layout.activity_days())} days in {layout.root}")
    else:
        _prepare(layout, args.users, args.days)
        print(f"{len(layout.activity_days())} days prepared in {time.perf_counter() - start:.0f} s")
    last = dt.date.fromisoformat(layout.activity_days()[-1])

    def user(as_of: dt.date, full: bool):
        return refresh_user_state(layout, full_rebuild=full, as_of=as_of)[1]

    def pairs(as_of: dt.date, full: bool):
        return refresh_pair_state(layout, as_of + dt.timedelta(days=1), full_rebuild=full, last_day=as_of)[1]

    print(f"{'state':<22}{'full rebuild s':>15}{'one new day s':>15}{'ratio':>8}{'state rows':>12}")
    for name, refresh in (("user_activity", user), ("user_product (lag 0)", pairs)):
        fulls, folds = [], []
        for _ in range(args.repeat):  # best of: other jobs share the machine
            remove_tree(layout.root / "state")
            fulls.append(refresh(last, True))
            refresh(last - dt.timedelta(days=1), True)
            folds.append(refresh(last, False))
            assert folds[-1].refresh == "incremental" and folds[-1].days_folded == 1, folds[-1]
        full, folded = min(r.seconds for r in fulls), min(r.seconds for r in folds)
        print(f"{name:<22}{full:>15.2f}{folded:>15.2f}{full / folded:>8.1f}{folds[-1].rows:>12,}")


def _prepare(layout, users: int, days: int) -> None:
    from ecomarket_assets.profiles import activity as act
    from ecomarket_assets.simulator.shop import SimConfig, simulate

    shop = simulate(SimConfig(n_users=users, n_products=max(200, users // 50), n_days=days,
                              start_date=dt.date(2025, 1, 1), seed=1, glitch_share=0.0))
    activity = act.daily_activity(shop.tables.events)
    for day in sorted(activity.users["date"].unique()):
        act.write_day(activity, layout, day)
    print(f"{len(shop.tables.events):,} events, {len(activity.interactions):,} (user, product, day) rows")


if __name__ == "__main__":
    main()
