"""The shop history the recommender reads, and one candidate set per cutoff.

Assets call these; each is plain pandas so tests and benchmarks run them without Dagster.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ecomarket_assets.compute import Engine, distinct
from ecomarket_assets.profiles import activity as act
from ecomarket_assets.profiles.state import RefreshReport
from ecomarket_assets.recommender.candidates import attach_labels, build_candidates
from ecomarket_assets.recommender.generators import FittedGenerators, fit_generators
from ecomarket_assets.recommender.interactions import (
    Interactions,
    build_interactions,
    interactions_from_pairs,
    label_rows,
)
from ecomarket_assets.recommender.pair_state import refresh_pair_state
from ecomarket_assets.recommender.rivals import TifuSettings
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets.text.embeddings import embeddings_path, read_embeddings


@dataclass
class ShopHistory:
    interactions: Any  # user_daily_activity interactions (pandas, or Dask on the dask engine): date, user_id, ...
    catalog: pd.DataFrame
    customers: pd.DataFrame
    embeddings: tuple[pd.Series, np.ndarray] | None
    engine: Engine = field(default_factory=lambda: Engine("local"))  # where the per-pair reductions run
    # (user, product) summaries served from the running pair state, by cutoff (`use_pair_states`). With
    # `since`, `interactions` holds only the days from then on (enough for labels): every cutoff needs a state.
    pair_summaries: dict = field(default_factory=dict)
    since: dt.date | None = None
    # The latest cutoff's reductions: EASE tuning and the first training set share a cutoff, and on Dask each
    # reduction is a pass over every stored day. One entry, so earlier cutoffs' matrices are not kept alive.
    _latest: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def product_ids(self) -> np.ndarray:
        return self.catalog["product_id"].drop_duplicates().to_numpy()

    @cached_property
    def last_day(self) -> dt.date:
        return dt.date.fromisoformat(str(self.engine.compute(self.interactions["date"].max())))

    def interactions_at(self, cutoff: dt.date) -> Interactions:
        return self._reuse(("interactions", cutoff), lambda: self._build_interactions(cutoff))

    def _build_interactions(self, cutoff: dt.date) -> Interactions:
        if cutoff in self.pair_summaries:
            return interactions_from_pairs(self.pair_summaries[cutoff].reset_index(), self.product_ids, cutoff)
        if self.since is not None:
            raise ValueError(f"history holds only days from {self.since}: no pair state for cutoff {cutoff}")
        return build_interactions(self.interactions, self.product_ids, cutoff, self.engine)

    def labels(self, cutoff: dt.date, days: int) -> pd.DataFrame:
        return self._reuse(("labels", cutoff, days), lambda: label_rows(self.interactions, cutoff, days, self.engine))

    def _reuse(self, key: tuple, build):
        if key not in self._latest:
            self._latest = {k: v for k, v in self._latest.items() if k[1:2] == key[1:2]}  # same cutoff only
            self._latest[key] = build()
        return self._latest[key]


def read_history(layout: DataLayout, engine: Engine | None = None, since: dt.date | None = None) -> ShopHistory:
    """The shop's history (only the days from `since` when given); on Dask the interactions stay a lazy frame."""
    engine = engine or Engine("local")
    days = [d for d in layout.activity_days() if since is None or d >= since.isoformat()]
    if not days:
        raise FileNotFoundError("no user_daily_activity partitions: materialize raw_events and user_daily_activity")
    embeddings = None
    path = embeddings_path(layout.root)
    if path.exists():
        ids, vectors = read_embeddings(path)
        embeddings = (ids["product_id"], vectors)
    if engine.is_dask:
        interactions = engine.read_parquet([layout.activity_day("interactions", d) for d in days],
                                           act.SCHEMAS["interactions"].names)
    else:
        interactions = act.read_days(layout, None if since is None else days).interactions
    return ShopHistory(interactions, read_frame(layout.table("catalog")), read_frame(layout.table("customers")),
                       embeddings, engine, since=since)


