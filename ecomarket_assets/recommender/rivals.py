"""Repeat-aware rules the ranker must beat: most of a shop's next purchases are products its customers bought before.

- own history, then popular: the customer's own past products by purchase days, recency-weighted, then the
  most popular products (what a shop without a model would send);
- TIFU-KNN (Hu et al., SIGIR 2020), in the form the stored history allows: each customer's vector is their
  recency-weighted purchase frequency per product, blended with the mean vector of the `neighbours` most
  similar customers (cosine). The paper decays each basket; here a product's weight decays with the days
  since it was last bought, because the history keeps purchase days and the last purchase per product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from ecomarket_assets.recommender.interactions import Interactions

HALF_LIFE_DAYS = 60.0
NEIGHBOURS_GRID = (50, 100, 300, 1000)
ALPHA_GRID = (0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class TifuSettings:
    """The nearest `neighbours` customers; `alpha` weighs the customer's own vector against their mean."""

    neighbours: int = 100
    alpha: float = 0.7

    def describe(self) -> str:
        return f"k={self.neighbours}, alpha={self.alpha}"


def repeat_vectors(inter: Interactions) -> sparse.csr_matrix:
    """Users x items: purchase days x 0.5 ** (days since the last purchase / half-life)."""
    bought = inter.purchase_days.tocsr()
    last = inter.last_bought.tocsr()
    decay = last.copy()
    decay.data = 0.5 ** ((decay.data - 1.0) / HALF_LIFE_DAYS)
    return bought.multiply(decay).tocsr().astype(np.float32)


def own_then_popular(inter: Interactions, rows: np.ndarray, popular: np.ndarray) -> np.ndarray:
    """Scores whose order is: own past products (by recency-weighted purchase days), then `popular`'s order."""
    own = inter.rows_of(repeat_vectors(inter), rows).toarray()
    top = np.maximum(own.max(axis=1, keepdims=True), 1e-12)
    fill = popular / (np.abs(popular).max(axis=1, keepdims=True) + 1e-12)  # in [-1, 1]: below every own product
    return np.where(own > 0, 2.0 + own / top, fill).astype(np.float32)


def unit_rows(vectors: sparse.csr_matrix) -> sparse.csr_matrix:
    """Each user's vector scaled to length 1 (zero rows stay zero): cosine similarity is then a dot product."""
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    return (sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ vectors).tocsr().astype(np.float32)


def neighbour_similarity(unit: sparse.csr_matrix, inter: Interactions, rows: np.ndarray) -> np.ndarray:
    """Users (rows) x history users: cosine similarity, with each user's own column at -inf."""
    similarity = (inter.rows_of(unit, rows) @ unit.T).toarray()
    known = rows >= 0
    similarity[np.flatnonzero(known), rows[known]] = -np.inf  # a customer is not their own neighbour
    return similarity


def neighbour_mean(similarity: np.ndarray, unit: sparse.csr_matrix, neighbours: int) -> np.ndarray:
    """The mean unit vector of each row's `neighbours` most similar users (those with similarity > 0)."""
    k = min(neighbours, max(similarity.shape[1] - 1, 1))
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    weights = np.take_along_axis(similarity, nearest, axis=1)
    weights = np.where(np.isfinite(weights) & (weights > 0), 1.0 / k, 0.0)
    mixer = sparse.csr_matrix((weights.ravel(), (np.repeat(np.arange(len(similarity)), k), nearest.ravel())),
                              shape=(len(similarity), unit.shape[0]))
    return (mixer @ unit).toarray()


def tifu_scores(unit: sparse.csr_matrix, inter: Interactions, rows: np.ndarray, settings: TifuSettings) -> np.ndarray:
    """Users (rows; -1 = cold, all zeros) x items: alpha x own unit vector + (1 - alpha) x the neighbours' mean."""
    own = inter.rows_of(unit, rows).toarray()
    others = neighbour_mean(neighbour_similarity(unit, inter, rows), unit, settings.neighbours)
    return (settings.alpha * own + (1 - settings.alpha) * others).astype(np.float32)


def tifu_knn(inter: Interactions, rows: np.ndarray, settings: TifuSettings | None = None) -> np.ndarray:
    return tifu_scores(unit_rows(repeat_vectors(inter)), inter, rows, settings or TifuSettings())


def tune_tifu(inter: Interactions, labels: pd.DataFrame, neighbours_grid: tuple[int, ...] = NEIGHBOURS_GRID,
              alpha_grid: tuple[float, ...] = ALPHA_GRID) -> tuple[TifuSettings, dict[str, float]]:
    """TIFU-KNN's two settings, chosen by NDCG@10 on one window before the hold-out (never on it), so the rival
    the ranker is compared with, and the feature it reads, are at their strongest for this shop.

    `inter` is the history before the window's cutoff, `labels` what was bought in the window (`label_rows`).
    """
    from ecomarket_assets.recommender.metrics import ndcg_at_k, top_k

    labels = labels[labels["user_id"].isin(inter.users)]
    users = pd.Index(labels["user_id"].unique())
    truth = labels.groupby("user_id")["product_id"].apply(set).reindex(users)
    if not len(users):
        return TifuSettings(), {}
    rows = inter.user_rows(users)
    unit = unit_rows(repeat_vectors(inter))
    own = inter.rows_of(unit, rows).toarray()
    similarity = neighbour_similarity(unit, inter, rows)
    items = inter.items.to_numpy()
    scored: dict[TifuSettings, float] = {}
    for neighbours in neighbours_grid:
        others = neighbour_mean(similarity, unit, neighbours)
        for alpha in alpha_grid:
            picks = items[top_k(alpha * own + (1 - alpha) * others, 10)]
            scored[TifuSettings(neighbours, alpha)] = float(np.mean(
                [ndcg_at_k(list(p), t, 10) for p, t in zip(picks, truth, strict=True)]))
    return max(scored, key=scored.get), {s.describe(): v for s, v in scored.items()}
