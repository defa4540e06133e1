"""Scoring recommender versions on the hold-out candidates, for the champion/challenger decision."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecomarket_assets.mlops.promotion import MetricRule, PromotionPolicy
from ecomarket_assets.recommender import evaluation as ev
from ecomarket_assets.recommender.metrics import ndcg_at_k, recall_at_k
from ecomarket_assets.recommender.rerank import top_by_score

# NDCG@10 decides; recall@10 and the cold users' NDCG@10 must not drop by more than these.
POLICY = PromotionPolicy(
    primary=MetricRule("ndcg@10", higher_is_better=True),
    guards=(MetricRule("recall@10", higher_is_better=True, tolerance=0.03),
            MetricRule("cold_ndcg@10", higher_is_better=True, tolerance=0.02, absolute=True)),
    margin=0.01,
)


def score_version(candidates: pd.DataFrame, scores: np.ndarray, labels: pd.DataFrame) -> dict[str, float]:
    """Metrics of one version's scores over the hold-out buyers (all, and the cold ones)."""
    truth = labels.groupby("user_id")["product_id"].agg(set)
    lists = ev.lists_from_rows(top_by_score(candidates.assign(score=scores), ev.K)).reindex(truth.index)
    ranked = [r if isinstance(r, list) else [] for r in lists]
    cold_users = set(candidates.loc[candidates["user_items"] == 0, "user_id"])
    cold = [i for i, user in enumerate(truth.index) if user in cold_users]
    ndcg = np.array([ndcg_at_k(r, t, 10) for r, t in zip(ranked, truth, strict=True)])
    return {
        "ndcg@10": float(ndcg.mean()) if len(ndcg) else float("nan"),
        "recall@10": float(np.mean([recall_at_k(r, t, 10) for r, t in zip(ranked, truth, strict=True)])),
        "cold_ndcg@10": float(ndcg[cold].mean()) if cold else float("nan"),
        "buyers": float(len(truth)),
        "cold_buyers": float(len(cold)),
    }