def use_pair_states(history: ShopHistory, layout: DataLayout, cutoffs, full_rebuild: bool = False,
                    last_day: dt.date | None = None) -> list[RefreshReport]:
    """Serve each cutoff's (user, product) summary from its running state (folded, or rebuilt on the engine).

    A state is kept per lag of its cutoff behind `last_day` (default: the newest stored day).
    """
    last_day = last_day or dt.date.fromisoformat(layout.activity_days()[-1])
    reports = []
    for cutoff in cutoffs:
        history.pair_summaries[cutoff], report = refresh_pair_state(layout, cutoff, history.engine, full_rebuild,
                                                                    last_day)
        reports.append(report)
    return reports


def fit_at(history: ShopHistory, cutoff: dt.date, ease_l2: float, tifu: TifuSettings | None = None) -> FittedGenerators:
    return fit_generators(history.interactions_at(cutoff), history.catalog, history.customers, history.embeddings,
                          ease_l2=ease_l2, tifu=tifu)


@dataclass
class CandidateSet:
    name: str
    cutoff: dt.date
    frame: pd.DataFrame
    labels: pd.DataFrame | None  # purchases in the label window (None for serving)
    users: pd.Index
    cold_users: pd.Index  # users with no history before the cutoff
    generators: FittedGenerators

    def candidate_recall(self) -> float:
        """Share of the window's purchases that made it into the user's candidates (the ranker's ceiling)."""
        if self.labels is None or not len(self.labels):
            return float("nan")
        return float(self.frame["label"].sum() / len(self.labels))


def labelled_set(history: ShopHistory, name: str, cutoff: dt.date, window_days: int, ease_l2: float,
                 per_generator: int, tifu: TifuSettings | None = None) -> CandidateSet:
    """Candidates for every customer who bought in [cutoff, cutoff + window), labelled by those purchases."""
    gen = fit_at(history, cutoff, ease_l2, tifu)
    labels = history.labels(cutoff, window_days)
    users = pd.Index(np.sort(labels["user_id"].unique()), name="user_id")
    frame = attach_labels(build_candidates(gen, users, per_generator), labels)
    return CandidateSet(name, cutoff, frame, labels, users, users[gen.inter.user_rows(users) < 0], gen)


def serving_users(history: ShopHistory, cutoff: dt.date) -> pd.Index:
    """Every customer with an id known before the cutoff: in the customers table or seen in events."""
    interactions = history.interactions
    if cutoff in history.pair_summaries:
        seen = history.pair_summaries[cutoff].index.unique(level="user_id")
    else:
        seen = history.engine.compute(distinct(interactions.loc[interactions["date"] < cutoff.isoformat(), "user_id"]))
    seen = pd.Series(np.asarray(seen), dtype=object)
    customers = history.customers
    signed = customers.loc[customers["signup_time"].isna() |
                           (customers["signup_time"] < pd.Timestamp(cutoff, tz="UTC")), "user_id"]
    return pd.Index(np.sort(pd.unique(pd.concat([seen, signed]).dropna().astype(str))), name="user_id")


def serving_set(history: ShopHistory, cutoff: dt.date, ease_l2: float, per_generator: int,
                rising: pd.Index | None = None, tifu: TifuSettings | None = None) -> CandidateSet:
    """Candidates for everyone, with reason anchors; forecast-rising products offered to every user."""
    gen = fit_at(history, cutoff, ease_l2, tifu)
    users = serving_users(history, cutoff)
    extra = None
    if rising is not None and len(rising):
        positions = gen.inter.items.get_indexer(rising)
        extra = positions[positions >= 0]
    frame = build_candidates(gen, users, per_generator, extra_items=extra, anchors=True)
    frame["forecast_rising"] = frame["product_id"].isin(rising) if rising is not None else False
    return CandidateSet("serving", cutoff, frame, None, users, users[gen.inter.user_rows(users) < 0], gen)
