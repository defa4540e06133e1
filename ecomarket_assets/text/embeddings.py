"""Product texts, sentence embeddings with a Parquet cache, and embedding sanity metrics.

Encoding costs a few milliseconds per text on a CPU, so a text is never encoded
twice: vectors are cached in one Parquet file keyed by the SHA-1 of the text
(`text_hash`, `vector` as a fixed-size list of float32). Only texts missing from
the cache are encoded; they are appended with an atomic rewrite under a file
lock, so concurrent runs cannot corrupt the cache (at worst one re-encodes).
The cache remembers which model filled it: a cache written by another model is
discarded, never mixed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets.storage import data_path, is_remote, read_arrow, write_table

HASH = "text_hash"
VECTOR = "vector"
MODEL_KEY = b"ecomarket.embedding_model"
ENCODE_CHUNK = 1024


def embeddings_path(root: Path) -> Path:
    """Where the `product_embeddings` asset lives under the data directory."""
    return data_path(root) / "product_embeddings" / "product_embeddings.parquet"


def cache_path(root: Path) -> Path:
    """The embedding cache shared by every text asset (product texts, reviews, phrases, evaluation sets)."""
    return data_path(root) / "cache" / "embeddings.parquet"


def reference_cache_path(configured: str = "") -> Path:
    """The embedding cache of the reference corpora (the sentiment benchmark's labelled sentences): the same
    texts for every shop, so one cache per machine (`configured`, else ~/.cache/ecomarket) spares each new shop
    encoding them again (12 s of the demo shop's review_insights)."""
    if configured:
        return Path(configured).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ecomarket" / "reference_embeddings.parquet"


class Encoder(Protocol):
    """What the embedding code needs from a model: unit-norm float32 vectors, one row per text."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


# --------------------------------------------------------------------------- texts


def product_text(catalog: pd.DataFrame) -> pd.Series:
    """The text embedded for each product: `title. description. Category: category.`

    The description carries the meaning (material, use); the category
    disambiguates short or generic titles ("Classic Set"). Null or empty parts
    are left out, so a catalog with titles only (Online Retail) still works.
    Indexed like `catalog`.
    """
    def clean(column: str) -> pd.Series:
        if column not in catalog.columns:
            return pd.Series("", index=catalog.index)
        return catalog[column].fillna("").astype(str).str.strip().str.rstrip(".").str.strip()

    title, description, category = clean("title"), clean("description"), clean("category")
    category = category.where(category == "", "Category: " + category)
    parts = pd.concat([title, description, category], axis=1)
    return parts.apply(lambda row: ". ".join(p for p in row if p) + ".", axis=1).rename("text")


def text_hash(texts: Sequence[str] | pd.Series) -> np.ndarray:
    """SHA-1 hex digest of each text (UTF-8): the cache key. Equal texts, equal hashes."""
    return np.array([hashlib.sha1(str(t).encode("utf-8")).hexdigest() for t in texts], dtype=object)


# --------------------------------------------------------------------------- cache


@dataclass
class EmbedStats:
    """What one or more `embed_with_cache` calls did."""

    texts: int = 0  # texts asked for (duplicates counted)
    unique: int = 0  # distinct texts
    cached: int = 0  # distinct texts found in the cache
    encoded: int = 0  # distinct texts encoded now
    seconds: float = 0.0  # time spent encoding the new texts
    cache_reset: bool = False  # the cache held another model's vectors and was discarded

    @property
    def per_second(self) -> float | None:
        """Texts encoded per second (None when nothing was encoded)."""
        return self.encoded / self.seconds if self.encoded and self.seconds > 0 else None


def _model_id(encoder: Encoder) -> str:
    return str(getattr(encoder, "model_id", type(encoder).__name__))


@contextlib.contextmanager
def _locked(cache_path: Path) -> Iterator[None]:
    if is_remote(cache_path):  # object storage has no file locks: the last writer wins
        yield
        return
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_path.with_name(f".{cache_path.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_cache(cache_path: Path, model_id: str) -> tuple[pd.Index, np.ndarray] | None:
    """(hashes, vectors) from the cache, or None when there is no cache or it belongs to another model."""
    if not cache_path.exists():
        return None
    table = read_arrow(cache_path)
    stored_model = (table.schema.metadata or {}).get(MODEL_KEY, b"").decode()
    if stored_model != model_id:
        return None
    return pd.Index(table.column(HASH).to_numpy(zero_copy_only=False)), vectors_from_arrow(table.column(VECTOR))


def vectors_from_arrow(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-size-list (or list) column of floats as a float32 matrix (n, dim), without a Python loop."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    if n == 0:
        dim = array.type.list_size if pa.types.is_fixed_size_list(array.type) else 0
        return np.empty((0, dim), dtype=np.float32)
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(n, -1)


def vectors_to_arrow(vectors: np.ndarray) -> pa.FixedSizeListArray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def _write_cache(cache_path: Path, hashes: np.ndarray, vectors: np.ndarray, model_id: str) -> None:
    table = pa.table({HASH: pa.array(hashes, type=pa.string()), VECTOR: vectors_to_arrow(vectors)})
    write_table(table.replace_schema_metadata({MODEL_KEY: model_id.encode()}), cache_path)


def embed_with_cache(texts: pd.Series | Sequence[str], encoder: Encoder, cache_path: Path,
                     chunk_size: int = ENCODE_CHUNK) -> tuple[np.ndarray, EmbedStats]:
    """Vectors for `texts` (same order, float32, unit norm), encoding only texts not in the cache.

    Distinct missing texts are encoded in chunks of `chunk_size` and appended to
    the cache in one atomic rewrite. Returns the vectors and what was done.
    """
    texts = [str(t) for t in texts]
    hashes = text_hash(texts)
    unique_hashes, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    stats = EmbedStats(texts=len(texts), unique=len(unique_hashes))
    model_id = _model_id(encoder)
    cached = read_cache(cache_path, model_id)
    stats.cache_reset = cached is None and cache_path.exists()

    known = np.zeros(len(unique_hashes), dtype=bool)
    vectors: np.ndarray | None = None
    if cached is not None:
        cached_hashes, cached_vectors = cached
        position = cached_hashes.get_indexer(unique_hashes)
        known = position >= 0
        vectors = np.empty((len(unique_hashes), cached_vectors.shape[1]), dtype=np.float32)
        vectors[known] = cached_vectors[position[known]]
    stats.cached = int(known.sum())

    missing = np.flatnonzero(~known)
    missing = missing[np.argsort(first[missing], kind="stable")]  # encode in order of first appearance
    if len(missing):
        getattr(encoder, "model", None)  # load the weights (seconds) outside the timed span: the rate is encoding only
        start = time.perf_counter()
        todo = [texts[i] for i in first[missing]]
        new = np.vstack([np.asarray(encoder.encode(todo[i:i + chunk_size]), dtype=np.float32)
                         for i in range(0, len(todo), chunk_size)])
        stats.seconds = time.perf_counter() - start
        stats.encoded = len(missing)
        if vectors is None or vectors.shape[1] != new.shape[1]:
            vectors = np.empty((len(unique_hashes), new.shape[1]), dtype=np.float32)
        vectors[missing] = new
        _append(cache_path, unique_hashes[missing], new, model_id)
    if vectors is None:  # no texts at all
        dim = cached[1].shape[1] if cached is not None else 0
        vectors = np.empty((0, dim), dtype=np.float32)
    return vectors[inverse] if len(texts) else vectors[:0], stats


def _append(cache_path: Path, hashes: np.ndarray, vectors: np.ndarray, model_id: str) -> None:
    """Merge new vectors into the cache, re-reading it under the lock (another run may have added some)."""
    with _locked(cache_path):
        current = read_cache(cache_path, model_id)
        if current is not None and current[1].shape[1] == vectors.shape[1]:
            keep = ~pd.Index(hashes).isin(current[0])
            hashes = np.concatenate([current[0].to_numpy(dtype=object), hashes[keep]])
            vectors = np.vstack([current[1], vectors[keep]])
        _write_cache(cache_path, hashes, vectors, model_id)


@dataclass
class CachedEmbedder:
    """`embed(texts) -> vectors` through the cache; `stats` counts distinct texts over all calls.

    A text asked for twice in a run counts once: `cached` = distinct texts
    that were already in the cache, `encoded` = distinct texts encoded now.
    Vectors already returned in this run are kept in memory, so asking again
    does not re-read the cache file.
    """

    encoder: Encoder
    cache_path: Path
    stats: EmbedStats = field(default_factory=EmbedStats)
    _memo: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __call__(self, texts: Sequence[str] | pd.Series) -> np.ndarray:
        texts = [str(t) for t in texts]
        hashes = text_hash(texts)
        if len(texts) and all(h in self._memo for h in hashes):
            self.stats.texts += len(texts)
            return np.vstack([self._memo[h] for h in hashes])
        vectors, stats = embed_with_cache(texts, self.encoder, self.cache_path)
        self._memo.update(zip(hashes, vectors, strict=True))
        encoded = self.stats.encoded + stats.encoded
        self.stats = EmbedStats(texts=self.stats.texts + stats.texts, unique=len(self._memo),
                                cached=len(self._memo) - encoded, encoded=encoded,
                                seconds=self.stats.seconds + stats.seconds,
                                cache_reset=self.stats.cache_reset or stats.cache_reset)
        return vectors


# --------------------------------------------------------------------------- the stored asset


def embeddings_table(product_ids: Sequence[str] | pd.Series, vectors: np.ndarray,
                     hashes: Sequence[str] | np.ndarray) -> pa.Table:
    """`product_id`, `embedding` (fixed-size list of float32), `text_hash`: the product_embeddings file."""
    return pa.table({
        "product_id": pa.array(list(product_ids), type=pa.string()),
        "embedding": vectors_to_arrow(vectors),
        HASH: pa.array(list(hashes), type=pa.string()),
    })


def read_embeddings(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(`product_id`, `text_hash` frame, vectors as a float32 matrix in the same row order)."""
    table = read_arrow(path)
    ids = table.select([c for c in table.column_names if c != "embedding"]).to_pandas()
    return ids, vectors_from_arrow(table.column("embedding"))


# --------------------------------------------------------------------------- sanity metrics


def category_similarity(vectors: np.ndarray, categories: Sequence[str] | pd.Series) -> tuple[float, float]:
    """Mean cosine similarity of pairs of distinct products (within the same category, across categories).

    Vectors must be unit norm. Computed from per-category sums in O(n * dim):
    the sum of s_i . s_j over ordered pairs i != j in a group is |S|^2 - n.
    NaN where there is no such pair (e.g. a single category).
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    codes, _ = pd.factorize(pd.Series(list(categories)))
    total = vectors.sum(axis=0)
    n = len(vectors)
    within_sum, within_pairs, group_sq = 0.0, 0, 0.0
    for code in np.unique(codes):
        group = vectors[codes == code]
        s = group.sum(axis=0)
        self_sim = float((group * group).sum())  # = len(group) for unit vectors
        within_sum += float(s @ s) - self_sim
        within_pairs += len(group) * (len(group) - 1)
        group_sq += float(s @ s)
    across_pairs = n * n - sum(int((codes == c).sum()) ** 2 for c in np.unique(codes))
    within = within_sum / within_pairs if within_pairs else float("nan")
    across = (float(total @ total) - group_sq) / across_pairs if across_pairs else float("nan")
    return within, across


@dataclass(frozen=True)
class CheckOutcome:
    """Result of a plain check function: the Dagster check turns it into an AssetCheckResult."""

    passed: bool
    metadata: dict[str, object]


def check_embeddings(product_ids: pd.Series, vectors: np.ndarray, catalog_ids: pd.Series,
                     norm_tolerance: float = 1e-3) -> CheckOutcome:
    """One vector per catalog product (no duplicate, none missing or extra), finite, unit norm."""
    ids, catalog_ids = pd.Series(product_ids, dtype=object), pd.Series(catalog_ids, dtype=object)
    duplicated = int(ids.duplicated().sum())
    missing = sorted(set(catalog_ids) - set(ids))
    extra = sorted(set(ids) - set(catalog_ids))
    finite = np.isfinite(vectors).all(axis=1) if vectors.size else np.ones(len(ids), dtype=bool)
    norms = np.linalg.norm(np.nan_to_num(vectors), axis=1) if vectors.size else np.ones(len(ids))
    off_norm = int((np.abs(norms - 1.0) > norm_tolerance).sum())
    not_finite = int((~finite).sum())
    passed = duplicated == 0 and not missing and not extra and not_finite == 0 and off_norm == 0
    return CheckOutcome(passed, {
        "products": len(ids), "catalog_products": len(catalog_ids), "duplicated_ids": duplicated,
        "missing_products": len(missing), "unknown_products": len(extra), "vectors_with_nan": not_finite,
        "vectors_not_unit_norm": off_norm, "norm_tolerance": norm_tolerance,
        "dimension": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
        "examples_missing": ", ".join(missing[:5]) or "-", "examples_unknown": ", ".join(extra[:5]) or "-",
    })


# --------------------------------------------------------------------------- plot


def projection_plot(vectors: np.ndarray, categories: Sequence[str] | pd.Series, title: str):
    """A Matplotlib figure: 2-D PCA projection of the vectors, one colour per category."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    categories = pd.Series(list(categories), dtype=object).fillna("(none)")
    fig, ax = plt.subplots(figsize=(8, 5.5))
    if len(vectors) >= 2:
        pca = PCA(n_components=2, random_state=0)
        points = pca.fit_transform(vectors)
        explained = pca.explained_variance_ratio_
        cmap = plt.get_cmap("tab20")
        order = categories.value_counts().index
        for i, category in enumerate(order):
            mask = (categories == category).to_numpy()
            ax.scatter(points[mask, 0], points[mask, 1], s=12 if len(vectors) > 500 else 28, alpha=0.7,
                       color=cmap(i % 20), label=f"{category} ({mask.sum()})")
        ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
        ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title)
    return fig
