"""Running state folded one day a night equals the full reduction of every stored day, on both engines.

A 100-day shop, so the 90-day windows have days leaving them too.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from ecomarket_assets.compute import ComputeResource, Engine
from ecomarket_assets.defs.profiles import assets as profile_assets
from ecomarket_assets.profiles import activity as act
from ecomarket_assets.profiles.features import user_features
from ecomarket_assets.profiles.user_state import features_from_state, refresh_user_state
from ecomarket_assets.recommender.interactions import user_product_summary
from ecomarket_assets.recommender.pair_state import refresh_pair_state
from ecomarket_assets.recommender.pipeline import (
    labelled_set,
    read_history,
    serving_set,
    use_pair_states,
)
from ecomarket_assets.recommender.store import CutoffPlan
from ecomarket_assets.resources import DataDirResource
from ecomarket_assets.storage import DataLayout, read_frame, remove_tree, write_frame, write_table

TOLERANCE = 1e-9  # the same floats summed in another order, and decay applied a day at a time
START, DAYS = dt.date(2025, 8, 1), 100
LAST = START + dt.timedelta(days=DAYS - 1)


def _day(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory):
    """Activity day files, catalog and customers of a simulated shop, as the assets store them."""
    from ecomarket_assets.simulator.shop import SimConfig, simulate

    shop = simulate(SimConfig(n_users=600, n_products=80, n_days=DAYS, start_date=START, seed=5, glitch_share=0.0))
    layout = DataLayout(tmp_path_factory.mktemp("state") / "data")
    activity = act.daily_activity(shop.tables.events)
    for day in sorted(activity.users["date"].unique()):
        act.write_day(activity, layout, day)
    write_frame(shop.tables.catalog, layout.table("catalog"))
    write_frame(shop.tables.customers, layout.table("customers"))
    return layout


@pytest.fixture
def layout(shop_dir):
    remove_tree(shop_dir.root / "state")  # every test starts without stored state
    return shop_dir


@pytest.fixture(scope="module")
def cluster():
    with ComputeResource(engine="dask", workers=2).session() as engine:
        yield engine


def _full_features(layout, as_of: dt.date) -> pd.DataFrame:
    return user_features(act.read_days(layout), read_frame(layout.table("customers")),
                         read_frame(layout.table("catalog")), as_of)


def _state_features(layout, state, as_of: dt.date) -> pd.DataFrame:
    return features_from_state(state, read_frame(layout.table("customers")), read_frame(layout.table("catalog")), as_of)


def _fold_users(layout, first: int, engine: Engine | None = None) -> dict:
    """Rebuild at day `first` (on `engine`), then fold every later day one night at a time."""
    state, report = refresh_user_state(layout, engine, as_of=_day(first))
    assert report.refresh == "full" and report.reason == "no stored state"
    for n in range(first + 1, DAYS):
        state, report = refresh_user_state(layout, as_of=_day(n))
        assert (report.refresh, report.days_folded) == ("incremental", 1), report
    return state


def _fold_pairs(layout, first: int, lag: int, engine: Engine | None = None) -> pd.DataFrame:
    """The pair state `lag` days behind each night's newest day, from night `first` to the last."""
    pairs, report = refresh_pair_state(layout, _day(first - lag + 1), engine, last_day=_day(first))
    assert report.refresh == "full"
    for n in range(first + 1, DAYS):
        pairs, report = refresh_pair_state(layout, _day(n - lag + 1), last_day=_day(n))
        assert (report.refresh, report.days_folded) == ("incremental", 1), report
    return pairs


def test_user_features_folded_day_by_day_equal_the_full_reduction(layout):
    state = _fold_users(layout, 20)
    full = _full_features(layout, LAST)
    assert len(full) > 500 and full["orders_90d"].sum() < full["orders"].sum()  # days did leave the 90-day window
    pd.testing.assert_frame_equal(_state_features(layout, state, LAST), full, rtol=TOLERANCE)
    rebuilt, report = refresh_user_state(layout, full_rebuild=True)
    assert (report.refresh, report.reason, report.days_folded) == ("full", "full_rebuild requested", DAYS)
    pd.testing.assert_frame_equal(_state_features(layout, rebuilt, LAST), full, rtol=TOLERANCE)


