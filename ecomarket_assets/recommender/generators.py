"""Candidate generators: each scores every product for a batch of users from history before a cutoff.

Every generator is fitted on one `Interactions` (so on one side of a time split)
and returns a dense (users x products) float32 block per batch; the candidate
builder keeps each generator's top products and records every score as a feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from ecomarket_assets.recommender import rivals
from ecomarket_assets.recommender.interactions import Interactions

GENERATORS = ("item_knn", "ease", "content", "popular", "trending", "repurchase", "country_popular", "category_popular",
              "tifu_knn")
PERSONAL = ("item_knn", "ease", "content", "repurchase", "category_popular", "tifu_knn")  # zero without history


@dataclass
class ItemStats:
    """Per product, as of the cutoff: recent buyers, trend, repurchase habit, age, price, category."""

    frame: pd.DataFrame  # indexed like Interactions.items

    def column(self, name: str) -> np.ndarray:
        return self.frame[name].to_numpy(dtype=np.float64)


def item_stats(inter: Interactions, catalog: pd.DataFrame) -> ItemStats:
    """Buyers in the last 7 / 28 days and the 28 before, repurchase rate and interval, first/last event age.

    Read off the (user, product) pairs, so a buyer is counted once per product however many days they bought.
    """
    pairs = inter.pairs
    bought = pairs[pairs["purchase_days"] > 0]

    def users_with(frame: pd.DataFrame, flag: str) -> pd.Series:
        return frame[frame[flag] > 0].groupby("product_id").size()

    frame = pd.DataFrame(index=inter.items)
    frame["buyers_7d"] = users_with(bought, "bought_7d")
    frame["buyers_28d"] = users_with(bought, "bought_28d")
    frame["buyers_prev_28d"] = users_with(bought, "bought_prev_28d")
    frame["viewers_28d"] = users_with(pairs, "viewed_28d")
    repeat = bought[bought["purchase_days"] > 1]
    frame["buyers_all"] = bought.groupby("product_id").size()
    frame["repeat_buyers"] = repeat.groupby("product_id").size()
    gap = (repeat["first_bought"] - (repeat["last_bought"] - 1)) / (repeat["purchase_days"] - 1)
    frame["repurchase_interval"] = gap.groupby(repeat["product_id"]).median()
    frame["first_seen_days"] = pairs.groupby("product_id")["first_seen"].max()
    frame["last_seen_days"] = pairs.groupby("product_id")["last_seen"].min() - 1
    counts = ["buyers_7d", "buyers_28d", "buyers_prev_28d", "viewers_28d", "buyers_all", "repeat_buyers"]
    frame[counts] = frame[counts].fillna(0.0)
    # shrunk towards a low prior so one repeat buyer of a rare product does not make it "consumable"
    frame["repurchase_rate"] = (frame["repeat_buyers"] + 0.5) / (frame["buyers_all"] + 5.0)
    frame["trend"] = np.log((frame["buyers_7d"] + 1) / (frame["buyers_prev_28d"] / 4 + 1))
    products = catalog.drop_duplicates("product_id").set_index("product_id").reindex(inter.items)
    frame["price"] = products["price"].astype(float)
    frame["category"] = products["category"].fillna("unknown").astype(str)
    return ItemStats(frame)


def _row_normalise(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return sparse.diags(1.0 / np.where(sums > 0, sums, 1.0)) @ matrix


def _top_k_columns(similarity: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest entries of each column (the neighbours of each item), zero the rest."""
    if k >= similarity.shape[0]:
        return similarity
    keep = np.argpartition(-similarity, k, axis=0)[:k]
    pruned = np.zeros_like(similarity)
    cols = np.arange(similarity.shape[1])
    pruned[keep, cols] = similarity[keep, cols]
    return pruned


def item_knn_similarity(binary: sparse.csr_matrix, neighbours: int = 100) -> np.ndarray:
    """Cosine similarity between items' user vectors, diagonal zeroed, top neighbours per item."""
    norms = np.sqrt(np.asarray(binary.multiply(binary).sum(axis=0)).ravel())
    scaled = binary @ sparse.diags(1.0 / np.where(norms > 0, norms, 1.0))
    similarity = (scaled.T @ scaled).toarray().astype(np.float32)
    np.fill_diagonal(similarity, 0.0)
    return _top_k_columns(similarity, neighbours)


