"""Which model fills each prediction column for this shop, chosen on a validation cutoff, with calibrated totals.

`user_profiles` keeps BG/NBD + Gamma-Gamma as the default and lets the supervised model (`supervised`) take a
column only where it did better on the shop's own validation window: the `horizon` days before `as_of`, with
both models fitted on the days before that window (the supervised one on cutoffs whose own label windows end
before it, so no label it learns from overlaps the window it is judged on). Per column:

Candidates per column: BG/NBD, the supervised model, and their blend (the mean of the two predictions).

- churn_probability: churn AUC;
- predicted_purchases, predicted_clv: Spearman correlation with what each customer bought (marketing ranks
  customers by them); then their totals are scaled by real / predicted over the validation window, so the sum
  over customers is calibrated (BG/NBD has no season; the supervised model learns one only after a year).

The choice and the serving model are kept for `REFIT_DAYS` (`save` / `load`): the nights between two weekly
refits only predict with them, on that night's features.

Where the supervised model cannot be validated (less than about seven months of history: its training cutoffs
need their own 90 days of future before the validation cutoff), BG/NBD keeps every column and the choice says so.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.profiles import supervised

BG_NBD, LIGHTGBM, BLEND = "bg_nbd", "lightgbm", "blend"  # blend: the mean of the two models' predictions
MODELS = (BG_NBD, LIGHTGBM, BLEND)  # in this order of preference when two validate equally
MIN_VALIDATION_CUTOFFS = 3  # a supervised model on fewer past cutoffs validates a weaker model than it serves
# column -> (metric it is chosen by, the validation column it is compared with)
CHOICES = {"churn_probability": ("churn_auc", "no_purchase"), "predicted_purchases": ("spearman", "actual_purchases"),
           "predicted_clv": ("spearman", "actual_revenue")}
CALIBRATED = {"predicted_purchases": "actual_purchases", "predicted_clv": "actual_revenue"}
REFIT_DAYS = 7  # the choice and the serving model are kept this long: a night only predicts with them
SCALE_LIMITS = (0.5, 2.0)  # a validation window this far off says more about that window than about the model


@dataclass
class Selection:
    """The model per column, the calibration factor per total, and the validation figures behind both."""

    chosen: dict[str, str] = field(default_factory=lambda: dict.fromkeys(CHOICES, BG_NBD))
    scale: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CALIBRATED, 1.0))
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    note: str = ""

    @property
    def needs_supervised(self) -> bool:
        return any(model != BG_NBD for model in self.chosen.values())

    def describe(self) -> str:
        return ", ".join(f"{column}: {model}" for column, model in self.chosen.items())


def _metric(metric: str, predicted: pd.Series, actual: pd.Series) -> float:
    from sklearn.metrics import roc_auc_score

    valid = predicted.notna()
    if metric == "churn_auc":
        truth = actual[valid].astype(bool)
        return float(roc_auc_score(truth, predicted[valid])) if truth.nunique() == 2 else float("nan")
    return float(predicted[valid].corr(actual[valid], method="spearman"))


def choose(validation: pd.DataFrame, users: pd.DataFrame, cutoff: dt.date, horizon: int) -> Selection:
    """`validation`: BG/NBD fitted at `cutoff` and scored on the `horizon` days after it (`predictive.backtest`'s
    `scored`, one row per past buyer); `users`: the per-user daily table (only days up to `cutoff` are read)."""
    known = users[users["date"] <= cutoff.isoformat()]
    model = supervised.fit(known, cutoff, horizon)
    if model is not None and len(model.cutoffs) < MIN_VALIDATION_CUTOFFS:
        model = None
    scored = validation.set_index("user_id") if "user_id" in validation else validation
    candidates = {BG_NBD: scored[list(CHOICES)]}
    if model is not None:
        boosted = model.predict(known, cutoff).reindex(scored.index)[list(CHOICES)]
        candidates |= {LIGHTGBM: boosted, BLEND: (candidates[BG_NBD] + boosted) / 2}
    rows, chosen, scale = [], {}, {}
    for column, (metric, truth) in CHOICES.items():
        figures = {name: _metric(metric, frame[column], scored[truth]) for name, frame in candidates.items()}
        chosen[column] = max(figures, key=lambda name: (np.nan_to_num(figures[name], nan=-np.inf), -MODELS.index(name)))
        factor = 1.0
        if column in CALIBRATED:
            total = float(candidates[chosen[column]][column].sum())
            factor = float(np.clip(scored[truth].sum() / total, *SCALE_LIMITS)) if total > 0 else 1.0
            scale[column] = factor
        rows.append({"column": column, "metric": metric, **{name: figures.get(name, np.nan) for name in MODELS},
                     "chosen": chosen[column], "total_scale": factor})
    note = (f"validated on the {horizon} days after {cutoff}; supervised model on {len(model.cutoffs)} earlier cutoffs"
            if model is not None else
            f"BG/NBD everywhere: fewer than {MIN_VALIDATION_CUTOFFS} cutoffs before {cutoff} have {horizon} known "
            "days after them to train the supervised model on")
    return Selection(chosen, scale, pd.DataFrame(rows), note)


def fit_serving(selection: Selection, users: pd.DataFrame, as_of: dt.date,
                horizon: int) -> supervised.SupervisedModel | None:
    """The supervised model on every cutoff known at `as_of`, when a column chose it (alone or in the blend)."""
    if not selection.needs_supervised:
        return None
    model = supervised.fit(users[users["date"] <= as_of.isoformat()], as_of, horizon)
    if model is None:  # cannot happen after a successful validation (it saw less), but never serve NaN for it
        selection.chosen, selection.scale = dict.fromkeys(CHOICES, BG_NBD), dict.fromkeys(CALIBRATED, 1.0)
    return model


def apply(predictions: pd.DataFrame, selection: Selection, model: supervised.SupervisedModel | None,
          users: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """BG/NBD's `predictions` (one row per user_id) with the chosen columns from `model` (features as of
    `as_of`), and the totals of past buyers scaled. Never-buyers keep the rates observed for never-buyers."""
    out = predictions.set_index("user_id").copy()
    known = users[users["date"] <= as_of.isoformat()]
    buyers = out.index.intersection(known.loc[known["orders"] > 0, "user_id"].unique())
    if model is not None and selection.needs_supervised:
        boosted = model.predict(known, as_of).reindex(buyers)
        for column, model_name in selection.chosen.items():
            if model_name == LIGHTGBM:
                out.loc[buyers, column] = boosted[column].to_numpy()
            elif model_name == BLEND:
                out.loc[buyers, column] = (out.loc[buyers, column].to_numpy() + boosted[column].to_numpy()) / 2
    for column, factor in selection.scale.items():
        out.loc[buyers, column] = out.loc[buyers, column] * factor
    return out.reset_index()


# --------------------------------------------------------------------------- kept between nights


def save(folder: Path, selection: Selection, model: supervised.SupervisedModel | None, as_of: dt.date) -> None:
    """The choice and the serving model, so the nights until the next weekly refit only predict."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"as_of": as_of.isoformat(), "chosen": selection.chosen, "scale": selection.scale, "note": selection.note,
            "table": selection.table.to_dict(orient="records"), "model": None}
    if model is not None:
        meta["model"] = {"features": model.feature_names, "cutoffs": [c.isoformat() for c in model.cutoffs],
                         "rows": model.rows, "boosters": sorted(model.boosters)}
        for target, booster in model.boosters.items():
            (folder / f"{target}.txt").write_text(booster.model_to_string())
    (folder / "selection.json").write_text(json.dumps(meta, indent=2, default=float))


def load(folder: Path, as_of: dt.date, max_age_days: int = REFIT_DAYS
         ) -> tuple[Selection, supervised.SupervisedModel | None, dt.date] | None:
    """The kept choice and model when they were made at most `max_age_days` before `as_of` (never after it)."""
    import lightgbm as lgb

    path = folder / "selection.json"
    if not path.exists():
        return None
    meta = json.loads(path.read_text())
    made = dt.date.fromisoformat(meta["as_of"])
    if not 0 <= (as_of - made).days < max_age_days:
        return None
    selection = Selection(meta["chosen"], meta["scale"], pd.DataFrame(meta["table"]), meta["note"])
    model = None
    if meta["model"] is not None:
        spec = meta["model"]
        boosters = {t: lgb.Booster(model_str=(folder / f"{t}.txt").read_text()) for t in spec["boosters"]}
        model = supervised.SupervisedModel(boosters, spec["features"],
                                           [dt.date.fromisoformat(c) for c in spec["cutoffs"]], spec["rows"])
    return selection, model, made
