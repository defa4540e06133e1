"""Where the forecasting assets keep their files under the data directory."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.forecasting.calendar import calendar_from_frame
from ecomarket_assets.forecasting.features import EmbeddingBasis, with_product_features
from ecomarket_assets.forecasting.forecast import rising_products
from ecomarket_assets.forecasting.panel import SalesPanel, panel_from_long
from ecomarket_assets.forecasting.training import TrainingSet, Tuning
from ecomarket_assets.storage import DataLayout, read_frame

# Columns a stored feature row carries besides its row features (see refresh.py).
ROW_KEYS = ["product_id", "target_date"]
TARGET = "units"

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

    @property
    def state_path(self) -> Path:
        """What the incremental refresh has folded in: raw_events file signatures, stored rows per day."""
        return self.training / "refresh_state.json"

    def daily_path(self, day: str) -> Path:
        """`product_day_aggregates` of one raw_events day file."""
        return self.training / "daily" / f"date={day}.parquet"

    def rows_path(self, day: str) -> Path:
        """The stored feature rows whose target day is `day` (row features only, see features.row_features)."""
        return self.training / "rows" / f"date={day}.parquet"

    def stored_days(self, folder: str) -> list[str]:
        """Days with a file under `daily` or `rows`, oldest first."""
        return sorted(p.stem.removeprefix("date=") for p in (self.training / folder).glob("date=*.parquet"))

    def read_state(self) -> dict | None:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else None

    def read_training_set(self, panel: SalesPanel, basis: EmbeddingBasis | None) -> TrainingSet:
        """The stored feature rows as `make_training_set(panel, basis)` builds them: same rows, columns and order.

        Product columns and embeddings come from `panel` and `basis` now (they are not stored); rows are
        ordered by product, then target day.
        """
        days = self.stored_days("rows")
        if not days:
            raise FileNotFoundError(f"no feature rows under {self.training / 'rows'}: materialize demand_training_set")
        stored = pd.concat([read_frame(self.rows_path(d)) for d in days], ignore_index=True)
        p = pd.Index(panel.product_ids).get_indexer(stored["product_id"])
        d = (pd.to_datetime(stored["target_date"]) - panel.days[0]).dt.days.to_numpy()
        if (p < 0).any() or (d < 0).any() or (d >= len(panel.days)).any():
            raise ValueError("stored feature rows do not match the panel: materialize demand_training_set again")
        order = np.lexsort((d, p))
        rows = stored.drop(columns=[*ROW_KEYS, TARGET]).iloc[order].reset_index(drop=True)
        features = with_product_features(rows, panel, p[order], basis)
        return TrainingSet(features, stored[TARGET].to_numpy(dtype=float)[order], p[order], d[order],
                           rows["horizon"].to_numpy(dtype=np.int64))

    def read_features(self, panel: SalesPanel | None = None, basis: EmbeddingBasis | None = None) -> pd.DataFrame:
        """The training rows as one table: product_id, target_date, every model feature, units."""
        panel = panel if panel is not None else self.read_panel()
        train = self.read_training_set(panel, basis if basis is not None else self.read_basis())
        return training_table(panel, train)

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

    @property
    def final_model_path(self) -> Path:
        return self.model / "final_model"

    def write_final_model(self, model, trained_through: str) -> None:
        """The registered model's files, so the backtest scores it at its own origin instead of refitting it."""
        from ecomarket_assets.forecasting.serving import save_model

        save_model(model, self.final_model_path)
        (self.final_model_path / "trained_through.txt").write_text(trained_through)

    def read_final_model(self, trained_through: str):
        """The last `demand_model` fit if it learned from exactly the days up to `trained_through`, else None."""
        from ecomarket_assets.forecasting.serving import load_model

        stamp = self.final_model_path / "trained_through.txt"
        if not stamp.exists() or stamp.read_text().strip() != trained_through:
            return None
        return load_model(self.final_model_path)

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


def training_table(panel: SalesPanel, train: TrainingSet) -> pd.DataFrame:
    """A training set as one table: its keys (product_id, target_date), the features and the target."""
    frame = train.features.copy()
    frame.insert(0, "product_id", panel.product_ids[train.product_index])
    frame.insert(1, "target_date", panel.date_of(train.target_day).date)
    frame[TARGET] = train.target
    return frame


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
