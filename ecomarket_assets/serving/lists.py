"""What the recommendation API serves, held in memory and reloaded when the files behind it change.

    <data>/recommendations/recommendations.parquet   the champion's nightly top-K per user (`recommendations`
                                                    asset), with its `model_version` and `as_of`
    <data>/catalog/catalog.parquet                   titles
    <data>/state/user_product/lag=0/pairs.parquet    the serving cutoff's (user, product) state (`rec_candidates`):
                                                    item neighbours (item-kNN cosine and EASE) and the popular and
                                                    trending lists for cold users, computed when it loads
    <data>/flows/state/users.parquet                 the live user state of the flow sensor: `recent_views`
                                                    (newest first) and `last_event_at` per user; may be missing

Each file is a `Watched`: `poll()` compares its (mtime, size) with the loaded one and, when it changed, loads the
new version and swaps one reference, so a request sees the old or the new data, never a mix. A file that does
not load (half written, wrong columns) is recorded as an error and the data in memory stays. A file that
disappears keeps its last loaded version. `RecommendationService.start()` polls every second in a background
thread; requests never read files.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from ecomarket_assets.recommender.generators import ease_weights
from ecomarket_assets.recommender.pair_state import state_name
from ecomarket_assets.recommender.store import RecStore
from ecomarket_assets.serving.session import Item, merge_views, rerank
from ecomarket_assets.storage import DataLayout, read_arrow, read_frame

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_K = 50
TOP_NEIGHBOURS = 50
EASE_MAX_ITEMS = 3000  # EASE inverts an items x items matrix: above this the neighbours are item-kNN only
SESSION_MINUTES = 30.0
REC_COLUMNS = ["user_id", "rank", "product_id", "score", "reason", "reason_type", "title", "as_of", "model_version"]


def flows_state_path(layout: DataLayout) -> Path:
    return layout.root / "flows" / "state" / "users.parquet"


def pair_state_path(layout: DataLayout) -> Path:
    return layout.root / "state" / state_name(0) / "pairs.parquet"


# ----------------------------------------------------------------------------- the nightly lists


@dataclass(frozen=True)
class RecLists:
    by_user: dict[str, tuple[Item, ...]]
    model_version: str | None
    as_of: str | None
    titles: dict[str, str]
    fallback: tuple[Item, ...]  # the most recommended products: the cold list when no pair state is stored


def load_recommendations(path: Path) -> RecLists:
    """The `recommendations` file as a tuple of lines per user (in rank order); refuses an empty or partial one."""
    table = read_arrow(path)
    missing = [c for c in REC_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    if table.num_rows == 0:
        raise ValueError(f"{path}: no rows")
    table = table.select(REC_COLUMNS).sort_by([("user_id", "ascending"), ("rank", "ascending")])
    users, products, titles = (table.column(c).to_pylist() for c in ("user_id", "product_id", "title"))
    scores, reasons, kinds = (table.column(c).to_pylist() for c in ("score", "reason", "reason_type"))
    by_user: dict[str, list[Item]] = {}
    for user, product, title, score, reason, kind in zip(users, products, titles, scores, reasons, kinds, strict=True):
        by_user.setdefault(user, []).append(Item(product, title, float(score), reason, kind))
    versions = pc.value_counts(table.column("model_version").cast("string")).to_pylist()
    version = max(versions, key=lambda v: v["counts"])["values"] if versions else None
    as_of = pc.max(table.column("as_of").cast("string")).as_py()
    title_of = {p: t for p, t in zip(products, titles, strict=True) if t is not None}
    counts = pd.Series(products).value_counts().head(MAX_K)
    top = max(int(counts.iloc[0]), 1)
    fallback = tuple(Item(p, title_of.get(p), round(int(n) / top, 6), "often recommended to other shoppers", "popular")
                     for p, n in counts.items())
    return RecLists({u: tuple(items) for u, items in by_user.items()}, version, as_of, title_of, fallback)


# ----------------------------------------------------------------------------- neighbours and cold lists


@dataclass(frozen=True)
class ItemData:
    titles: dict[str, str]  # every catalog product
    neighbours: dict[str, tuple[tuple[str, float], ...]]
    cold: tuple[Item, ...]  # popular and trending, interleaved
    as_of: str | None  # the pair state's day
    popularity: dict[str, float] = field(default_factory=dict)  # product -> popular score / the best, in (0, 1]


def neighbour_lists(pairs: pd.DataFrame, items: pd.Index, ease_l2: float = 100.0, top: int = TOP_NEIGHBOURS,
                    ease_max_items: int = EASE_MAX_ITEMS) -> dict[str, tuple[tuple[str, float], ...]]:
    """Each product's `top` neighbours from who interacted with what (the same binary matrix the item-kNN and
    EASE generators fit): strength = mean of the cosine similarity and of the positive EASE weight, each
    scaled so the product's strongest neighbour on it is 1 (EASE left out above `ease_max_items` products)."""
    col = items.get_indexer(pairs["product_id"])
    pairs = pairs[col >= 0]
    col = col[col >= 0]
    if not len(pairs):
        return {}
    row = pd.factorize(pairs["user_id"])[0]
    binary = sparse.csr_matrix((np.ones(len(row), dtype=np.float32), (row, col)), shape=(row.max() + 1, len(items)))
    binary.data[:] = 1.0  # a pair stored twice still counts once
    norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
    scaled = binary @ sparse.diags(1.0 / np.where(norms > 0, norms, 1.0))
    cosine = (scaled.T @ scaled).tocsr()
    cosine.setdiag(0.0)
    cosine.eliminate_zeros()
    ids = items.to_numpy()
    out: dict[str, tuple[tuple[str, float], ...]] = {}
    if len(items) <= ease_max_items:
        knn = _scale_rows(cosine.toarray())
        ease = _scale_rows(np.maximum(ease_weights(binary, ease_l2), 0.0))  # row i: weights from i to the others
        strength = 0.5 * knn + 0.5 * ease
        for i in range(len(items)):
            out.update(_top_of(ids[i], ids, np.arange(len(items)), strength[i], top))
        return out
    for i in range(len(items)):
        start, end = cosine.indptr[i], cosine.indptr[i + 1]
        if end > start:
            values = cosine.data[start:end]
            out.update(_top_of(ids[i], ids, cosine.indices[start:end], values / values.max(), top))
    return out


