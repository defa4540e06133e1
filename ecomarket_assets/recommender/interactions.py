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

from ecomarket_assets.compute import Engine, group_reduce
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
    pairs: pd.DataFrame  # one row per (user, known product): the `user_product_summary` columns

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


def label_rows(interactions, cutoff: dt.date, days: int, engine: Engine | None = None) -> pd.DataFrame:
    """(user_id, product_id) bought in [cutoff, cutoff + days): what a recommendation should have shown."""
    end = (cutoff + dt.timedelta(days=days)).isoformat()
    window = interactions[(interactions["date"] >= cutoff.isoformat()) & (interactions["date"] < end)]
    bought = window[window["purchase_units"] > 0]
    summed = group_reduce(bought, ["user_id", "product_id"], "purchase_units")
    return (engine or Engine("local")).compute(summed).sort_index().reset_index()


# Per (user, product) over the history: how each is reduced from the daily rows.
PAIR_REDUCTIONS = {
    "rows": "sum", "engagement": "sum", "purchase_days": "sum", "views": "sum",
    "last_seen": "min", "last_bought": "min", "first_seen": "max", "first_bought": "max",
    "bought_7d": "sum", "bought_28d": "sum", "bought_prev_28d": "sum", "bought_90d": "sum", "viewed_28d": "sum",
}


def user_product_summary(interactions, cutoff: dt.date):
    """The daily (user, product) rows before `cutoff` reduced to one row per pair (pandas or Dask frame).

    This is the only part of the recommender that grows with events; the matrices, item statistics and
    country popularity all read the pairs. Ages count days back from the cutoff (0 = the day before).
    """
    rows = history_rows(interactions, cutoff)
    age = (pd.Timestamp(cutoff) - rows["date"].astype("datetime64[ns]")).dt.days
    raw = sum(rows[c].astype("float64") * w for c, w in WEIGHTS.items())
    bought = rows["purchase_units"] > 0
    per_row = rows[["user_id", "product_id"]].assign(
        rows=1,
        engagement=raw * np.exp(-np.log(2) * age / HALF_LIFE_DAYS),
        purchase_days=bought.astype("float64"),
        views=rows["views"].astype("float64"),
        last_seen=age + 1,
        last_bought=(age + 1).where(bought),
        first_seen=age,
        first_bought=age.where(bought),
        bought_7d=(bought & (age < 7)).astype("int64"),
        bought_28d=(bought & (age < 28)).astype("int64"),
        bought_prev_28d=(bought & (age >= 7) & (age < 35)).astype("int64"),
        bought_90d=(bought & (age <= 90)).astype("int64"),
        viewed_28d=((rows["views"] > 0) & (age < 28)).astype("int64"),
    )
    return group_reduce(per_row, ["user_id", "product_id"], **{k: (k, how) for k, how in PAIR_REDUCTIONS.items()})


def build_interactions(interactions, product_ids: pd.Series | np.ndarray, cutoff: dt.date,
                       engine: Engine | None = None) -> Interactions:
    """Aggregate daily (user, product) rows before `cutoff` into sparse matrices, reducing on `engine`."""
    pairs = (engine or Engine("local")).compute(user_product_summary(interactions, cutoff))
    return interactions_from_pairs(pairs.reset_index(), product_ids, cutoff)


def interactions_from_pairs(pairs: pd.DataFrame, product_ids: pd.Series | np.ndarray, cutoff: dt.date) -> Interactions:
    items = pd.Index(pd.unique(np.asarray(product_ids)), name="product_id")
    col = items.get_indexer(pairs["product_id"])
    unknown = int(pairs.loc[col < 0, "rows"].sum())
    pairs = pairs[col >= 0].assign(col=col[col >= 0]).sort_values(["user_id", "col"], ignore_index=True)
    users = pd.Index(np.sort(pairs["user_id"].unique()), name="user_id")
    row = users.get_indexer(pairs["user_id"])
    shape = (len(users), len(items))

    def matrix(name: str) -> sparse.csr_matrix:
        values = pairs[name].fillna(0).to_numpy(dtype=np.float64)
        out = sparse.csr_matrix((values, (row, pairs["col"].to_numpy())), shape=shape, dtype=np.float64)
        out.eliminate_zeros()
        return out

    return Interactions(
        cutoff=cutoff, users=users, items=items,
        engagement=matrix("engagement"), purchase_days=matrix("purchase_days"), views=matrix("views"),
        last_seen=matrix("last_seen"), last_bought=matrix("last_bought"),
        unknown_product_rows=unknown, pairs=pairs,
    )
