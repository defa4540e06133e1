"""Figures for the forecasting assets' metadata and MLflow runs.

Matplotlib is imported on first use, not when Dagster loads the definitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.forecasting.panel import SalesPanel


def importance_figure(importance: pd.DataFrame):
    return md.importance_figure(importance, "demand model: feature importance")


def importance(importance_frame: pd.DataFrame):
    return md.plot(importance_figure(importance_frame))


def optuna_history_figure(trials: pd.DataFrame):
    done = trials[trials["state"] == "COMPLETE"]
    fig, ax = md.pyplot().subplots(figsize=(7, 3))
    ax.scatter(done["number"], done["value"], s=14, label="trial")
    ax.plot(done["number"], done["value"].cummin(), color="tab:red", label="best so far")
    ax.set(xlabel="trial", ylabel="mean WAPE over tuning folds", title="Optuna study")
    ax.legend()
    return fig


def optuna_history(trials: pd.DataFrame):
    return md.plot(optuna_history_figure(trials))


def history_and_forecast(panel: SalesPanel, total: pd.DataFrame, history_days: int = 90):
    fig, ax = md.pyplot().subplots(figsize=(9, 3))
    units = np.nansum(panel.units[:, -history_days:], axis=0)
    ax.plot(panel.days[-history_days:], units, color="black", lw=1, label="units sold")
    dates = pd.to_datetime(total["date"])
    ax.plot(dates, total["forecast"], color="tab:blue", label="forecast")
    ax.fill_between(dates, total["p10"], total["p90"], color="tab:blue", alpha=0.2, label="P10-P90")
    ax.set(title="all products: history and the next 28 days", ylabel="units")
    ax.legend()
    fig.autofmt_xdate()
    return md.plot(fig)


def top_products_figure(predictions: pd.DataFrame, top: int = 4):
    best = predictions.groupby("product_id")["actual"].sum().nlargest(top).index
    fig, axes = md.pyplot().subplots(len(best), 1, figsize=(9, 2.2 * len(best)), sharex=True, squeeze=False)
    for ax, product in zip(axes[:, 0], best, strict=True):
        rows = predictions[predictions["product_id"] == product].sort_values("date")
        dates = pd.to_datetime(rows["date"])
        ax.plot(dates, rows["actual"], color="black", lw=1, label="actual")
        ax.plot(dates, rows["lightgbm"], color="tab:blue", label="LightGBM")
        ax.fill_between(dates, rows["lightgbm_p10"], rows["lightgbm_p90"], color="tab:blue", alpha=0.2)
        ax.plot(dates, rows["seasonal_naive"], color="tab:orange", lw=0.8, label="seasonal naive")
        ax.plot(dates, rows["auto_ets"], color="tab:green", lw=0.8, label="AutoETS")
        ax.set_title(f"{product}", fontsize=9)
    axes[0, 0].legend(fontsize=7, ncol=4)
    fig.suptitle("backtest: actual vs forecast, top products")
    fig.autofmt_xdate()
    return fig


def top_products(predictions: pd.DataFrame):
    return md.plot(top_products_figure(predictions))
