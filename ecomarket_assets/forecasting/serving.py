"""The demand model as an MLflow pyfunc, so the registry decides which version serves.

The boosters are saved in LightGBM's own text format plus a JSON of what the
model needs around them (feature order, categories, interval calibration) and
the embedding basis, so a version loaded months later still builds features
the way it was trained.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import lightgbm as lgb
import mlflow
import pandas as pd

from ecomarket_assets.forecasting.features import EmbeddingBasis
from ecomarket_assets.forecasting.model import QUANTILES, DemandModel, IntervalCalibration

ARTIFACT = "demand_model"
BASIS_FILE = "embedding_basis.npz"


def save_model(model: DemandModel, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mean.txt").write_text(model.mean.model_to_string())  # via the path API: may be object storage
    for q, booster in model.quantiles.items():
        (folder / f"quantile_{q:.2f}.txt").write_text(booster.model_to_string())
    meta = {"categories": model.categories, "feature_names": model.feature_names,
            "calibration": asdict(model.calibration), "params": model.params, "quantiles": list(model.quantiles)}
    (folder / "model.json").write_text(json.dumps(meta, indent=2, default=float))
    if model.basis is not None:
        model.basis.save(folder / BASIS_FILE)
    return folder


def load_model(folder: Path) -> DemandModel:
    meta = json.loads((folder / "model.json").read_text())
    basis = EmbeddingBasis.load(folder / BASIS_FILE) if (folder / BASIS_FILE).exists() else None
    return DemandModel(
        mean=lgb.Booster(model_str=(folder / "mean.txt").read_text()),
        quantiles={float(q): lgb.Booster(model_str=(folder / f"quantile_{float(q):.2f}.txt").read_text())
                   for q in meta.get("quantiles", QUANTILES)},
        categories=meta["categories"],
        feature_names=meta["feature_names"],
        calibration=IntervalCalibration(**meta["calibration"]),
        basis=basis,
        params=meta["params"],
    )


class DemandForecaster(mlflow.pyfunc.PythonModel):
    """Feature rows in, `forecast`/`p10`/`p50`/`p90` out."""

    def load_context(self, context) -> None:
        self.model = load_model(Path(context.artifacts[ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.model.predict(pd.DataFrame(model_input))
