"""When `demand_model` searches hyper-parameters again, and when it refits with the last search's choices.

A search (Optuna over rolling-origin folds) costs many fits; a warm retrain costs one trial and a fit. Tuned
tree shapes age slowly, so a weekly retrain reuses them (their rounds and interval calibration found again on
today's folds, `training.warm_tuning`) until they are `retune_days` of data old, the feature set changed, or
demand's level moved far from what they were tuned on (a cheap drift alarm).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from ecomarket_assets.forecasting.panel import SalesPanel

MODES = ("auto", "full", "warm")
LEVEL_SHIFT = 0.5  # |log(units per day now / at tuning)| above this (x1.65 or /1.65) asks for a new search
RECENT_DAYS = 28


@dataclass(frozen=True)
class TuningChoice:
    mode: str  # full | warm
    reason: str


def recent_units_per_day(panel: SalesPanel, days: int = RECENT_DAYS) -> float:
    return float(np.nansum(panel.units[:, -days:]) / min(days, panel.units.shape[1]))


def choose(requested: str, saved: dict | None, panel: SalesPanel, feature_names: list[str],
           retune_days: int) -> TuningChoice:
    """`requested` is the run config's `tuning` (auto | full | warm); `saved` the last tuning record (or None)."""
    if requested not in MODES:
        raise ValueError(f"tuning must be one of {MODES}, got {requested!r}")
    if requested == "full":
        return TuningChoice("full", "asked for (tuning: full)")
    problem = _why_not_warm(saved, panel, feature_names, retune_days)
    if problem is None:
        age = (panel.days[-1].date() - dt.date.fromisoformat(saved["tuned_through"])).days
        return TuningChoice("warm", f"search of {saved['tuned_through']} is {age} days old (retune after {retune_days})")
    if requested == "warm":
        raise ValueError(f"tuning: warm is not possible: {problem}")
    return TuningChoice("full", problem)


def _why_not_warm(saved: dict | None, panel: SalesPanel, feature_names: list[str], retune_days: int) -> str | None:
    if saved is None or "tuned_through" not in saved:
        return "no earlier search recorded"
    age = (panel.days[-1].date() - dt.date.fromisoformat(saved["tuned_through"])).days
    if age < 0:
        return f"the last search ({saved['tuned_through']}) saw days this data does not have"
    if age >= retune_days:
        return f"the last search ({saved['tuned_through']}) is {age} days old (retune after {retune_days})"
    if saved.get("feature_names") != feature_names:
        return "the feature set changed since the last search"
    before, now = saved.get("units_per_day"), recent_units_per_day(panel)
    if before and now and abs(np.log(now / before)) > LEVEL_SHIFT:
        return f"demand level shifted: {now:.1f} units/day over the last {RECENT_DAYS} days, {before:.1f} at tuning"
    return None
