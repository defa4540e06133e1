"""MLflow models-from-code entry for `recommender` (see mlops/lifecycle.py): no pickled class."""

from mlflow.models import set_model

from ecomarket_assets.recommender.ranker import RecommenderRanker

set_model(RecommenderRanker())
