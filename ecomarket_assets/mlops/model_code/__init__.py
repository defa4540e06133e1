"""Models-from-code entry files that MLflow copies beside each logged model and runs at load time."""
