"""The time split and where the recommender assets keep their files under the data directory.

    <data>/rec_candidates/<set>.parquet      candidate rows per cutoff (train_1.., holdout, serving)
    <data>/rec_candidates/<set>_labels.parquet   purchases in each labelled set's window
    <data>/rec_candidates/plan.json          the cutoffs and the tuned EASE strength
    <data>/recommender_model/                the hold-out ranker (booster) and its description
    <data>/recommendations/recommendations.parquet   top-K per user with score, rank and reason
    <data>/rec_evaluation/metrics.parquet    the evaluation table (and against_truth.parquet where truth is known)
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ecomarket_assets.storage import DataLayout, read_frame

MODEL_NAME = "recommender"
EXPERIMENT = "recommender"
WINDOW_DAYS = 28


@dataclass(frozen=True)
class CutoffPlan:
    """Training cutoffs, then the hold-out cutoff (its window is the last `window_days` days), then serving.

    The model scored on the hold-out learns from `train` only; the model that serves learns from
    `train[1:] + [holdout]`, i.e. the same number of windows shifted by one, ending at the data's end.
    """

    train: tuple[dt.date, ...]
    holdout: dt.date
    serving: dt.date
    window_days: int

    @classmethod
    def for_last_day(cls, last_day: dt.date, window_days: int = WINDOW_DAYS, train_windows: int = 2) -> CutoffPlan:
        serving = last_day + dt.timedelta(days=1)
        holdout = serving - dt.timedelta(days=window_days)
        train = tuple(holdout - dt.timedelta(days=window_days * k) for k in range(train_windows, 0, -1))
        return cls(train, holdout, serving, window_days)

    def sets(self) -> dict[str, dt.date]:
        named = {f"train_{i + 1}": day for i, day in enumerate(self.train)}
        return {**named, "holdout": self.holdout, "serving": self.serving}

    def serving_training_sets(self) -> list[str]:
        return [f"train_{i + 1}" for i in range(1, len(self.train))] + ["holdout"]

    def describe(self) -> pd.DataFrame:
        rows = []
        for name, cutoff in self.sets().items():
            end = cutoff + dt.timedelta(days=self.window_days - 1)
            rows.append({"set": name, "history_until": str(cutoff - dt.timedelta(days=1)),
                         "labels": "-" if name == "serving" else f"{cutoff} .. {end}"})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return {k: [str(d) for d in v] if isinstance(v, tuple) else str(v) if isinstance(v, dt.date) else v
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, payload: dict) -> CutoffPlan:
        day = dt.date.fromisoformat
        return cls(tuple(day(d) for d in payload["train"]), day(payload["holdout"]), day(payload["serving"]),
                   int(payload["window_days"]))


class RecStore:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout
        self.candidates = layout.root / "rec_candidates"
        self.model = layout.root / "recommender_model"
        self.recommendations = layout.root / "recommendations"
        self.evaluation = layout.root / "rec_evaluation"

    def candidate_path(self, name: str) -> Path:
        return self.candidates / f"{name}.parquet"

    def read_candidates(self, name: str) -> pd.DataFrame:
        path = self.candidate_path(name)
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: materialize rec_candidates first")
        return read_frame(path)

    def labels_path(self, name: str) -> Path:
        return self.candidates / f"{name}_labels.parquet"

    def read_labels(self, name: str) -> pd.DataFrame:
        """Every purchase in the set's label window, including those no generator proposed."""
        return read_frame(self.labels_path(name))

    @property
    def plan_path(self) -> Path:
        return self.candidates / "plan.json"

    def write_plan(self, plan: CutoffPlan, extra: dict) -> None:
        self.candidates.mkdir(parents=True, exist_ok=True)
        self.plan_path.write_text(json.dumps({"plan": plan.to_dict(), **extra}, indent=2, default=str))

    def read_plan(self) -> tuple[CutoffPlan, dict]:
        if not self.plan_path.exists():
            raise FileNotFoundError(f"{self.plan_path} missing: materialize rec_candidates first")
        payload = json.loads(self.plan_path.read_text())
        return CutoffPlan.from_dict(payload.pop("plan")), payload

    @property
    def recommendations_path(self) -> Path:
        return self.recommendations / "recommendations.parquet"
