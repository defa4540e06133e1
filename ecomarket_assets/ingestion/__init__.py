"""Ingestion: source adapters, staging, validation and quarantine (no Dagster here)."""
