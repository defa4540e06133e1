"""Monitoring: data and prediction drift between a reference and a current snapshot of an asset."""
