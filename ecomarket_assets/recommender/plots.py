"""Figures for the recommender assets' metadata and MLflow runs (Matplotlib imported on first use)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecomarket_assets import metadata as md


def importance_figure(importance: pd.DataFrame):
    return md.importance_figure(importance, "recommender: feature importance")


def importance(frame: pd.DataFrame):
    return md.plot(importance_figure(frame))


def evaluation_figure(table: pd.DataFrame, metrics: tuple[str, ...] = ("ndcg@10", "recall@20", "map@10")):
    """Grouped bars: each method's metrics for all hold-out buyers and for the cold ones."""
    groups = [g for g in ("all", "cold") if (table["users_group"] == g).any()]
    fig, axes = md.pyplot().subplots(1, len(groups), figsize=(5.5 * len(groups), 3.4), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        part = table[table["users_group"] == group].set_index("method")
        x = np.arange(len(part))
        width = 0.8 / len(metrics)
        for i, metric in enumerate(metrics):
            ax.bar(x + i * width, part[metric], width, label=metric)
        ax.set_xticks(x + width * (len(metrics) - 1) / 2, part.index, rotation=25, ha="right")
        users = int(part["users"].iloc[0]) if len(part) else 0
        ax.set(title=f"hold-out, {group} users ({users})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def evaluation(table: pd.DataFrame):
    return md.plot(evaluation_figure(table))