def _scale_rows(matrix: np.ndarray) -> np.ndarray:
    peak = matrix.max(axis=1, keepdims=True)
    return matrix / np.where(peak > 0, peak, 1.0)


def _top_of(product: str, ids: np.ndarray, columns: np.ndarray, values: np.ndarray, top: int) -> dict:
    positive = values > 0
    columns, values = columns[positive], values[positive]
    if not len(values):
        return {}
    order = np.lexsort((ids[columns], -values))[:top]  # strongest first, ties by product id
    return {product: tuple((str(ids[columns[j]]), round(float(values[j]), 6)) for j in order)}


def product_stats(pairs: pd.DataFrame, titles: dict[str, str]) -> pd.DataFrame:
    """Per catalog product with any engagement: buyers this week (b7), in the last 28 days (b28) and the 28
    before (prev), viewers in the last 28 days (v28), and its `popular` (most buyers in the last 28 days, views
    counted a tenth) and `trending` (buyers this week against the weekly mean of the 4 weeks before, as the
    `trending` generator) scores."""
    pairs = pairs[pairs["product_id"].isin(titles)]
    bought = pairs[pairs["purchase_days"] > 0]

    def users_with(frame: pd.DataFrame, flag: str) -> pd.Series:
        return frame[frame[flag] > 0].groupby("product_id").size()

    stats = pd.DataFrame({"b7": users_with(bought, "bought_7d"), "b28": users_with(bought, "bought_28d"),
                          "prev": users_with(bought, "bought_prev_28d"), "v28": users_with(pairs, "viewed_28d")})
    stats = stats.fillna(0.0).sort_index()
    stats["popular"] = np.log1p(stats["b28"] + 0.1 * stats["v28"])
    stats["trending"] = np.maximum(np.log((stats["b7"] + 1) / (stats["prev"] / 4 + 1)), 0) * np.log1p(stats["b7"])
    return stats


def popularity(stats: pd.DataFrame) -> dict[str, float]:
    """product -> its `popular` score over the best one's, in (0, 1]; products without any are left out (0)."""
    popular = stats["popular"][stats["popular"] > 0]
    return {} if popular.empty else (popular / popular.max()).round(6).to_dict()


def cold_list(pairs: pd.DataFrame, titles: dict[str, str], size: int = MAX_K,
              stats: pd.DataFrame | None = None) -> tuple[Item, ...]:
    """Popular and trending (`product_stats`) interleaved, popular first: the cold user sees best-sellers and
    what is taking off. Products outside the catalog are left out."""
    stats = product_stats(pairs, titles) if stats is None else stats
    popular, trending = stats["popular"], stats["trending"]

    def ranked(score: pd.Series) -> pd.Series:
        score = score[score > 0]
        order = np.lexsort((score.index.to_numpy(), -score.to_numpy()))
        return (score.iloc[order] / score.max()).head(size)

    lists = [
        [Item(p, titles.get(p), round(float(s), 6),
              f"a best-seller: {int(stats.at[p, 'b28'])} shoppers bought it in the last four weeks", "popular")
         for p, s in ranked(popular).items()],
        [Item(p, titles.get(p), round(float(s), 6), f"trending: {int(stats.at[p, 'b7'])} shoppers bought it this week",
              "trending") for p, s in ranked(trending).items()],
    ]
    out, seen = [], set()
    for position in range(size):
        for line in lists:
            if position < len(line) and line[position].product_id not in seen:
                seen.add(line[position].product_id)
                out.append(line[position])
    return tuple(out[:size])


