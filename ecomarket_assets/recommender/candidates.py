"""Candidate rows: each generator's top products per user, with every generator's score as a feature.

A row is (user, product) plus what the ranker may look at: each generator's
score and per-user rank, the user's history with the product, product stats
and user stats, all as of the cutoff. The bitmask `nominated_by` records which
generators put the product forward; the reasons shown to a person come from it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from ecomarket_assets.recommender.generators import GENERATORS, Batch, FittedGenerators, score_batch

SCORE_FEATURES = [f"{name}_score" for name in GENERATORS]
RANK_FEATURES = [f"{name}_rank" for name in GENERATORS]
HISTORY_FEATURES = ["ui_views", "ui_purchase_days", "ui_days_since_seen", "ui_days_since_bought"]
ITEM_FEATURES = ["item_buyers_7d", "item_buyers_28d", "item_trend", "item_repurchase_rate", "item_repurchase_interval",
                 "item_first_seen_days", "item_last_seen_days", "item_log_price"]
USER_FEATURES = ["user_items", "user_purchase_days", "user_days_since_seen", "user_log_price",
                 "user_category_affinity", "price_fit", "n_generators", "user_repeat_share"]
FEATURES = SCORE_FEATURES + RANK_FEATURES + HISTORY_FEATURES + ITEM_FEATURES + USER_FEATURES
BITS = {name: 1 << i for i, name in enumerate(GENERATORS)}
CELLS_PER_BATCH = 2_000_000  # users x products per scoring block: bounds memory for any catalog size


def nominated(bitmask: pd.Series | np.ndarray, generator: str) -> np.ndarray:
    return (np.asarray(bitmask) & BITS[generator]) > 0


def build_candidates(gen: FittedGenerators, user_ids: pd.Index | np.ndarray, per_generator: int = 100,
                     extra_items: np.ndarray | None = None, anchors: bool = False) -> pd.DataFrame:
    """Candidates for `user_ids` (cold users included). `extra_items`: product positions offered to everyone
    (e.g. forecast-rising products); `anchors`: also find the history item behind each co-occurrence and
    content score, for the reason text (serving only)."""
    user_ids = pd.Index(pd.unique(np.asarray(user_ids)), name="user_id")
    batch_size = max(16, CELLS_PER_BATCH // max(gen.n_items, 1))
    item_block = _item_block(gen)
    parts = []
    for start in range(0, len(user_ids), batch_size):
        batch = score_batch(gen, user_ids[start:start + batch_size])
        parts.append(_batch_rows(gen, batch, per_generator, extra_items, anchors, item_block))
    if not parts:
        return pd.DataFrame(columns=["user_id", "product_id", *FEATURES, "nominated_by"])
    return pd.concat(parts, ignore_index=True)


def _item_block(gen: FittedGenerators) -> pd.DataFrame:
    stats = gen.stats.frame
    return pd.DataFrame({
        "item_buyers_7d": stats["buyers_7d"], "item_buyers_28d": stats["buyers_28d"], "item_trend": stats["trend"],
        "item_repurchase_rate": stats["repurchase_rate"], "item_repurchase_interval": stats["repurchase_interval"],
        "item_first_seen_days": stats["first_seen_days"], "item_last_seen_days": stats["last_seen_days"],
        "item_log_price": np.log1p(stats["price"].clip(lower=0)),
    }).astype(np.float32)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """0 = best per row; ties keep product order (a stable sort)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty(scores.shape, dtype=np.int32)
    ranks[np.arange(len(scores))[:, None], order] = np.arange(scores.shape[1], dtype=np.int32)
    return ranks


def _batch_rows(gen: FittedGenerators, batch: Batch, per_generator: int, extra_items: np.ndarray | None,
                anchors: bool, item_block: pd.DataFrame) -> pd.DataFrame:
    n_users, n_items = len(batch.user_ids), gen.n_items
    bitmask = np.zeros((n_users, n_items), dtype=np.int32)
    ranks = {}
    for name in GENERATORS:
        ranks[name] = _ranks(batch.scores[name])
        chosen = (ranks[name] < per_generator) & (batch.scores[name] > 0)
        bitmask |= chosen.astype(np.int32) * BITS[name]
    keep = bitmask > 0
    if extra_items is not None and len(extra_items):
        keep[:, extra_items] = True
    r, c = np.nonzero(keep)
    inter = gen.inter
    columns: dict[str, np.ndarray] = {
        "user_id": batch.user_ids.to_numpy()[r],
        "product_id": inter.items.to_numpy()[c],
    }
    for name in GENERATORS:
        columns[f"{name}_score"] = batch.scores[name][r, c]
    for name in GENERATORS:
        columns[f"{name}_rank"] = ranks[name][r, c].astype(np.float32)
    sources = {"ui_views": inter.views, "ui_purchase_days": inter.purchase_days,
               "ui_days_since_seen": inter.last_seen, "ui_days_since_bought": inter.last_bought}
    history = {name: inter.rows_of(matrix, batch.rows) for name, matrix in sources.items()}  # this batch's rows
    for name, rows in history.items():
        values = np.asarray(rows[r, c]).ravel().astype(np.float32)
        if name.startswith("ui_days"):
            values = np.where(values > 0, values - 1, np.nan)  # stored as 1 + age, 0 = never
        columns[name] = values
    frame = pd.DataFrame(columns)
    items = item_block.iloc[c].reset_index(drop=True)
    frame = pd.concat([frame, items], axis=1)
    user = _user_block(gen, batch, history)
    for name in ("user_items", "user_purchase_days", "user_days_since_seen", "user_log_price", "user_repeat_share"):
        frame[name] = user[name][r]
    category_of = np.asarray(gen.category_onehot.argmax(axis=1)).ravel()
    frame["user_category_affinity"] = batch.category_affinity[r, category_of[c]]
    frame["price_fit"] = frame["item_log_price"] - frame["user_log_price"]
    frame["nominated_by"] = bitmask[r, c]
    frame["n_generators"] = np.array([bin(v).count("1") for v in range(1 << len(GENERATORS))], dtype=np.float32)[bitmask[r, c]]
    if anchors:
        for name, values in _anchors(gen, batch, r, c, history["ui_purchase_days"]).items():
            frame[name] = values
    return frame


