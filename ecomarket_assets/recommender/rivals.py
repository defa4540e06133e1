"""Repeat-aware rules the ranker must beat: most of a shop's next purchases are products its customers bought before.

- own history, then popular: the customer's own past products by purchase days, recency-weighted, then the
  most popular products (what a shop without a model would send);
- TIFU-KNN (Hu et al., SIGIR 2020), in the form the stored history allows: each customer's vector is their
  recency-weighted purchase frequency per product, blended with the mean vector of the `neighbours` most
  similar customers (cosine). The paper decays each basket; here a product's weight decays with the days
  since it was last bought, because the history keeps purchase days and the last purchase per product.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ecomarket_assets.recommender.interactions import Interactions

HALF_LIFE_DAYS = 60.0
NEIGHBOURS = 100
ALPHA = 0.7  # weight of the customer's own vector against the neighbours' mean


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


def tifu_knn(inter: Interactions, rows: np.ndarray, neighbours: int = NEIGHBOURS, alpha: float = ALPHA) -> np.ndarray:
    """Users (rows; -1 = cold, all zeros) x items: alpha x own vector + (1 - alpha) x the neighbours' mean."""
    vectors = repeat_vectors(inter)
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    unit = sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ vectors
    own = inter.rows_of(unit, rows)
    similarity = (own @ unit.T).toarray()
    known = rows >= 0
    similarity[np.flatnonzero(known), rows[known]] = -np.inf  # a customer is not their own neighbour
    k = min(neighbours, max(similarity.shape[1] - 1, 1))
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    weights = np.take_along_axis(similarity, nearest, axis=1)
    weights = np.where(np.isfinite(weights) & (weights > 0), 1.0 / k, 0.0)
    mixer = sparse.csr_matrix((weights.ravel(), (np.repeat(np.arange(len(rows)), k), nearest.ravel())),
                              shape=(len(rows), unit.shape[0]))
    blended = alpha * own.toarray() + (1 - alpha) * (mixer @ unit).toarray()
    return blended.astype(np.float32)
