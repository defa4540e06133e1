"""The repeat-aware rules the ranker is scored against: known orders on a hand-made history."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy import sparse

from ecomarket_assets.recommender import rivals
from ecomarket_assets.recommender.interactions import Interactions


def _history() -> Interactions:
    """ann: product a on 3 days (last yesterday), b once 120 days ago; bob: a and c; cid: d only."""
    days = sparse.csr_matrix(np.array([[3, 1, 0, 0], [2, 0, 4, 0], [0, 0, 0, 5]], dtype=np.float32))
    last = sparse.csr_matrix(np.array([[2, 121, 0, 0], [5, 0, 3, 0], [0, 0, 0, 10]], dtype=np.float32))
    return Interactions(cutoff=dt.date(2025, 3, 31), users=pd.Index(["ann", "bob", "cid"]),
                        items=pd.Index(["a", "b", "c", "d"]), engagement=days.copy(), purchase_days=days,
                        views=sparse.csr_matrix(days.shape), last_seen=last.copy(), last_bought=last,
                        unknown_product_rows=0, pairs=pd.DataFrame())


def _order(scores: np.ndarray, items: pd.Index) -> list[str]:
    return list(items[np.argsort(-scores, kind="stable")])


def test_repeat_vectors_weigh_purchase_days_by_recency():
    vectors = rivals.repeat_vectors(_history()).toarray()
    assert vectors[0, 0] == np.float32(3 * 0.5 ** (1 / rivals.HALF_LIFE_DAYS))
    assert vectors[0, 1] == np.float32(0.5 ** (120 / rivals.HALF_LIFE_DAYS))  # one purchase, two half-lives ago
    assert vectors[0, 2] == 0 and vectors[2, 3] > 0


def test_own_history_comes_first_then_the_popular_order():
    inter = _history()
    popular = np.tile(np.array([0.1, 0.2, 0.3, 0.9], dtype=np.float32), (4, 1))
    scores = rivals.own_then_popular(inter, np.array([0, 1, 2, -1]), popular)
    assert _order(scores[0], inter.items) == ["a", "b", "d", "c"]  # own a (recent, often) > own b > popular d > c
    assert _order(scores[1], inter.items) == ["c", "a", "d", "b"]  # c: 4 days 2 days ago beats a: 2 days 4 days ago
    assert _order(scores[3], inter.items) == ["d", "c", "b", "a"]  # a cold customer gets the popular order


def test_tifu_knn_adds_what_similar_customers_bought():
    inter = _history()
    scores = rivals.tifu_knn(inter, np.array([0, -1]), rivals.TifuSettings(1, 0.7))
    ann = scores[0]
    assert _order(ann, inter.items)[:2] == ["a", "c"]  # bob (ann's nearest: both bought a) adds c
    assert ann[1] > 0  # b still scores from ann's own history
    assert ann[3] == 0  # nobody like ann bought d
    assert not scores[1].any()  # cold: nothing to say (the evaluation falls back to popular)
    own_only = rivals.tifu_knn(inter, np.array([0]), rivals.TifuSettings(1, 1.0))[0]
    assert own_only[2] == 0 and own_only[0] > own_only[1] > 0


def test_tune_tifu_picks_the_blend_that_ranks_the_window_best():
    """In the window ann buys c (only her neighbour bob had) and bob buys a (only ann's habit): both are
    ranked first only when the neighbours weigh most, so alpha 0.1 must win over 0.9, listed first."""
    labels = pd.DataFrame({"user_id": ["ann", "bob", "zoe"], "product_id": ["c", "a", "a"]})  # zoe: not in history
    chosen, grid = rivals.tune_tifu(_history(), labels, neighbours_grid=(1,), alpha_grid=(0.9, 0.1))
    assert chosen == rivals.TifuSettings(1, 0.1)
    assert grid["k=1, alpha=0.1"] == 1.0
    assert grid["k=1, alpha=0.9"] < 0.7  # each buyer's product second: 1 / log2(3)
