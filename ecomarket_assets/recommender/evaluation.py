"""The hold-out comparison: the ranker (raw and as served) against the baselines it must beat.

Every method ranks products for the same users (everyone who bought in the
hold-out window) from the same history (everything before its cutoff). The
baselines rank the whole catalog; a baseline that has nothing to say about a
user (item-kNN or EASE for a cold user) falls back to most-popular, as any shop
would run it, so the comparison is against the strongest simple version.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecomarket_assets.recommender import rivals
from ecomarket_assets.recommender.generators import FittedGenerators, score_batch
from ecomarket_assets.recommender.metrics import (
    category_diversity,
    graded_ndcg_at_k,
    ndcg_at_k,
    score_lists,
    top_k,
)

BASELINES = {"most_popular": "popular", "item_knn": "item_knn", "ease": "ease", "own_then_popular": "own_then_popular",
             "tifu_knn": "tifu_knn"}  # method -> generator (the last two: the repeat-aware rules of rivals.py; TIFU-KNN with
# the settings tuned on the shop's tuning window, as the ranker's generator uses them)
MODEL = "ranker"
SERVED = "ranker_served"  # after filters and the MMR re-rank
K = 20


def baseline_lists(gen: FittedGenerators, users: pd.Index, k: int = K) -> dict[str, pd.Series]:
    batch = score_batch(gen, users)
    popular = batch.scores["popular"]
    items = gen.inter.items.to_numpy()
    rivals_of = {"own_then_popular": lambda: rivals.own_then_popular(gen.inter, batch.rows, popular)}
    lists = {}
    for method, generator in BASELINES.items():
        scores = np.array(rivals_of[generator]() if generator in rivals_of else batch.scores[generator], dtype=np.float32)
        empty = scores.max(axis=1) <= 0
        scores[empty] = popular[empty]
        lists[method] = pd.Series(list(items[top_k(scores, k)]), index=users)
    return lists


def lists_from_rows(rows: pd.DataFrame) -> pd.Series:
    """user -> product ids in `rank` order."""
    return rows.sort_values(["user_id", "rank"]).groupby("user_id", sort=False)["product_id"].agg(list)


def evaluation_table(lists: dict[str, pd.Series], truth: pd.Series, cold_users: pd.Index, popularity: pd.Series,
                     n_catalog: int, category_of: pd.Series) -> pd.DataFrame:
    """One row per (method, users): all buyers of the hold-out window, and the cold ones among them."""
    rows = []
    for group, users in (("all", truth.index), ("cold", truth.index.intersection(cold_users))):
        for method, ranked in lists.items():
            picked = ranked.reindex(users)
            metrics = score_lists(picked, truth.reindex(users), popularity, n_catalog) if len(users) else {"users": 0}
            metrics["categories@10"] = category_diversity(picked.dropna(), category_of)
            rows.append({"method": method, "users_group": group, **metrics})
    return pd.DataFrame(rows)


def mean_ndcg(lists: pd.Series, truth: pd.Series, k: int = 10) -> float:
    ranked = lists.reindex(truth.index)
    return float(np.mean([ndcg_at_k(r if isinstance(r, list) else [], t, k) for r, t in zip(ranked, truth, strict=True)]))


def truth_table(lists: dict[str, pd.Series], affinity: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """Simulator only: how close each method's top-k is to the products each user truly prefers."""
    by_user = {u: g.set_index("product_id")["affinity"] for u, g in affinity.groupby("user_id")}
    rows = []
    for method, ranked in lists.items():
        ndcg, overlap = [], []
        for user, items in ranked.items():
            gains = by_user.get(user)
            if gains is None:
                continue
            ndcg.append(graded_ndcg_at_k(items, gains, k))
            best = set(gains.nlargest(k).index)
            overlap.append(len(best.intersection(list(items)[:k])) / k)
        rows.append({"method": method, "users": len(ndcg), "true_ndcg@10": float(np.mean(ndcg)),
                     "true_top10_overlap": float(np.mean(overlap))})
    return pd.DataFrame(rows)


def history_popularity(gen: FittedGenerators) -> pd.Series:
    """Share of history users who touched each product: the base of the novelty metric."""
    touched = np.asarray((gen.inter.engagement > 0).sum(axis=0)).ravel()
    return pd.Series(touched / max(len(gen.inter.users), 1), index=gen.inter.items)


def lift_over_best_baseline(table: pd.DataFrame, method: str = MODEL, metric: str = "ndcg@10",
                            group: str = "all") -> tuple[str, float]:
    rows = table[table["users_group"] == group].set_index("method")[metric]
    baselines = rows[[m for m in BASELINES if m in rows.index]]
    best = baselines.idxmax()
    return best, float(rows[method] / baselines[best] - 1) if baselines[best] > 0 else float("nan")
