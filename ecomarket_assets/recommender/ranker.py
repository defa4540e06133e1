"""The learned ranker: LightGBM lambdarank over candidate rows, and its MLflow pyfunc form.

Training rows come from candidate sets built at cutoffs before the hold-out,
labelled by what each user bought in the 28 days after their cutoff. Users whose
candidates contain none of their purchases carry no ranking signal and are left
out of training (they still count against candidate recall in the evaluation).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from ecomarket_assets.mlops.tracking import gain_importance
from ecomarket_assets.recommender.candidates import FEATURES

ARTIFACT = "recommender_model"
PARAMS: dict[str, object] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "lambdarank_truncation_level": 20,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 2,
    "verbose": -1,
}


COLD_POLICIES = ("ranker", "popular")


@dataclass
class RankerFit:
    booster: lgb.Booster
    rounds: int
    valid_ndcg: float
    train_rows: int
    train_users: int
    seconds: float
    cold_policy: str  # how users without history are ranked: by the ranker or by popularity
    cold_valid_ndcg: dict[str, float]  # NDCG@10 of each policy on the validation split's cold users
    validation: pd.DataFrame | None = None  # the validation users' rows, scored by the model that never saw them


def rankable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of users with at least one purchased product among their candidates, grouped by user."""
    positives = frame.groupby("user_id", sort=False)["label"].transform("max") > 0
    return frame[positives].sort_values(["user_id"], kind="stable")


def _dataset(frame: pd.DataFrame, reference: lgb.Dataset | None = None) -> lgb.Dataset:
    groups = frame.groupby("user_id", sort=False).size().to_numpy()
    return lgb.Dataset(frame[FEATURES], label=frame["label"], group=groups, reference=reference,
                       free_raw_data=False)


def _user_in_validation(user_ids: pd.Series, share: float, seed: int) -> np.ndarray:
    hashed = pd.util.hash_pandas_object(user_ids.astype(str) + f"#{seed}", index=False).to_numpy()
    return (hashed % 1000) < share * 1000


# (settings, training rows grouped by user, rounds, validation rows or None) -> (booster, validation NDCG@10 per round)
RankTrainer = Callable[[dict, pd.DataFrame, int, pd.DataFrame | None], tuple[lgb.Booster, list[float]]]
PATIENCE = 50  # rounds without a better validation NDCG@10 before training stops


def local_trainer(settings: dict, rows: pd.DataFrame, rounds: int,
                  valid: pd.DataFrame | None = None) -> tuple[lgb.Booster, list[float]]:
    """lgb.train in this process; with `valid`, early stopping on its NDCG@10."""
    train_set = _dataset(rows)
    if valid is None:
        return lgb.train(settings, train_set, num_boost_round=rounds), []
    curve: dict = {}
    booster = lgb.train(settings, train_set, num_boost_round=rounds, valid_sets=[_dataset(valid, train_set)],
                        callbacks=[lgb.early_stopping(PATIENCE, verbose=False), lgb.record_evaluation(curve)])
    return booster, list(curve["valid_0"]["ndcg@10"])


def dask_trainer(client, partitions: int) -> RankTrainer:
    """`lightgbm.dask.DaskLGBMRanker` on the cluster; each partition holds whole users (query groups).

    Dask LightGBM has no early stopping, and its evaluation results cover only one worker's share of the
    validation rows. So with `valid` it trains every round, and the validation curve is computed here over
    all validation users, tree by tree; `best_round` then applies the same patience rule as lgb.train.
    """

    def train(settings: dict, rows: pd.DataFrame, rounds: int,
              valid: pd.DataFrame | None = None) -> tuple[lgb.Booster, list[float]]:
        from lightgbm.dask import DaskLGBMRanker

        params = {k: v for k, v in settings.items() if k not in ("num_threads", "eval_at", "metric")}
        model = DaskLGBMRanker(client=client, n_estimators=rounds, **params)  # threads: each worker's own
        x, y, group = _dask_queries(client, rows, partitions)
        booster = model.fit(x, y, group=group).to_local().booster_
        return booster, (validation_curve(booster, valid) if valid is not None else [])

    return train