def ease_weights(binary: sparse.csr_matrix, l2: float) -> np.ndarray:
    """EASE (Steck 2019): closed-form item-item weights B = I - P / diag(P), P = (X'X + l2 I)^-1."""
    gram = (binary.T @ binary).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


@dataclass
class FittedGenerators:
    """Everything the generators learned from one side of a time split."""

    inter: Interactions
    stats: ItemStats
    knn: np.ndarray  # items x items
    ease: np.ndarray  # items x items
    item_vectors: np.ndarray  # items x d, unit rows (zeros where a product has no embedding)
    category_onehot: sparse.csr_matrix  # items x categories
    country_popularity: pd.DataFrame  # countries x items, normalised buyers in the last 90 days
    user_country: pd.Series  # user_id -> country
    ease_l2: float
    repeat_unit: sparse.csr_matrix  # users x items, TIFU-KNN's recency-weighted purchase vectors at length 1
    tifu: rivals.TifuSettings

    @property
    def n_items(self) -> int:
        return len(self.inter.items)


def fit_generators(inter: Interactions, catalog: pd.DataFrame, customers: pd.DataFrame,
                   embeddings: tuple[pd.Series, np.ndarray] | None, ease_l2: float = 100.0,
                   neighbours: int = 100, tifu: rivals.TifuSettings | None = None) -> FittedGenerators:
    binary = (inter.engagement > 0).astype(np.float32).tocsr()
    stats = item_stats(inter, catalog)
    codes, categories = pd.factorize(stats.frame["category"])
    onehot = sparse.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), len(categories)))
    vectors = np.zeros((len(inter.items), 1), dtype=np.float32)
    if embeddings is not None:
        ids, matrix = embeddings
        position = pd.Index(ids).get_indexer(inter.items)
        vectors = np.zeros((len(inter.items), matrix.shape[1]), dtype=np.float32)
        vectors[position >= 0] = matrix[position[position >= 0]]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    country = customers.drop_duplicates("user_id").set_index("user_id")["country"].fillna("unknown").astype(str)
    return FittedGenerators(
        inter=inter, stats=stats, knn=item_knn_similarity(binary, neighbours), ease=ease_weights(binary, ease_l2),
        item_vectors=vectors, category_onehot=onehot,
        country_popularity=_country_popularity(inter, country), user_country=country, ease_l2=ease_l2,
        repeat_unit=rivals.unit_rows(rivals.repeat_vectors(inter)), tifu=tifu or rivals.TifuSettings(),
    )