def load_item_data(catalog: Path, pairs: Path, plan: Path) -> ItemData:
    """Titles from the catalog; neighbours and the cold list from the pair state when it is stored."""
    frame = read_frame(catalog, columns=["product_id", "title"]).drop_duplicates("product_id")
    titles = dict(zip(frame["product_id"].astype(str), frame["title"].fillna(frame["product_id"]), strict=True))
    if not pairs.exists():
        return ItemData(titles, {}, (), None)
    state = read_frame(pairs, columns=["user_id", "product_id", "purchase_days", "bought_7d", "bought_28d",
                                       "bought_prev_28d", "viewed_28d", "last_day"])
    ease_l2 = 100.0
    if plan.exists():
        ease_l2 = float(json.loads(plan.read_text()).get("ease_l2", ease_l2))
    neighbours = neighbour_lists(state, pd.Index(sorted(titles)), ease_l2)
    last = state["last_day"].max()
    stats = product_stats(state, titles)
    return ItemData(titles, neighbours, cold_list(state, titles, stats=stats), None if pd.isna(last) else str(last.date()),
                    popularity(stats))


# ----------------------------------------------------------------------------- the live session state


@dataclass(frozen=True)
class Sessions:
    views: dict[str, tuple[tuple[str, ...], float]]  # user -> (recent views newest first, last event epoch s)


def load_sessions(path: Path) -> Sessions:
    table = read_arrow(path, columns=["user_id", "recent_views", "last_event_at"])
    # naive timestamps are taken as UTC; epoch microseconds
    last = table.column("last_event_at").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    views = {}
    for user, recent, at in zip(table.column("user_id").to_pylist(), table.column("recent_views").to_pylist(), last,
                                strict=True):
        if user is not None:
            views[str(user)] = (tuple(recent or ()), float("nan") if at is None else at / 1e6)
    return Sessions(views)


# ----------------------------------------------------------------------------- reloading


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except (FileNotFoundError, OSError):
        return None
    return stat.st_mtime_ns, stat.st_size


class Watched(Generic[T]):
    """A value loaded from `path` (and `extra` files it also reads), replaced when their (mtime, size) change."""

    def __init__(self, path: Path, load: Callable[[], T], extra: Sequence[Path] = ()) -> None:
        self.path, self.extra, self.load = path, tuple(extra), load
        self.value: T | None = None
        self.stamp = self.failed = None
        self.loaded_at: float | None = None
        self.error: str | None = None

    def poll(self) -> bool:
        """Load the files if they changed since the last load or failure; True when a new value was swapped in."""
        stamp = (file_stamp(self.path), *(file_stamp(p) for p in self.extra))
        if stamp[0] is None or stamp == self.stamp or stamp == self.failed:
            return False
        try:
            value = self.load()
        except Exception as exc:  # noqa: BLE001 - any unreadable file keeps the good one in memory
            self.error, self.failed = f"{type(exc).__name__}: {exc}", stamp
            log.warning("kept the loaded %s: %s", self.path, self.error)
            return False
        self.value, self.stamp, self.failed, self.error, self.loaded_at = value, stamp, None, None, time.time()
        return True


