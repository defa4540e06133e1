"""Where the forecasting assets keep their files under the data directory."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ecomarket_assets.forecasting.calendar import calendar_from_frame
from ecomarket_assets.forecasting.features import EmbeddingBasis
from ecomarket_assets.forecasting.forecast import rising_products
from ecomarket_assets.forecasting.panel import SalesPanel, panel_from_long
from ecomarket_assets.forecasting.training import Tuning
from ecomarket_assets.storage import DataLayout, read_frame

MODEL_NAME = "demand_forecaster"
EXPERIMENT = "demand_forecasting"


class ForecastStore:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout
        self.training = layout.root / "demand_training_set"
        self.model = layout.root / "demand_model"
        self.forecast = layout.root / "demand_forecast"
        self.backtest = layout.root / "demand_backtest"

    @property
    def panel_path(self) -> Path:
        return self.training / "panel.parquet"

    @property
    def calendar_path(self) -> Path:
        return self.training / "sales_calendar.parquet"

    @property
    def basis_path(self) -> Path:
        return self.training / "embedding_basis.npz"

    @property
    def tuning_path(self) -> Path:
        return self.model / "tuning.json"

    def read_panel(self) -> SalesPanel:
        if not self.panel_path.exists():
            raise FileNotFoundError(f"{self.panel_path} missing: materialize demand_training_set first")
        return panel_from_long(read_frame(self.panel_path), calendar_from_frame(read_frame(self.calendar_path)))

    def read_basis(self) -> EmbeddingBasis | None:
        return EmbeddingBasis.load(self.basis_path) if self.basis_path.exists() else None

    def write_tuning(self, tuning: Tuning, extra: dict) -> None:
        """What the backtest needs to replay the model's choices (all made on the tuning folds)."""
        self.model.mkdir(parents=True, exist_ok=True)
        payload = {"params": tuning.params, "rounds": tuning.rounds, "best_wape": tuning.best_wape,
                   "calibration": asdict(tuning.calibration), **extra}
        self.tuning_path.write_text(json.dumps(payload, indent=2, default=str))

    def last_tuning(self) -> dict | None:
        """The last recorded search (what a warm retrain reuses), or None."""
        return json.loads(self.tuning_path.read_text()) if self.tuning_path.exists() else None

    def optuna_storage(self) -> str | None:
        """SQLite beside the model files, so every search's trials stay queryable (`optuna-dashboard`); None
        (in memory) when the data directory is remote object storage, where SQLite cannot lock."""
        if not isinstance(self.model, Path):
            return None
        self.model.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.model / 'optuna.db'}"

    def read_tuning(self) -> dict:
        if not self.tuning_path.exists():
            raise FileNotFoundError(f"{self.tuning_path} missing: materialize demand_model first")
        return json.loads(self.tuning_path.read_text())


def tuning_from_dict(payload: dict, mode: str = "full") -> Tuning:
    from ecomarket_assets.forecasting.model import IntervalCalibration

    return Tuning(payload["params"], int(payload["rounds"]), float(payload["best_wape"]), pd.DataFrame(),
                  pd.DataFrame(), IntervalCalibration(**payload["calibration"]), 0.0, mode=mode)


def forecast_rising_ids(layout: DataLayout, top: int = 20) -> pd.Index | None:
    """Products the demand forecast expects to rise, or None when no forecast exists (it is optional downstream)."""
    store = ForecastStore(layout)
    path = store.forecast / "demand_forecast.parquet"
    if not path.exists() or not store.panel_path.exists():
        return None
    rising = rising_products(store.read_panel(), read_frame(path), top=top)
    return pd.Index(rising.loc[rising["change"] > 0, "product_id"].astype(str))
