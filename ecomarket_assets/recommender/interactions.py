"""User-item history as of a cutoff: the one input every candidate generator reads.

A cutoff is the first day *not* seen: history is every day strictly before it,
labels are purchases in the window that starts on it. Building everything from
`user_daily_activity` rows filtered by date is what makes the time split
leak-free: nothing dated on or after the cutoff can reach a feature.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from ecomarket_assets.profiles.features import HALF_LIFE_DAYS, WEIGHTS


@dataclass
class Interactions:
    """Sparse users x items matrices over the history before `cutoff`."""

    cutoff: dt.date
    users: pd.Index  # user ids, row order
    items: pd.Index  # product ids, column order (the whole catalog, cold products included)
    engagement: sparse.csr_matrix  # recency-weighted views / carts / purchases
    purchase_days: sparse.csr_matrix  # days with a purchase of the item
    views: sparse.csr_matrix  # view events
    last_seen: sparse.csr_matrix  # 1 + days from the last interaction to the cutoff (0 = never)
    last_bought: sparse.csr_matrix  # 1 + days from the last purchase to the cutoff (0 = never)
    unknown_product_rows: int  # history rows naming a product missing from the catalog

    def user_rows(self, user_ids: pd.Index | np.ndarray) -> np.ndarray:
        """Row of each user, -1 for users without history (cold users)."""
        return self.users.get_indexer(pd.Index(user_ids))

    def rows_of(self, matrix: sparse.csr_matrix, rows: np.ndarray) -> sparse.csr_matrix:
        """Rows of `matrix` for `rows` from `user_rows`; cold users get an empty row."""
        known = rows >= 0
        out = sparse.csr_matrix((len(rows), matrix.shape[1]), dtype=matrix.dtype)
        if known.any():
            picked = matrix[rows[known]]
            selector = sparse.csr_matrix((np.ones(known.sum()), (np.flatnonzero(known), np.arange(known.sum()))),
                                         shape=(len(rows), known.sum()))
            out = (selector @ picked).tocsr()
        return out


def history_rows(interactions: pd.DataFrame, cutoff: dt.date, lookback_days: int | None = None) -> pd.DataFrame:
    """Activity rows dated before `cutoff` (and within `lookback_days` of it)."""
    rows = interactions[interactions["date"] < cutoff.isoformat()]
    if lookback_days is not None:
        rows = rows[rows["date"] >= (cutoff - dt.timedelta(days=lookback_days)).isoformat()]
    return rows


def label_rows(interactions: pd.DataFrame, cutoff: dt.date, days: int) -> pd.DataFrame:
    """(user_id, product_id) bought in [cutoff, cutoff + days): what a recommendation should have shown."""
    end = (cutoff + dt.timedelta(days=days)).isoformat()
    window = interactions[(interactions["date"] >= cutoff.isoformat()) & (interactions["date"] < end)]
    bought = window[window["purchase_units"] > 0]
    return bought.groupby(["user_id", "product_id"], as_index=False)["purchase_units"].sum()


def build_interactions(interactions: pd.DataFrame, product_ids: pd.Series | np.ndarray, cutoff: dt.date) -> Interactions:
    """Aggregate daily (user, product) rows before `cutoff` into sparse matrices."""
    rows = history_rows(interactions, cutoff)
    items = pd.Index(pd.unique(np.asarray(product_ids)), name="product_id")
    col = items.get_indexer(rows["product_id"])
    unknown = int((col < 0).sum())
    rows = rows[col >= 0].assign(col=col[col >= 0])
    users = pd.Index(np.sort(rows["user_id"].unique()), name="user_id")
    row = users.get_indexer(rows["user_id"])
    age = (pd.Timestamp(cutoff) - pd.to_datetime(rows["date"])).dt.days.to_numpy()
    raw = sum(rows[c].to_numpy(dtype=float) * w for c, w in WEIGHTS.items())
    decay = np.exp(-np.log(2) * age / HALF_LIFE_DAYS)
    bought = rows["purchase_units"].to_numpy() > 0
    shape = (len(users), len(items))

    def summed(values: np.ndarray) -> sparse.csr_matrix:
        matrix = sparse.csr_matrix((values, (row, rows["col"].to_numpy())), shape=shape, dtype=np.float64)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return matrix

    def latest(mask: np.ndarray) -> sparse.csr_matrix:
        # 1 + age of the newest matching row; max over duplicates via a sorted drop
        frame = pd.DataFrame({"r": row[mask], "c": rows["col"].to_numpy()[mask], "v": 1 + age[mask]})
        frame = frame.sort_values("v").drop_duplicates(["r", "c"])
        return sparse.csr_matrix((frame["v"].to_numpy(float), (frame["r"], frame["c"])), shape=shape)

    return Interactions(
        cutoff=cutoff, users=users, items=items,
        engagement=summed(raw * decay),
        purchase_days=summed(bought.astype(float)),
        views=summed(rows["views"].to_numpy(dtype=float)),
        last_seen=latest(np.ones(len(rows), dtype=bool)),
        last_bought=latest(bought),
        unknown_product_rows=unknown,
    )