@dataclass
class RecommendationService:
    """Everything the API serves, from one data directory. `refresh()` polls the files; `start()` does it every
    `every` seconds in a daemon thread (`stop()` ends it)."""

    data_dir: Path | str
    every: float = 1.0
    session_minutes: float = SESSION_MINUTES  # state views older than this are not "just viewed"; 0: no limit
    clock: Callable[[], float] = time.time
    freeze_heap: bool = False  # gc.freeze() after each load: for the API process (see `refresh`), not a library caller
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _checked: float = field(default=float("-inf"), init=False, repr=False)

    def __post_init__(self) -> None:
        layout = DataLayout(self.data_dir)
        self.layout = layout
        path = RecStore(layout).recommendations_path
        self.recs: Watched[RecLists] = Watched(path, lambda: load_recommendations(path))
        catalog, pairs, plan = layout.table("catalog"), pair_state_path(layout), RecStore(layout).plan_path
        self.items: Watched[ItemData] = Watched(catalog, lambda: load_item_data(catalog, pairs, plan), [pairs, plan])
        state = flows_state_path(layout)
        self.sessions: Watched[Sessions] = Watched(state, lambda: load_sessions(state))

    def refresh(self) -> bool:
        """Poll the files; True when new data was swapped in.

        With `freeze_heap` the heap is frozen after a load (`gc.freeze`): the served lists are hundreds of
        thousands of objects, and a full collection scanning them (and the imported libraries) took 125 ms on
        the demo data, the whole p99 of the API. Frozen objects are still freed by reference counting when a
        reload drops them (the served tuples hold no cycles)."""
        self._checked = time.monotonic()
        changed = [watched.poll() for watched in (self.recs, self.items, self.sessions)]
        if any(changed) and self.freeze_heap:
            gc.freeze()
        return any(changed)

    def maybe_refresh(self) -> None:
        """`refresh()` at most once per `every` seconds (for callers without the background thread)."""
        if time.monotonic() - self._checked >= self.every:
            self.refresh()

    def start(self) -> RecommendationService:
        self.refresh()
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.every):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - the thread must outlive any surprise
                    log.exception("refresh failed")

        self._thread = threading.Thread(target=loop, name="recommendation-reload", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # ------------------------------------------------------------------------- answers

    def session_views(self, user_id: str) -> tuple[str, ...]:
        sessions = self.sessions.value
        entry = sessions.views.get(user_id) if sessions else None
        if entry is None:
            return ()
        views, last = entry
        if self.session_minutes > 0 and not (self.clock() - last <= self.session_minutes * 60):
            return ()
        return views

    def recommend(self, user_id: str, viewed: Sequence[str] = (), k: int = 10) -> dict[str, Any]:
        """The API's answer for one user: their nightly list (or the cold list) re-ranked by the session."""
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}")
        recs, items = self.recs.value, self.items.value
        base = recs.by_user.get(user_id) if recs else None
        known = base is not None
        if not known:
            base = items.cold if items and items.cold else recs.fallback if recs else ()
        titles = items.titles if items else (recs.titles if recs else {})
        views = merge_views(viewed, self.session_views(user_id), known=titles or None)
        lines, applied = rerank(base, views, items.neighbours if items else {}, titles, k,
                                items.popularity if items else None)
        return {
            "user_id": user_id, "user_known": known,
            "model_version": recs.model_version if recs else None, "as_of": recs.as_of if recs else None,
            "k": k, "session_views": views, "session_applied": applied,
            "items": [{"product_id": item.product_id, "title": item.title, "score": item.score, "rank": rank,
                       "reason": item.reason, "reason_type": item.reason_type}
                      for rank, item in enumerate(lines, start=1)],
        }

    def products_for(self, user_id: str, viewed: Sequence[str] = (), k: int = 10) -> list[dict[str, Any]]:
        return self.recommend(user_id, viewed, k)["items"]

    def health(self) -> dict[str, Any]:
        recs, items, sessions = self.recs.value, self.items.value, self.sessions.value
        state_stamp = file_stamp(self.sessions.path)
        return {
            "status": "ok" if recs is not None else "no_recommendations",
            "model_version": recs.model_version if recs else None,
            "as_of": recs.as_of if recs else None,
            "users": len(recs.by_user) if recs else 0,
            "loaded_at": _iso(self.recs.loaded_at),
            "file": str(self.recs.path),
            "file_error": self.recs.error,
            "neighbour_products": len(items.neighbours) if items else 0,
            "cold_list": len(items.cold) if items and items.cold else len(recs.fallback) if recs else 0,
            "items_error": self.items.error,
            "state_file": str(self.sessions.path),
            "state_file_age_seconds": None if state_stamp is None else round(self.clock() - state_stamp[0] / 1e9, 3),
            "state_users": len(sessions.views) if sessions else 0,
            "state_error": self.sessions.error,
        }


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- a plain function for other code

_SERVICES: dict[str, RecommendationService] = {}
_SERVICES_LOCK = threading.Lock()


def service_for(data_dir: Path | str | None = None) -> RecommendationService:
    """One service per data directory for this process (default: the configured one), refreshed when called
    (at most once a second); no background thread."""
    if data_dir is None:
        from ecomarket_assets.resources import DataDirResource
        from ecomarket_assets.settings import plain

        data_dir = plain(DataDirResource).layout().root
    key = str(data_dir)
    with _SERVICES_LOCK:
        service = _SERVICES.get(key)
        if service is None:
            service = _SERVICES[key] = RecommendationService(data_dir)
        service.maybe_refresh()
    return service


def products_for(user_id: str, viewed: Sequence[str] = (), k: int = 10,
                 data_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """The lines the API would answer for `user_id` after viewing `viewed` (newest first), without HTTP:
    dicts with product_id, title, score, rank, reason, reason_type. The live state file's views count too."""
    return service_for(data_dir).products_for(user_id, viewed, k)
