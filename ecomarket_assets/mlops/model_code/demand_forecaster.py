"""MLflow models-from-code entry for `demand_forecaster` (see mlops/lifecycle.py): no pickled class."""

from mlflow.models import set_model

from ecomarket_assets.forecasting.serving import DemandForecaster

set_model(DemandForecaster())