@pytest.mark.parametrize("lag", [0, 28])
def test_pairs_folded_day_by_day_equal_user_product_summary(layout, lag):
    pairs = _fold_pairs(layout, 20, lag)
    cutoff = LAST - dt.timedelta(days=lag - 1)
    expected = user_product_summary(act.read_days(layout).interactions, cutoff)
    assert len(expected) > 1000 and expected["bought_prev_28d"].sum() > 0
    pd.testing.assert_frame_equal(pairs, expected, rtol=TOLERANCE)


@pytest.mark.slow  # starts a Dask cluster; `make test-slow` (CI) runs it
def test_dask_rebuild_then_local_folds_equal_the_local_full_reduction(layout, cluster):
    state = _fold_users(layout, 85, cluster)
    pd.testing.assert_frame_equal(_state_features(layout, state, LAST), _full_features(layout, LAST), rtol=TOLERANCE)
    pairs = _fold_pairs(layout, 85, 0, cluster)
    expected = user_product_summary(act.read_days(layout).interactions, LAST + dt.timedelta(days=1))
    pd.testing.assert_frame_equal(pairs, expected, rtol=TOLERANCE)
    rebuilt, report = refresh_user_state(layout, cluster, full_rebuild=True)
    assert report.refresh == "full"
    pd.testing.assert_frame_equal(_state_features(layout, rebuilt, LAST), _full_features(layout, LAST), rtol=TOLERANCE)


def test_a_changed_or_missing_day_rebuilds_and_says_why(layout):
    refresh_user_state(layout, as_of=_day(90))
    _, report = refresh_user_state(layout, as_of=_day(90))
    assert (report.refresh, report.days_folded) == ("none", 0)
    past = layout.activity_day("users", _day(50).isoformat())
    write_table(pa.Table.from_pandas(read_frame(past), preserve_index=False), past)  # a past day re-ingested
    state, report = refresh_user_state(layout, as_of=_day(91))
    assert report.refresh == "full" and report.reason == f"users day file {_day(50)} changed since it was folded"
    pd.testing.assert_frame_equal(_state_features(layout, state, _day(91)), _full_features(layout, _day(91)),
                                  rtol=TOLERANCE)
    gap = layout.activity_day("hours", _day(93).isoformat())
    saved = read_frame(gap)
    gap.unlink()
    try:
        _, report = refresh_user_state(layout, as_of=_day(95))
        assert report.refresh == "full" and report.reason == f"hours day {_day(93)} is missing"
    finally:
        write_frame(saved, gap)


def test_user_features_asset_folds_new_days_and_rebuilds_on_request(layout):
    refresh_user_state(layout, as_of=LAST - dt.timedelta(days=2))
    resources = {"data_dir": DataDirResource(path=str(layout.root)), "compute": ComputeResource()}

    def run(full_rebuild: bool) -> dict:
        config = {"ops": {"user_features": {"config": {"full_rebuild": full_rebuild}}}}
        result = dg.materialize([profile_assets.user_features], resources=resources, run_config=config)
        assert result.success
        return {k: v.value for k, v in result.asset_materializations_for_node("user_features")[0].metadata.items()}

    folded = run(False)
    assert (folded["refresh"], folded["days_folded"]) == ("incremental", 2) and folded["seconds"] > 0
    incremental = read_frame(layout.table("user_features"))
    rebuilt = run(True)
    assert (rebuilt["refresh"], rebuilt["reason"], rebuilt["days_folded"]) == ("full", "full_rebuild requested", DAYS)
    pd.testing.assert_frame_equal(incremental, read_frame(layout.table("user_features")), rtol=TOLERANCE)
    stored_full = pa.Table.from_pandas(_full_features(layout, LAST), preserve_index=False).to_pandas()  # None for NaN
    pd.testing.assert_frame_equal(incremental, stored_full, rtol=TOLERANCE)


def test_candidate_sets_from_pair_states_equal_those_from_every_day(layout):
    plan = CutoffPlan.for_last_day(LAST, window_days=14, train_windows=1)
    scanned = read_history(layout)
    stated = read_history(layout, since=plan.train[0])
    reports = use_pair_states(stated, layout, plan.sets().values())
    assert [r.refresh for r in reports] == ["full"] * 3
    with pytest.raises(ValueError, match="no pair state"):
        stated.interactions_at(LAST)
    for history in (scanned, stated):
        history.sets = [labelled_set(history, "holdout", plan.holdout, 14, 50.0, 20),
                        serving_set(history, plan.serving, 50.0, 20)]
    for left, right in zip(scanned.sets, stated.sets, strict=True):
        assert len(left.frame) > 100 and left.users.equals(right.users)
        pd.testing.assert_frame_equal(left.frame, right.frame, rtol=TOLERANCE)


