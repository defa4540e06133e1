"""Demand forecasting: plain logic behind the forecasting assets."""