def validation_curve(booster: lgb.Booster, valid: pd.DataFrame, k: int = 10) -> list[float]:
    """Mean NDCG@k over the validation users after each boosting round (binary relevance: label > 0)."""
    group, _ = pd.factorize(valid["user_id"])
    relevant = (valid["label"].to_numpy() > 0).astype(float)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    positives = np.minimum(np.bincount(group, weights=relevant), k).astype(int)
    ideal = np.concatenate([[np.nan], np.cumsum(discounts)])[positives]  # NaN: a user with nothing bought
    features, scores, curve = valid[FEATURES], np.zeros(len(valid)), []
    for tree in range(booster.num_trees()):
        scores += booster.predict(features, start_iteration=tree, num_iteration=1, raw_score=True)
        order = np.lexsort((-scores, group))
        ordered = group[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        rank = np.arange(len(ordered)) - np.repeat(starts, np.diff(np.r_[starts, len(ordered)]))
        top = rank < k
        dcg = np.bincount(ordered[top], weights=relevant[order][top] * discounts[rank[top]], minlength=len(ideal))
        curve.append(float(np.nanmean(dcg / ideal)))
    return curve


def _dask_queries(client, rows: pd.DataFrame, partitions: int):
    """Features, labels and group sizes as Dask collections split at user boundaries.

    The chunks are scattered to the workers first, so the task graph carries references, not the rows.
    """
    import operator

    import dask
    import dask.array as da
    import dask.dataframe as dd

    sizes = rows.groupby("user_id", sort=False).size().to_numpy()
    parts = np.array_split(np.arange(len(sizes)), max(1, min(partitions, len(sizes))))
    ends = np.cumsum(sizes)
    bounds = [(int(ends[p[0]] - sizes[p[0]]), int(ends[p[-1]])) for p in parts if len(p)]
    chunks = client.scatter([rows.iloc[a:b][[*FEATURES, "label"]] for a, b in bounds])
    x = dd.from_delayed([dask.delayed(operator.getitem)(c, FEATURES) for c in chunks], meta=rows[FEATURES].iloc[:0])
    y = dd.from_delayed([dask.delayed(operator.getitem)(c, "label") for c in chunks], meta=rows["label"].iloc[:0])
    group = da.concatenate([da.from_delayed(dask.delayed(sizes[p]), shape=(len(p),), dtype=sizes.dtype)
                            for p in parts if len(p)])
    return x, y, group


def best_round(curve: list[float], patience: int = PATIENCE) -> tuple[int, float]:
    """The round early stopping keeps: the first best score, once `patience` rounds bring nothing better."""
    best, best_at = -np.inf, 0
    for i, value in enumerate(curve):
        if value > best:
            best, best_at = value, i
        elif i - best_at >= patience:
            break
    return best_at + 1, float(best)


def train_ranker(frames: list[pd.DataFrame], seed: int = 7, max_rounds: int = 600, valid_share: float = 0.2,
                 params: dict | None = None, trainer: RankTrainer | None = None) -> RankerFit:
    """Fit with early stopping on a user split of the training cutoffs (never on the hold-out)."""
    start = time.perf_counter()
    trainer = trainer or local_trainer
    data = rankable(pd.concat([_with_set(f, i) for i, f in enumerate(frames)], ignore_index=True))
    person = data["user_id"].str.rsplit("@", n=1).str[0]  # a person's cutoffs stay on one side
    valid = _user_in_validation(person, valid_share, seed)
    settings = {**PARAMS, **(params or {}), "seed": seed}
    split, curve = trainer(settings, data[~valid], max_rounds, data[valid])
    rounds, best = best_round(curve)
    policy, cold_ndcg = choose_cold_policy(data, rounds, seed, params, trainer)
    final = refit(frames, rounds, seed, params, trainer)
    held_out = data[valid].copy()
    held_out["score"] = split.predict(held_out[FEATURES], num_iteration=rounds, num_threads=2)
    return RankerFit(final, rounds, best, len(data), int(data["user_id"].nunique()), time.perf_counter() - start,
                     policy, cold_ndcg, held_out)


def choose_cold_policy(data: pd.DataFrame, rounds: int, seed: int, params: dict | None,
                       trainer: RankTrainer | None = None) -> tuple[str, dict[str, float]]:
    """Users without history are few, so the ranker may learn little about them. Fit it on the warm users
    of the training cutoffs and keep it for cold users only if it ranks the (unseen) cold users of those
    cutoffs better than plain popularity does. Decided before, and without, the hold-out."""
    cold = data["user_items"] == 0
    if not cold.any() or cold.all():
        return "ranker", {}
    settings = {**PARAMS, **(params or {}), "seed": seed}
    settings.pop("metric", None)
    warm_only, _ = (trainer or local_trainer)(settings, data[~cold], rounds, None)
    by_policy = {"ranker": warm_only.predict(data.loc[cold, FEATURES], num_threads=2),
                 "popular": data.loc[cold, "popular_score"].to_numpy()}
    ndcg = {name: _group_ndcg(data[cold], scores) for name, scores in by_policy.items()}
    return ("popular" if ndcg["popular"] > ndcg["ranker"] else "ranker"), ndcg


def _group_ndcg(frame: pd.DataFrame, scores: np.ndarray, k: int = 10) -> float:
    from ecomarket_assets.recommender.metrics import ndcg_at_k

    ranked = frame.assign(score=scores).sort_values(["user_id", "score"], ascending=[True, False])
    values = [ndcg_at_k(list(g["product_id"]), set(g.loc[g["label"] > 0, "product_id"]), k)
              for _, g in ranked.groupby("user_id", sort=False)]
    return float(np.mean(values))


def _with_set(frame: pd.DataFrame, index: int) -> pd.DataFrame:
    """Users appear at several cutoffs: keep each (user, cutoff) its own query group."""
    return frame.assign(user_id=frame["user_id"].astype(str) + f"@{index}")


def refit(frames: list[pd.DataFrame], rounds: int, seed: int = 7, params: dict | None = None,
          trainer: RankTrainer | None = None) -> lgb.Booster:
    """All users of `frames`, a fixed number of rounds (chosen earlier by early stopping)."""
    data = rankable(pd.concat([_with_set(f, i) for i, f in enumerate(frames)], ignore_index=True))
    settings = {**PARAMS, **(params or {}), "seed": seed}
    settings.pop("metric", None)
    return (trainer or local_trainer)(settings, data, rounds, None)[0]


def score(booster: lgb.Booster, candidates: pd.DataFrame, cold_policy: str = "ranker",
          features: list[str] | None = None) -> np.ndarray:
    """Ranking scores; comparable within a user only (cold users may be ranked by popularity). `features`: the
    columns the booster was trained on (a registered version keeps its own list), default today's FEATURES."""
    scores = booster.predict(candidates[features or FEATURES], num_threads=2)
    if cold_policy == "popular":
        scores = np.where(candidates["user_items"].to_numpy() == 0, candidates["popular_score"].to_numpy(), scores)
    return scores


def feature_importance(booster: lgb.Booster) -> pd.DataFrame:
    return gain_importance(booster)


def save_ranker(booster: lgb.Booster, folder: Path, meta: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ranker.txt").write_text(booster.model_to_string())  # via the path API: may be object storage
    (folder / "model.json").write_text(json.dumps({"features": FEATURES, **meta}, indent=2, default=str))
    return folder


def load_ranker(folder: Path) -> lgb.Booster:
    return lgb.Booster(model_str=(folder / "ranker.txt").read_text())


def load_meta(folder: Path) -> dict:
    return json.loads((folder / "model.json").read_text())


class RecommenderRanker(mlflow.pyfunc.PythonModel):
    """Candidate feature rows in, one ranking score per row out (higher = show first)."""

    def load_context(self, context) -> None:
        folder = Path(context.artifacts[ARTIFACT])
        self.booster = load_ranker(folder)
        meta = json.loads((folder / "model.json").read_text())
        self.features, self.cold_policy = meta["features"], meta.get("cold_policy", "ranker")
        self.serve = meta.get("serve")  # the filters and MMR chosen with this version (None: older versions)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.Series:
        frame = pd.DataFrame(model_input)
        return pd.Series(score(self.booster, frame, self.cold_policy, self.features), name="score")