def _user_block(gen: FittedGenerators, batch: Batch, history: dict) -> dict[str, np.ndarray]:
    engaged = batch.engagement
    bought, last = history["ui_purchase_days"], history["ui_days_since_seen"]
    log_price = np.nan_to_num(np.log1p(gen.stats.column("price").clip(min=0)), nan=0.0)
    priced = bought @ log_price
    count = np.asarray(bought.sum(axis=1)).ravel()
    newest = np.array([row.data.min() - 1 if row.nnz else np.nan for row in last], dtype=np.float32)
    distinct = np.asarray((bought > 0).sum(axis=1)).ravel()  # explicit zeros (viewed, never bought) do not count
    return {
        "user_items": np.diff(engaged.indptr).astype(np.float32),
        "user_purchase_days": count.astype(np.float32),
        # share of the user's product-purchase days that rebought a product: how much of the next basket is repeat
        "user_repeat_share": np.where(count > 0, 1 - distinct / np.maximum(count, 1), np.nan).astype(np.float32),
        "user_days_since_seen": newest,
        "user_log_price": np.where(count > 0, priced / np.maximum(count, 1), np.nan).astype(np.float32),
    }


def tie_safe_argmax(scores: np.ndarray) -> np.ndarray:
    """Row of each column's maximum, with scores within 1e-9 of the column's maximum (relative) counted as tied
    and the first row winning: a state folded day by day sums in another order than a full rebuild, and an
    exact tie (common with whole-unit quantities) must not be broken by the last bits."""
    top = np.abs(scores).max(axis=0, keepdims=True)
    return np.round(scores / np.where(top > 0, top, 1.0), 9).argmax(axis=0)


def _anchors(gen: FittedGenerators, batch: Batch, r: np.ndarray, c: np.ndarray,
             bought: sparse.csr_matrix) -> dict[str, np.ndarray]:
    """For each candidate, the user's history product that explains its item-kNN and its content score,
    and whether the user bought (or only viewed) that product."""
    items = gen.inter.items.to_numpy()
    out = {"knn_anchor": np.full(len(r), None, dtype=object), "content_anchor": np.full(len(r), None, dtype=object),
           "knn_anchor_bought": np.zeros(len(r), dtype=bool), "content_anchor_bought": np.zeros(len(r), dtype=bool)}
    starts = np.searchsorted(r, np.arange(len(batch.user_ids) + 1))
    engaged = batch.engagement
    for u in range(len(batch.user_ids)):
        lo, hi = starts[u], starts[u + 1]
        first, last = engaged.indptr[u], engaged.indptr[u + 1]
        if first == last or lo == hi:
            continue
        history, weights = engaged.indices[first:last], engaged.data[first:last]
        was_bought = np.isin(history, bought.indices[bought.indptr[u]:bought.indptr[u + 1]])
        cand = c[lo:hi]
        knn = weights[:, None] * gen.knn[np.ix_(history, cand)]
        best = tie_safe_argmax(knn)
        has = knn.max(axis=0) > 0
        out["knn_anchor"][lo:hi] = np.where(has, items[history[best]], None)
        out["knn_anchor_bought"][lo:hi] = has & was_bought[best]
        similarity = gen.item_vectors[history] @ gen.item_vectors[cand].T
        similarity[history[:, None] == cand[None, :]] = -1.0  # a product does not explain itself
        best = similarity.argmax(axis=0)
        has = similarity.max(axis=0) > 0
        out["content_anchor"][lo:hi] = np.where(has, items[history[best]], None)
        out["content_anchor_bought"][lo:hi] = has & was_bought[best]
    return out


def attach_labels(candidates: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """label = 1 where the user bought the product in the label window."""
    bought = pd.MultiIndex.from_frame(labels[["user_id", "product_id"]])
    keys = pd.MultiIndex.from_frame(candidates[["user_id", "product_id"]])
    return candidates.assign(label=keys.isin(bought).astype(np.int8))