def test_rec_candidates_asset_reuses_pair_states_and_rebuilds_on_request(layout):
    from ecomarket_assets.defs.recommender import assets as rec_assets
    from ecomarket_assets.recommender.store import RecStore

    resources = {"data_dir": DataDirResource(path=str(layout.root)), "compute": ComputeResource()}

    def run(full_rebuild: bool) -> tuple[dict, pd.DataFrame]:
        config = {"window_days": 14, "train_windows": 1, "per_generator": 20, "full_rebuild": full_rebuild}
        result = dg.materialize([rec_assets.rec_candidates], resources=resources,
                                run_config={"ops": {"rec_candidates": {"config": config}}})
        assert result.success
        meta = result.asset_materializations_for_node("rec_candidates")[0].metadata
        return {k: v.value for k, v in meta.items()}, read_frame(RecStore(layout).candidate_path("serving"))

    first, serving = run(False)
    again, _ = run(False)
    rebuilt, serving_rebuilt = run(True)
    assert (first["refresh"], again["refresh"], rebuilt["refresh"]) == ("full", "none", "full")
    assert "lag=0" in rebuilt["pair_states"] and "full_rebuild requested" in rebuilt["pair_states"]
    pd.testing.assert_frame_equal(serving, serving_rebuilt, rtol=TOLERANCE)


def _hide_days(layout, days: list[dt.date], where: Path) -> None:
    for table in act.SCHEMAS:
        for day in days:
            folder = layout.activity_day(table, day.isoformat()).parent
            if folder.exists():
                (where / table).mkdir(parents=True, exist_ok=True)
                folder.rename(where / table / folder.name)


def _restore_days(layout, where: Path) -> None:
    for table_dir in where.iterdir():
        for folder in table_dir.iterdir():
            folder.rename(layout.root / "user_daily_activity" / table_dir.name / folder.name)


def test_a_serving_only_night_keeps_the_labelled_sets_and_serves_the_new_day(layout, tmp_path):
    from ecomarket_assets.defs.recommender import assets as rec_assets
    from ecomarket_assets.recommender.store import RecStore

    resources = {"data_dir": DataDirResource(path=str(layout.root)), "compute": ComputeResource()}
    store = RecStore(layout)

    def run(sets: str, **extra) -> dict:
        config = {"window_days": 14, "train_windows": 1, "per_generator": 20, "sets": sets, **extra}
        result = dg.materialize([rec_assets.rec_candidates], resources=resources,
                                run_config={"ops": {"rec_candidates": {"config": config}}})
        assert result.success
        return {k: v.value for k, v in result.asset_materializations_for_node("rec_candidates")[0].metadata.items()}

    _hide_days(layout, [_day(n) for n in range(DAYS - 3, DAYS)], tmp_path / "hidden")
    try:
        weekly = run("all")
        labelled = {n: read_frame(store.candidate_path(n)) for n in ("train_1", "holdout")}
    finally:
        _restore_days(layout, tmp_path / "hidden")
    night = run("serving")
    plan, saved = store.read_plan()
    assert weekly["sets_built"] == "train_1, holdout, serving" and night["sets_built"] == "serving"
    assert "3 day(s) behind" in night["labelled_sets"]
    assert (plan.holdout, plan.serving) == (LAST - dt.timedelta(days=16), LAST + dt.timedelta(days=1))
    assert night["ease_l2"] == weekly["ease_l2"] and night["holdout_candidate_recall"] == weekly["holdout_candidate_recall"]
    assert [r["set"] for r in saved["sets"]] == ["train_1", "holdout", "serving"]
    for name, frame in labelled.items():  # kept as the weekly build wrote them
        pd.testing.assert_frame_equal(read_frame(store.candidate_path(name)), frame)
    served = read_frame(store.candidate_path("serving"))
    everything = run("all")  # the serving set of a serving-only night is the one a full build makes
    assert everything["sets_built"] == "train_1, holdout, serving"
    assert store.read_plan()[0].holdout == LAST - dt.timedelta(days=13)
    pd.testing.assert_frame_equal(read_frame(store.candidate_path("serving")), served, rtol=TOLERANCE)
    assert run("serving", window_days=7)["labelled_sets"].startswith("all sets built: window settings changed")
