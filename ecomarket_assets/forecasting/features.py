"""Leak-free features for a direct multi-horizon demand model.

A row asks "how many units of product p sell on day d, seen from the end of
day c = d - h?" (h = 1..28 days ahead). Every sales, views, price and category
feature is read from days <= c only, so the same function builds training rows
(many c, d pairs inside the history) and forecast rows (c = the last day, d
beyond it) without any chance of peeking at the target or later days. One model
then serves every horizon, with h as a feature (the direct strategy; no
recursive feeding of its own forecasts).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.forecasting.panel import SalesPanel

HORIZON = 28
WINDOWS = (7, 14, 28, 56, 112)
SAME_WEEKDAY_LAGS = 4
PROMO_THRESHOLD = 0.95  # a price 5% or more under list price counts as a promotion
# Columns of a product, not of a row: joined when stored rows are read (embeddings too), see with_product_features.
PRODUCT_FEATURES = ("log_list_price", "price_vs_category", "category")


@dataclass(frozen=True)
class EmbeddingBasis:
    """PCA of product text embeddings, kept with the model so old and new rows share one basis."""

    product_ids: np.ndarray
    coordinates: np.ndarray  # (n_products, k)

    @classmethod
    def fit(cls, product_ids: np.ndarray, vectors: np.ndarray, k: int = 8) -> EmbeddingBasis:
        k = min(k, vectors.shape[0], vectors.shape[1])
        centred = vectors - vectors.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return cls(np.asarray(product_ids, dtype=object), (centred @ vt[:k].T).astype(np.float32))

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:  # a handle: the path may be on object storage
            np.savez(handle, product_ids=self.product_ids.astype(str), coordinates=self.coordinates)
        return path

    @classmethod
    def load(cls, path: Path) -> EmbeddingBasis:
        with path.open("rb") as handle:
            stored = np.load(handle, allow_pickle=False)
            return cls(stored["product_ids"].astype(object), stored["coordinates"])

    def lookup(self, product_ids: np.ndarray) -> np.ndarray:
        index = pd.Index(self.product_ids).get_indexer(product_ids)
        out = np.full((len(product_ids), self.coordinates.shape[1]), np.nan, dtype=np.float32)
        out[index >= 0] = self.coordinates[index[index >= 0]]
        return out


class PanelSums:
    """Prefix sums over the panel so any window ending at day c is O(1) per row."""

    def __init__(self, panel: SalesPanel) -> None:
        observed = ~np.isnan(panel.units)
        units = np.nan_to_num(panel.units)
        self.units = _prefix(units)
        self.squares = _prefix(units**2)
        self.count = _prefix(observed.astype(float))
        self.zeros = _prefix((observed & (units == 0)).astype(float))
        self.views = _prefix(panel.views)
        weekday = panel.days.dayofweek.to_numpy()
        self.weekday_units = np.stack([_prefix(units * (weekday == w)[None, :]) for w in range(7)])
        steps = np.arange(units.shape[1])
        self.last_sale = np.maximum.accumulate(np.where(units > 0, steps[None, :], -1), axis=1)
        categories = pd.Index(sorted(set(panel.category)))
        self.category_of = categories.get_indexer(panel.category)
        per_category = np.zeros((len(categories), units.shape[1]))
        np.add.at(per_category, self.category_of, units)
        self.category_units = _prefix(per_category)
        live = np.zeros((len(categories), units.shape[1]))
        np.add.at(live, self.category_of, observed.astype(float))
        self.category_live = _prefix(live)
        self.total_units = _prefix(units.sum(axis=0, keepdims=True))


def _prefix(matrix: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((matrix.shape[0], 1)), np.cumsum(matrix, axis=1)], axis=1)


def _window(prefix: np.ndarray, rows: np.ndarray, c: np.ndarray, width: int) -> np.ndarray:
    """Sum over days c-width+1 .. c (inclusive) from a prefix-sum matrix."""
    return prefix[rows, c + 1] - prefix[rows, np.maximum(c + 1 - width, 0)]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan), where=denominator > 0)


def build_features(panel: SalesPanel, product_index: np.ndarray, target_day: np.ndarray, horizon: np.ndarray,
                   basis: EmbeddingBasis | None = None, cumulative: PanelSums | None = None) -> pd.DataFrame:
    """Feature rows for (product, target day index, horizon); reads only days <= target - horizon."""
    rows = row_features(panel, product_index, target_day, horizon, cumulative)
    return with_product_features(rows, panel, np.asarray(product_index, dtype=np.int64), basis)


def row_features(panel: SalesPanel, product_index: np.ndarray, target_day: np.ndarray, horizon: np.ndarray,
                 cumulative: PanelSums | None = None) -> pd.DataFrame:
    """The features of `build_features` that a row's own days fix: all but PRODUCT_FEATURES and embeddings.

    They read days <= the cutoff of the row and the product's list price only, so a stored row stays valid
    while those days and list prices do (see refresh.py).
    """
    p, d, h = (np.asarray(a, dtype=np.int64) for a in (product_index, target_day, horizon))
    c = d - h
    first = panel.first_day[p]
    if np.any(c < first) or np.any(c >= panel.units.shape[1]) or np.any(h < 1):
        raise ValueError("every row needs 1 <= h and first_day <= d - h <= last panel day")
    cum = cumulative or PanelSums(panel)
    dates = panel.date_of(d)
    features: dict[str, np.ndarray] = {
        "horizon": h,
        "weekday": dates.dayofweek.to_numpy(),
        "day_of_month": dates.day.to_numpy(),
        "days_to_month_end": (dates.days_in_month - dates.day).to_numpy(),
        "age_days": d - first,
    }
    features["site_sale"], features["site_sale_discount"] = panel.calendar.on_dates(dates)
    units = np.nan_to_num(panel.units)
    features["last_day_units"] = units[p, c]
    step_back = 7 * np.ceil(h / 7).astype(np.int64)
    same_weekday = []
    for j in range(SAME_WEEKDAY_LAGS):
        index = d - step_back - 7 * j
        value = np.where(index >= first, units[p, np.maximum(index, 0)], np.nan)
        features[f"same_weekday_lag_{j + 1}"] = value
        same_weekday.append(value)
    stacked = np.vstack(same_weekday)
    seen = (~np.isnan(stacked)).sum(axis=0)
    features["same_weekday_mean"] = _ratio(np.nansum(stacked, axis=0), seen.astype(float))
    for width in WINDOWS:
        count = _window(cum.count, p, c, width)
        features[f"mean_{width}"] = _ratio(_window(cum.units, p, c, width), count)
    count_28 = _window(cum.count, p, c, 28)
    mean_28 = features["mean_28"]
    features["std_28"] = np.sqrt(np.maximum(_ratio(_window(cum.squares, p, c, 28), count_28) - mean_28**2, 0))
    features["zero_share_28"] = _ratio(_window(cum.zeros, p, c, 28), count_28)
    features["trend_7_28"] = _ratio(features["mean_7"], mean_28)
    features["trend_28_112"] = _ratio(mean_28, features["mean_112"])
    last_sale = cum.last_sale[p, c]
    features["days_since_sale"] = np.where(last_sale >= 0, c - last_sale, c - first + 1).astype(float)
    features["views_7"] = _window(cum.views, p, c, 7) / 7
    features["views_28"] = _window(cum.views, p, c, 28) / 28
    features["units_per_view_28"] = _ratio(_window(cum.units, p, c, 28), _window(cum.views, p, c, 28))
    weekday_units = cum.weekday_units[features["weekday"], p, c + 1]
    features["weekday_share"] = (weekday_units + 1.0) / (cum.units[p, c + 1] + 7.0)
    k = cum.category_of[p]
    category_mean_28 = _ratio(_window(cum.category_units, k, c, 28), _window(cum.category_live, k, c, 28))
    category_mean_7 = _ratio(_window(cum.category_units, k, c, 7), _window(cum.category_live, k, c, 7))
    features["category_mean_28"] = category_mean_28
    features["category_trend_7_28"] = _ratio(category_mean_7, category_mean_28)
    zero = np.zeros_like(p)
    features["shop_trend_7_28"] = _ratio(_window(cum.total_units, zero, c, 7) / 7,
                                         _window(cum.total_units, zero, c, 28) / np.minimum(c + 1, 28))
    relative = panel.price[p, c] / panel.list_price[p]
    features["relative_price"] = relative
    features["on_promotion"] = (relative < PROMO_THRESHOLD).astype(float)
    return pd.DataFrame(features).astype("float64")  # one dtype: a served row may carry NaN anywhere


def with_product_features(rows: pd.DataFrame, panel: SalesPanel, product_index: np.ndarray,
                          basis: EmbeddingBasis | None = None) -> pd.DataFrame:
    """`rows` (from `row_features`) completed with the product's columns as the panel knows them now.

    They depend on every product of the panel (the category's median list price) or on the embedding
    basis, so stored rows never hold them: they are joined when the rows are read.
    """
    p = product_index
    list_price = pd.Series(panel.list_price)
    frame = rows.assign(
        log_list_price=np.log(panel.list_price[p]),
        price_vs_category=panel.list_price[p] / list_price.groupby(panel.category).transform("median").to_numpy()[p],
    ).astype({"log_list_price": "float64", "price_vs_category": "float64"})
    frame["category"] = panel.category[p].astype(str)  # the model maps it to its own category list
    if basis is not None:
        coords = basis.lookup(panel.product_ids[p])
        for i in range(coords.shape[1]):
            frame[f"embedding_{i}"] = coords[:, i]
    return frame


def training_rows(panel: SalesPanel, last_target_day: int, seed: int = 0, horizons_per_day: int = 1,
                  first_target_day: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(product, target day, horizon) for every product-day from `first_target_day` to `last_target_day`.

    Each row gets a pseudo-random horizon (1..28, capped so the cutoff is not before the product's first
    day): the model sees every horizon while the training set stays one row per product-day. The horizon
    is a hash of (product id, target date, seed), not a draw over the whole panel, so a row is the same
    whether it was built the night its target day arrived or in a rebuild of the whole history.
    """
    first = panel.first_day
    p_list, d_list, h_list = [], [], []
    for replicate in range(horizons_per_day):
        p, d = np.nonzero(~np.isnan(panel.units[:, : last_target_day + 1]))
        room = d - first[p]
        keep = (room >= 1) & (d >= first_target_day)
        p, d, room = p[keep], d[keep], room[keep]
        h = row_horizon(panel.product_ids[p], panel.date_of(d), seed, replicate)
        p_list.append(p), d_list.append(d), h_list.append(np.minimum(h, room))
    return np.concatenate(p_list), np.concatenate(d_list), np.concatenate(h_list)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def row_horizon(product_ids: np.ndarray, dates: pd.DatetimeIndex, seed: int = 0, replicate: int = 0) -> np.ndarray:
    """A horizon in 1..HORIZON fixed by (product id, date, seed, replicate): stable across runs and machines."""
    ids, inverse = np.unique(np.asarray(product_ids).astype(str), return_inverse=True)
    per_product = np.array([int.from_bytes(hashlib.blake2b(f"{i}|{seed}|{replicate}".encode(), digest_size=8)
                                           .digest(), "little") for i in ids], dtype=np.uint64)
    day = (pd.DatetimeIndex(dates).normalize().asi8 // 86_400_000_000_000).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = per_product[inverse.reshape(-1)] ^ (day * _GOLDEN)
        for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):  # splitmix64's finaliser
            x = (x ^ (x >> np.uint64(shift))) * np.uint64(factor)
        x ^= x >> np.uint64(31)
    return (1 + x % np.uint64(HORIZON)).astype(np.int64)


def forecast_rows(panel: SalesPanel, origin: int, products: np.ndarray | None = None,
                  horizon: int = HORIZON) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows for days origin+1 .. origin+horizon of every product that existed by `origin`."""
    candidates = np.flatnonzero(panel.first_day <= origin) if products is None else np.asarray(products)
    steps = np.arange(1, horizon + 1)
    p = np.repeat(candidates, horizon)
    h = np.tile(steps, len(candidates))
    return p, origin + h, h


def targets(panel: SalesPanel, product_index: np.ndarray, target_day: np.ndarray) -> np.ndarray:
    return panel.units[product_index, target_day]
