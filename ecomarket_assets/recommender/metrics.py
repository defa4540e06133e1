"""Top-K ranking metrics with binary relevance (bought in the hold-out window or not).

Definitions follow Microsoft Recommenders' `python_evaluation`: NDCG with log2
discounts and an ideal DCG over min(K, relevant) items; MAP@K divides by
min(K, relevant); recall divides by all relevant items, so candidate misses count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DISCOUNTS = 1.0 / np.log2(np.arange(2, 202))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k highest scores, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _hits(recommended: Sequence[str], relevant: set[str], k: int) -> np.ndarray:
    return np.array([item in relevant for item in list(recommended)[:k]], dtype=float)


def ndcg_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    hits = _hits(recommended, relevant, k)
    dcg = float((hits * DISCOUNTS[: len(hits)]).sum())
    ideal = float(DISCOUNTS[: min(k, len(relevant))].sum())
    return dcg / ideal


def recall_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    return float(_hits(recommended, relevant, k).sum() / len(relevant)) if relevant else 0.0


def average_precision_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    hits = _hits(recommended, relevant, k)
    if not relevant or not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / min(k, len(relevant)))


def graded_ndcg_at_k(recommended: Sequence[str], gains: pd.Series, k: int) -> float:
    """NDCG against graded truth (e.g. a simulated shop's true affinity of each product for the user)."""
    got = gains.reindex(list(recommended)[:k]).fillna(0.0).to_numpy()
    ideal = np.sort(gains.to_numpy())[::-1][:k]
    idcg = float((ideal * DISCOUNTS[: len(ideal)]).sum())
    return float((got * DISCOUNTS[: len(got)]).sum() / idcg) if idcg > 0 else 0.0


def score_lists(lists: pd.Series, truth: pd.Series, popularity: pd.Series, n_catalog: int) -> dict[str, float]:
    """All metrics for one method. `lists`: user -> ranked product ids; `truth`: user -> set of bought ids;
    `popularity`: product -> share of history users who interacted (for novelty)."""
    users = truth.index
    ranked = lists.reindex(users).apply(lambda v: list(v) if isinstance(v, list | np.ndarray) else [])
    pairs = list(zip(ranked, truth, strict=True))
    shown = {item for items in ranked for item in items[:10]}
    seen_share = popularity.reindex(list(shown)).fillna(0.0)
    novelty_items = [item for items in ranked for item in items[:10]]
    share = popularity.reindex(novelty_items).fillna(0.0).clip(lower=1.0 / max(len(users), 1)).to_numpy()
    return {
        "users": len(users),
        "recall@10": float(np.mean([recall_at_k(r, t, 10) for r, t in pairs])),
        "recall@20": float(np.mean([recall_at_k(r, t, 20) for r, t in pairs])),
        "ndcg@10": float(np.mean([ndcg_at_k(r, t, 10) for r, t in pairs])),
        "map@10": float(np.mean([average_precision_at_k(r, t, 10) for r, t in pairs])),
        "hit_rate@10": float(np.mean([_hits(r, t, 10).any() for r, t in pairs])),
        "catalog_coverage@10": len(shown) / max(n_catalog, 1),
        "novelty@10": float(np.mean(-np.log2(share))) if len(share) else 0.0,
        "never_seen_share@10": float((seen_share == 0).mean()) if len(seen_share) else 0.0,
    }


def category_diversity(lists: pd.Series, category_of: pd.Series, k: int = 10) -> float:
    """Mean number of distinct categories in each top-k list."""
    counts = [len({category_of.get(item) for item in list(items)[:k]}) for items in lists]
    return float(np.mean(counts)) if counts else 0.0
