"""A night's refresh of the running states: full rebuild vs folding one new day, on the local engine.

    .venv/bin/python benchmarks/incremental_state.py [--users 10000] [--days 180] [--work-dir DIR]

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
    from ecomarket_assets.profiles import activity as act
    from ecomarket_assets.profiles.user_state import refresh_user_state
    from ecomarket_assets.recommender.pair_state import refresh_pair_state
    from ecomarket_assets.simulator.shop import SimConfig, simulate
    from ecomarket_assets.storage import DataLayout, remove_tree

    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    layout = DataLayout(args.work_dir or tempfile.mkdtemp(prefix="ecomarket-state-"))
    start = time.perf_counter()
    shop = simulate(SimConfig(n_users=args.users, n_products=max(200, args.users // 50), n_days=args.days,
                              start_date=dt.date(2025, 1, 1), seed=1, glitch_share=0.0))
    activity = act.daily_activity(shop.tables.events)
    for day in sorted(activity.users["date"].unique()):
        act.write_day(activity, layout, day)
    last = dt.date.fromisoformat(layout.activity_days()[-1])
    print(f"{len(shop.tables.events):,} events, {len(activity.interactions):,} (user, product, day) rows, "
          f"{len(layout.activity_days())} days; prepared in {time.perf_counter() - start:.0f} s")

    def user(as_of: dt.date, full: bool):
        return refresh_user_state(layout, full_rebuild=full, as_of=as_of)[1]

    def pairs(as_of: dt.date, full: bool):
        return refresh_pair_state(layout, as_of + dt.timedelta(days=1), full_rebuild=full, last_day=as_of)[1]

    print(f"{'state':<22}{'full rebuild s':>15}{'one new day s':>15}{'ratio':>8}{'state rows':>12}")
    for name, refresh in (("user_activity", user), ("user_product (lag 0)", pairs)):
        remove_tree(layout.root / "state")
        full = refresh(last, True)
        refresh(last - dt.timedelta(days=1), True)
        folded = refresh(last, False)
        assert folded.refresh == "incremental" and folded.days_folded == 1, folded
        print(f"{name:<22}{full.seconds:>15.2f}{folded.seconds:>15.2f}{full.seconds / folded.seconds:>8.1f}"
              f"{folded.rows:>12,}")


if __name__ == "__main__":
    main()
