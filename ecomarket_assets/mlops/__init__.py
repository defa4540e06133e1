"""MLflow tracking and model-registry helpers shared by the forecaster and the recommender."""
