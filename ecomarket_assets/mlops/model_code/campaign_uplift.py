"""MLflow models-from-code entry for `campaign_uplift` (see mlops/lifecycle.py): no pickled class."""

from mlflow.models import set_model

from ecomarket_assets.campaigns.uplift import UpliftPyfunc

set_model(UpliftPyfunc())
