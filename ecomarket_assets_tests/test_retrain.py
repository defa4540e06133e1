"""Cheap retraining of the demand model: early-stopped trials, a kept study, and when a retrain searches again."""

import time

import numpy as np
import optuna
import pytest

from ecomarket_assets.forecasting import retrain
from ecomarket_assets.forecasting import training as tr
from ecomarket_assets_tests.test_forecasting import _random_panel


@pytest.fixture(scope="module")
def small_problem():
    panel = _random_panel(n_products=10, n_days=150)
    train = tr.make_training_set(panel, None)
    plan = tr.plan_folds(len(panel.days))
    return panel, train, [tr.fold_data(panel, o, None) for o in plan.tuning_origins]


def _space(trial):
    return {"learning_rate": trial.suggest_float("learning_rate", 0.05, 0.3), "num_leaves": 7,
            "min_data_in_leaf": 20}, 400


def test_trials_stop_early_and_the_study_is_kept(small_problem, tmp_path):
    _, train, folds = small_problem
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tuning = tr.tune(train, folds, n_trials=4, seed=3, search_space=_space, storage=storage, study_name="demand-x",
                     warm_start={"learning_rate": 0.3})
    kept = optuna.load_study(study_name="demand-x", storage=storage)
    assert len(kept.trials) == 4 and kept.best_value == pytest.approx(tuning.best_wape)
    assert kept.trials[0].params["learning_rate"] == 0.3  # the earlier search's choice is tried first
    rounds = [t.user_attrs["rounds"] for t in kept.trials if "rounds" in t.user_attrs]
    assert all(1 <= r < 400 for r in rounds)  # early stopping found the rounds, well under the ceiling
    assert tuning.rounds == kept.best_trial.user_attrs["rounds"]
    # a rerun under the same name replaces the study instead of mixing in trials scored on other data
    tr.tune(train, folds, n_trials=2, seed=3, search_space=_space, storage=storage, study_name="demand-x")
    assert len(optuna.load_study(study_name="demand-x", storage=storage).trials) == 2
    assert 0 < tuning.calibration.coverage_after <= 1 and len(tuning.fold_metrics) == len(folds)


def test_time_budget_is_enforced_inside_a_fit(small_problem):
    _, train, folds = small_problem

    def slow_after_first(trial):
        params, rounds = _space(trial)
        if trial.number == 0:
            return params, rounds
        return {**params, "learning_rate": 1e-4}, 1_000_000  # would run for many minutes without the budget

    start = time.perf_counter()
    tuning = tr.tune(train, folds, n_trials=3, timeout=2.0, search_space=slow_after_first)
    assert time.perf_counter() - start < 60
    assert tuning.trials["state"].tolist()[:2] == ["COMPLETE", "PRUNED"]
    assert tuning.trials["user_attrs_stopped"].iloc[1] == "time budget spent"


def _record(panel, **change):
    record = {"tuned_through": str(panel.days[-1].date() - np.timedelta64(7, "D").astype(object)),
              "feature_names": ["a", "b"], "units_per_day": retrain.recent_units_per_day(panel)}
    return {**record, **change}


def test_retrain_reuses_a_recent_search_and_searches_again_when_it_must():
    panel = _random_panel(n_products=10, n_days=150)
    assert retrain.choose("auto", None, panel, ["a", "b"], 28).mode == "full"
    warm = retrain.choose("auto", _record(panel), panel, ["a", "b"], 28)
    assert warm.mode == "warm" and "7 days old" in warm.reason
    assert retrain.choose("full", _record(panel), panel, ["a", "b"], 28).mode == "full"
    old = retrain.choose("auto", _record(panel, tuned_through=str(panel.days[-40].date())), panel, ["a", "b"], 28)
    assert old.mode == "full" and "39 days old" in old.reason
    assert "feature set" in retrain.choose("auto", _record(panel), panel, ["a", "c"], 28).reason
    shifted = _record(panel, units_per_day=retrain.recent_units_per_day(panel) * 3)
    assert "level shifted" in retrain.choose("auto", shifted, panel, ["a", "b"], 28).reason
    assert retrain.choose("auto", _record(panel), panel, ["a", "b"], 0).mode == "full"  # 0 = search every time
    with pytest.raises(ValueError, match="warm is not possible: no earlier search"):
        retrain.choose("warm", None, panel, ["a", "b"], 28)
