"""Figures for the text assets' metadata, drawn with matplotlib's Agg backend (no display).

So far the sentiment score histogram of review_insights; the embedding projection of
product_embeddings is still `embeddings.projection_plot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ecomarket_assets.text.sentiment import NEGATIVE_MAX, POSITIVE_MIN

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def score_histogram(scored: pd.DataFrame) -> Figure:
    """Matplotlib figure: distribution of sentiment scores, one panel per star rating."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratings = scored["rating"].astype("Float64")
    colours = {1: "tab:red", 2: "tab:red", 3: "tab:gray", 4: "tab:green", 5: "tab:green"}
    groups = [(f"{int(r)} stars", scored.loc[ratings == r, "sentiment_score"], colours.get(int(r), "tab:gray"))
              for r in sorted(ratings.dropna().unique())]
    if ratings.isna().any():
        groups.append(("no rating", scored.loc[ratings.isna(), "sentiment_score"], "tab:blue"))
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(2.2 * max(len(groups), 1) + 1, 2.6), sharex=True, squeeze=False)
    bins = np.linspace(0, 1, 21)
    for ax, (name, values, colour) in zip(axes[0], groups, strict=False):
        ax.hist(values, bins=bins, color=colour)
        ax.axvspan(NEGATIVE_MAX, POSITIVE_MIN, color="0.9", zorder=0)
        ax.set_title(f"{name} (n={len(values)})", fontsize=9)
        ax.set_xlabel("sentiment score", fontsize=8)
    axes[0][0].set_ylabel("reviews")
    fig.suptitle("Sentiment score by star rating (grey band = neutral)", fontsize=10)
    fig.tight_layout()
    return fig