def _country_popularity(inter: Interactions, country: pd.Series) -> pd.DataFrame:
    """Buyers per country and product over the last 90 days, each country's row scaled to a maximum of 1."""
    bought = inter.pairs[inter.pairs["bought_90d"] > 0]
    bought = bought.assign(country=bought["user_id"].map(country).fillna("unknown"))
    counts = bought.groupby(["country", "product_id"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=inter.items, fill_value=0).astype(np.float32)
    return counts.div(counts.max(axis=1).where(lambda s: s > 0, 1.0), axis=0)


@dataclass
class Batch:
    """One block of users and the generators' scores for every product."""

    user_ids: pd.Index
    rows: np.ndarray  # Interactions row per user, -1 = cold
    scores: dict[str, np.ndarray]  # generator -> (users x items) float32
    engagement: sparse.csr_matrix  # users x items history weights
    category_affinity: np.ndarray  # users x categories, engagement shares


def score_batch(gen: FittedGenerators, user_ids: pd.Index) -> Batch:
    inter, stats = gen.inter, gen.stats
    rows = inter.user_rows(user_ids)
    engagement = inter.rows_of(inter.engagement, rows)
    binary = (engagement > 0).astype(np.float32)
    weights = _row_normalise(engagement.astype(np.float32))
    by_category = np.asarray((engagement @ gen.category_onehot).todense(), dtype=np.float32)
    affinity = by_category / np.maximum(by_category.sum(axis=1, keepdims=True), 1e-12)
    interest = np.asarray(weights @ gen.item_vectors, dtype=np.float32)
    interest /= np.maximum(np.linalg.norm(interest, axis=1, keepdims=True), 1e-12)
    popularity = np.log1p(stats.column("buyers_28d") + 0.1 * stats.column("viewers_28d")).astype(np.float32)
    popularity_share = popularity / max(float(popularity.max()), 1e-12)
    n = len(user_ids)
    category_of = np.asarray(gen.category_onehot.argmax(axis=1)).ravel()
    scores = {
        "item_knn": np.asarray(weights @ gen.knn, dtype=np.float32),
        "ease": np.asarray(binary @ gen.ease, dtype=np.float32),
        "content": (interest @ gen.item_vectors.T).astype(np.float32),
        "popular": np.broadcast_to(popularity, (n, gen.n_items)),
        "trending": np.broadcast_to(np.maximum(stats.column("trend"), 0).astype(np.float32)
                                    * np.log1p(stats.column("buyers_7d")).astype(np.float32), (n, gen.n_items)),
        "repurchase": _repurchase(gen, rows),
        "country_popular": _country_scores(gen, user_ids),
        "category_popular": affinity[:, category_of] * popularity_share[None, :],
        "tifu_knn": rivals.tifu_scores(gen.repeat_unit, inter, rows, gen.tifu),
    }
    return Batch(user_ids, rows, scores, engagement, affinity)


def _repurchase(gen: FittedGenerators, rows: np.ndarray) -> np.ndarray:
    """Products the user bought, weighted by how often buyers rebuy them and whether one is due now."""
    inter, stats = gen.inter, gen.stats
    last = inter.rows_of(inter.last_bought, rows).tocoo()
    out = np.zeros((len(rows), gen.n_items), dtype=np.float32)
    if last.nnz == 0:
        return out
    rate = stats.column("repurchase_rate")[last.col]
    interval = np.nan_to_num(stats.column("repurchase_interval")[last.col], nan=60.0)
    days_since = last.data - 1
    timing = np.exp(-0.5 * np.log((days_since + 1) / (interval + 1)) ** 2)
    out[last.row, last.col] = rate * (0.5 + 0.5 * timing)
    return out


def _country_scores(gen: FittedGenerators, user_ids: pd.Index) -> np.ndarray:
    table = gen.country_popularity
    country = pd.Index(user_ids).map(gen.user_country).fillna("unknown")
    position = table.index.get_indexer(country)
    values = table.to_numpy(dtype=np.float32)
    out = np.zeros((len(user_ids), gen.n_items), dtype=np.float32)
    out[position >= 0] = values[position[position >= 0]]
    return out


def tune_ease_l2(inter: Interactions, labels: pd.DataFrame,
                 grid: tuple[float, ...] = (10.0, 50.0, 200.0, 1000.0)) -> tuple[float, dict[float, float]]:
    """EASE's only parameter, chosen by NDCG@10 on one window before the hold-out (never on it).

    `inter` is the history before the window's cutoff, `labels` what was bought in the window (`label_rows`).
    """
    from ecomarket_assets.recommender.metrics import ndcg_at_k, top_k

    labels = labels[labels["user_id"].isin(inter.users)]
    users = pd.Index(labels["user_id"].unique())
    binary = (inter.rows_of(inter.engagement, inter.user_rows(users)) > 0).astype(np.float32)
    truth = labels.groupby("user_id")["product_id"].apply(set).reindex(users)
    full = (inter.engagement > 0).astype(np.float32).tocsr()
    results = {}
    for l2 in grid:
        scores = np.asarray(binary @ ease_weights(full, l2))
        picks = inter.items.to_numpy()[top_k(scores, 10)]
        results[l2] = float(np.mean([ndcg_at_k(list(p), t, 10) for p, t in zip(picks, truth, strict=True)]))
    return max(results, key=results.get), results
