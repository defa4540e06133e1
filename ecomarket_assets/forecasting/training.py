"""Rolling-origin tuning, final training and backtesting of the demand model.

Time is split, never shuffled. The newest `backtest_folds` 28-day windows are
the backtest; the `tuning_folds` windows just before them are where Optuna
chooses hyper-parameters and where the interval calibration is fitted. So the
backtest scores a model whose every choice was made on earlier data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import optuna
import pandas as pd

from ecomarket_assets.forecasting import metrics
from ecomarket_assets.forecasting import model as dm
from ecomarket_assets.forecasting.features import (
    HORIZON,
    EmbeddingBasis,
    PanelSums,
    build_features,
    forecast_rows,
    training_rows,
)
from ecomarket_assets.forecasting.panel import SalesPanel

MIN_TRAIN_DAYS = 42


@dataclass(frozen=True)
class FoldPlan:
    tuning_origins: list[int]
    backtest_origins: list[int]
    horizon: int = HORIZON

    def describe(self, panel: SalesPanel) -> pd.DataFrame:
        rows = [("tuning", o) for o in self.tuning_origins] + [("backtest", o) for o in self.backtest_origins]
        return pd.DataFrame({
            "role": [r for r, _ in rows],
            "train_until": [panel.days[o].date() for _, o in rows],
            "forecast_from": [panel.days[o + 1].date() for _, o in rows],
            "forecast_to": [panel.days[o + self.horizon].date() for _, o in rows],
        })


def plan_folds(n_days: int, backtest_folds: int = 2, tuning_folds: int = 2, horizon: int = HORIZON,
               min_train_days: int = MIN_TRAIN_DAYS) -> FoldPlan:
    """Non-overlapping 28-day windows ending at the last day: backtest newest, tuning before it."""
    last = n_days - 1
    origins = [last - horizon * k for k in range(backtest_folds + tuning_folds, 0, -1)]
    usable = [o for o in origins if o + 1 >= min_train_days]
    backtest = origins[tuning_folds:]
    tuning = [o for o in origins[:tuning_folds] if o in usable]
    if not tuning or any(o not in usable for o in backtest):
        need = min_train_days + horizon * (backtest_folds + 1)
        raise ValueError(f"demand history has {n_days} days; rolling-origin tuning and backtest need at least {need}")
    return FoldPlan(tuning, backtest, horizon)


@dataclass
class TrainingSet:
    """Feature rows for every product-day of the panel (one random horizon each) and their targets."""

    features: pd.DataFrame
    target: np.ndarray
    product_index: np.ndarray
    target_day: np.ndarray
    horizon: np.ndarray

    def until(self, origin: int) -> tuple[pd.DataFrame, np.ndarray]:
        """Rows whose target day is at most `origin`: everything a model trained at `origin` may see."""
        keep = self.target_day <= origin
        return self.features[keep].reset_index(drop=True), self.target[keep]


def make_training_set(panel: SalesPanel, basis: EmbeddingBasis | None, seed: int = 0,
                      cumulative: PanelSums | None = None) -> TrainingSet:
    p, d, h = training_rows(panel, panel.units.shape[1] - 1, seed=seed)
    features = build_features(panel, p, d, h, basis, cumulative)
    return TrainingSet(features, panel.units[p, d], p, d, h)


@dataclass
class FoldData:
    """What a model must forecast at one origin: feature rows and the actuals."""

    origin: int
    products: np.ndarray  # panel row indexes, (P_f,)
    features: pd.DataFrame  # P_f * horizon rows, product-major
    actual: np.ndarray  # (P_f, horizon)


def fold_data(panel: SalesPanel, origin: int, basis: EmbeddingBasis | None,
              cumulative: PanelSums | None = None, horizon: int = HORIZON) -> FoldData:
    p, d, h = forecast_rows(panel, origin, horizon=horizon)
    products = np.unique(p)
    features = build_features(panel, p, d, h, basis, cumulative)
    return FoldData(origin, products, features, panel.units[p, d].reshape(len(products), horizon))


SearchSpace = Callable[[optuna.Trial], tuple[dict, int]]


def default_search_space(trial: optuna.Trial) -> tuple[dict, int]:
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 15, 255, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 400, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        "tweedie_variance_power": trial.suggest_float("tweedie_variance_power", 1.05, 1.7),
    }
    return params, trial.suggest_int("num_boost_round", 100, 700, step=50)


_TUNED = ("learning_rate", "num_leaves", "min_data_in_leaf", "feature_fraction", "bagging_fraction", "lambda_l2",
          "tweedie_variance_power")


@dataclass
class Tuning:
    params: dict
    rounds: int
    best_wape: float
    trials: pd.DataFrame
    fold_metrics: pd.DataFrame
    calibration: dm.IntervalCalibration
    seconds: float
    study: optuna.Study = field(repr=False, default=None)


def tune(train: TrainingSet, folds: list[FoldData], n_trials: int = 20, timeout: float | None = None,
         seed: int = 7, search_space: SearchSpace = default_search_space,
         progress: Callable[[str], None] | None = None) -> Tuning:
    """Optuna TPE on mean WAPE over the tuning folds; then calibrate intervals on the same folds.

    `progress` gets one line per finished trial (n/N, its WAPE or why it stopped, the best so far, seconds), so
    a run log shows where a long tuning is."""
    start = time.perf_counter()
    categories = sorted(train.features["category"].astype(str).unique())
    fold_train = [train.until(f.origin) for f in folds]

    def objective(trial: optuna.Trial) -> float:
        params, rounds = search_space(trial)
        scores = []
        for step, (fold, (x, y)) in enumerate(zip(folds, fold_train, strict=True)):
            booster = dm.fit_mean(x, y, params, rounds, categories)
            frame = fold.features.copy()
            frame["category"] = pd.Categorical(frame["category"].astype(str), categories=categories)
            forecast = np.maximum(booster.predict(frame), 0).reshape(fold.actual.shape)
            scores.append(metrics.wape(fold.actual, forecast))
            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        for fold, score in zip(folds, scores, strict=True):
            trial.set_user_attr(f"wape_origin_{fold.origin}", score)
        return float(np.mean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
    study.enqueue_trial({**{k: v for k, v in dm.BASE_PARAMS.items() if k in _TUNED}, "num_boost_round": 300})
    callbacks = [_trial_reporter(progress, n_trials)] if progress is not None else None
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks)
    best = study.best_trial
    rounds = int(best.params["num_boost_round"])
    params = {k: v for k, v in best.params.items() if k != "num_boost_round"}
    fold_rows, lows, highs, actuals, means = [], [], [], [], []
    for fold, (x, y) in zip(folds, fold_train, strict=True):
        fitted = dm.fit(x, y, params, rounds)
        raw = fitted.raw_quantiles(fold.features)
        mean = fitted.predict(fold.features)["forecast"].to_numpy().reshape(fold.actual.shape)
        lows.append(raw[0.1]), highs.append(raw[0.9]), actuals.append(fold.actual.ravel()), means.append(mean.ravel())
        fold_rows.append({"origin": fold.origin, "train_rows": len(y), "wape": metrics.wape(fold.actual, mean),
                          "bias": metrics.bias(fold.actual, mean),
                          "raw_coverage_p10_p90": dm.coverage(fold.actual.ravel(), raw[0.1], raw[0.9])})
    calibration = dm.calibrate(np.concatenate(lows), np.concatenate(highs), np.concatenate(actuals))
    calibration.level = dm.level_factor(np.concatenate(actuals), np.concatenate(means))
    return Tuning(params, rounds, float(best.value), _trials_frame(study), pd.DataFrame(fold_rows), calibration,
                  time.perf_counter() - start, study)


def _trial_reporter(progress: Callable[[str], None], n_trials: int) -> Callable:
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        outcome = f"WAPE {trial.value:.4f}" if trial.value is not None else trial.state.name.lower()
        done = [t for t in study.trials if t.value is not None]
        best = f", best {min(t.value for t in done):.4f}" if done else ""
        progress(f"Optuna trial {trial.number + 1}/{n_trials}: {outcome}{best} ({seconds:.0f} s)")

    return report


def _trials_frame(study: optuna.Study) -> pd.DataFrame:
    frame = study.trials_dataframe(attrs=("number", "value", "state", "duration", "params", "user_attrs"))
    frame["duration"] = frame["duration"].dt.total_seconds()
    return frame.rename(columns=lambda c: c.removeprefix("params_"))


def fit_final(train: TrainingSet, tuning: Tuning, basis: EmbeddingBasis | None, origin: int | None = None,
              trainer: dm.Trainer | None = None) -> dm.DemandModel:
    """The model trained on everything up to `origin` (default: the whole history), by `trainer`."""
    x, y = train.until(origin if origin is not None else int(train.target_day.max()))
    return dm.fit(x, y, tuning.params, tuning.rounds, basis=basis, calibration=tuning.calibration, trainer=trainer)
