"""Who is persuadable: an X-learner on past campaigns' treatment/control outcomes, and Qini curves.

Propensity targeting messages the people most likely to buy — many of whom buy
anyway. The uplift model estimates the *difference* a message makes,
tau(x) = P(buy | message, x) - P(buy | no message, x), from randomised control
groups. The X-learner (Kuenzel et al. 2019) suits our data: control groups are
small (10-20 %), and it borrows the large treatment arm's outcome model to impute
effects for the control arm and vice versa, then blends the two effect models
by the treatment share.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from ecomarket_assets.campaigns.audience import PROFILE_FEATURES
from ecomarket_assets.campaigns.specs import CHANNELS, OBJECTIVES

NUMERIC = (*PROFILE_FEATURES, "product_score", "product_price", "propensity", "order_value")
FEATURES = [*NUMERIC, *(f"channel_{c}" for c in CHANNELS), *(f"objective_{o}" for o in OBJECTIVES)]
# Strongly regularised: an arm of a few hundred controls cannot support deep trees, and the effect models fit
# noisy imputed differences (15 leaves / 40 rows / 150 rounds overfit: see the README's campaign figures).
PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 100,
          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "verbose": -1,
          "num_threads": 2, "seed": 0}
ROUNDS = 100
MIN_SENDS_PER_ARM = 50  # fewer completed sends in either group: no model (campaign_uplift_model says why)


def feature_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's inputs, in a fixed order, from list or audience rows."""
    x = pd.DataFrame({name: pd.to_numeric(frame[name], errors="coerce").astype("float64") for name in NUMERIC},
                     index=frame.index)
    for channel in CHANNELS:
        x[f"channel_{channel}"] = (frame["channel"] == channel).astype("float64")
    for objective in OBJECTIVES:
        x[f"objective_{objective}"] = (frame["objective"] == objective).astype("float64")
    return x[FEATURES]


def _fit(x: pd.DataFrame, y: np.ndarray, objective: str, seed: int) -> lgb.Booster:
    params = PARAMS | {"objective": objective, "seed": seed}
    return lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=ROUNDS)


@dataclass
class UpliftModel:
    """X-learner: outcome models mu0/mu1, effect models tau0/tau1, blended by the treatment share."""

    mu0: lgb.Booster
    mu1: lgb.Booster
    tau0: lgb.Booster
    tau1: lgb.Booster
    treatment_share: float

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_x(feature_matrix(frame))

    def predict_x(self, x: pd.DataFrame) -> np.ndarray:
        # weight tau0 (fitted on controls) by the treatment share: the X-learner's propensity weighting
        return self.treatment_share * self.tau0.predict(x) + (1 - self.treatment_share) * self.tau1.predict(x)

    def predict_outcomes(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        x = feature_matrix(frame)
        return self.mu0.predict(x), self.mu1.predict(x)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("mu0", "mu1", "tau0", "tau1"):
            (folder / f"{name}.txt").write_text(getattr(self, name).model_to_string())  # may be object storage
        (folder / "model.json").write_text(json.dumps({"treatment_share": self.treatment_share, "features": FEATURES}))
        return folder

    @classmethod
    def load(cls, folder: Path) -> UpliftModel:
        meta = json.loads((folder / "model.json").read_text())
        if meta["features"] != FEATURES:
            raise ValueError(f"uplift model at {folder} was trained on other features: {meta['features']}")
        boosters = {n: lgb.Booster(model_str=(folder / f"{n}.txt").read_text()) for n in ("mu0", "mu1", "tau0", "tau1")}
        return cls(**boosters, treatment_share=meta["treatment_share"])


def split_by_send_date(sends: pd.DataFrame, holdout_share: float) -> tuple[pd.DataFrame, pd.DataFrame, dt.date | None]:
    """(train, test, first held-out send date): the later send dates are held out, so the model is scored on
    sends after those it learnt from, as it will be used.

    At least one date is held out and at least one is left to train on, whatever
    the share. With fewer than two dates nothing can be held out: train is all
    sends, test is empty and the date is None.
    """
    dates = sorted(sends["send_date"].unique())
    if len(dates) < 2:
        return sends, sends[:0], None
    split = dates[min(max(int(len(dates) * (1 - holdout_share)), 1), len(dates) - 1)]
    return sends[sends["send_date"] < split], sends[sends["send_date"] >= split], split


def fit_x_learner(sends: pd.DataFrame, outcome: str = "converted", seed: int = 0) -> UpliftModel:
    """Fit on completed sends with `group` and the outcome column."""
    treated = (sends["group"] == "treatment").to_numpy()
    if treated.sum() < MIN_SENDS_PER_ARM or (~treated).sum() < MIN_SENDS_PER_ARM:
        raise ValueError(f"an uplift model needs >= {MIN_SENDS_PER_ARM} sends per arm; got {treated.sum()} treatment, {(~treated).sum()} control")
    x, y = feature_matrix(sends), sends[outcome].to_numpy(float)
    mu0 = _fit(x[~treated], y[~treated], "binary", seed)
    mu1 = _fit(x[treated], y[treated], "binary", seed)
    imputed_treated = y[treated] - mu0.predict(x[treated])  # D1 = Y(1) - mu0(x)
    imputed_control = mu1.predict(x[~treated]) - y[~treated]  # D0 = mu1(x) - Y(0)
    tau1 = _fit(x[treated], imputed_treated, "regression", seed)
    tau0 = _fit(x[~treated], imputed_control, "regression", seed)
    return UpliftModel(mu0, mu1, tau0, tau1, treatment_share=float(treated.mean()))


def qini_curve(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, points: int = 101) -> pd.DataFrame:
    """Incremental outcomes when targeting the top share by score (Radcliffe's Qini):
    Q(k) = Y_t(k) - Y_c(k) * N_t(k) / N_c(k) over the k best-scored, at `points` evenly spaced shares."""
    order = np.argsort(-score, kind="stable")
    t, y = treated[order].astype(float), outcome[order].astype(float)
    n_t, n_c = np.cumsum(t), np.cumsum(1 - t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * (1 - t))
    q = y_t - np.divide(y_c * n_t, n_c, out=np.zeros_like(y_c), where=n_c > 0)
    shares = np.linspace(0, 1, points)
    k = np.round(shares * len(score)).astype(int)
    values = np.concatenate([[0.0], q])[k]
    return pd.DataFrame({"share": shares, "incremental": values})


def qini_coefficient(curve: pd.DataFrame) -> float:
    """Area between the Qini curve and the random-targeting diagonal (same end point), per unit of share."""
    random_line = curve["share"] * curve["incremental"].iloc[-1]
    return float(np.trapezoid(curve["incremental"] - random_line, curve["share"]))


def true_incremental_at(score: np.ndarray, true_uplift: np.ndarray, shares: list[float]) -> dict[float, float]:
    """Expected incremental conversions when the top share by score is messaged (`true_uplift`: known truth)."""
    order = np.argsort(-score, kind="stable")
    total = np.concatenate([[0.0], np.cumsum(true_uplift[order])])
    return {s: float(total[int(round(s * len(score)))]) for s in shares}


# --------------------------------------------------------------------------- serving and evaluation

ARTIFACT = "uplift_model"
METHODS = ("uplift", "propensity", "random")
SHARES = (0.1, 0.2, 0.3, 0.5)


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """Feature rows (see FEATURES) in, estimated uplift in conversion probability out."""

    def load_context(self, context) -> None:
        self.model = UpliftModel.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.Series:
        return pd.Series(self.model.predict_x(pd.DataFrame(model_input)[FEATURES]), name="uplift")


@dataclass
class TargetingEvaluation:
    curves: pd.DataFrame  # method, share, incremental
    summary: pd.DataFrame  # method, qini, incremental at SHARES


def method_scores(model: UpliftModel, frame: pd.DataFrame, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"uplift": model.predict(frame), "propensity": frame["propensity"].to_numpy(float),
            "random": rng.random(len(frame))}


def evaluate_targeting(model: UpliftModel, sends: pd.DataFrame) -> TargetingEvaluation:
    """Qini curves on held-out sends (observed outcomes of randomised groups)."""
    treated = (sends["group"] == "treatment").to_numpy()
    outcome = sends["converted"].to_numpy(float)
    curves, rows = [], []
    for method, score in method_scores(model, sends).items():
        curve = qini_curve(score, treated, outcome).assign(method=method)
        curves.append(curve)
        at = {f"incremental_at_{int(s * 100)}pct": float(np.interp(s, curve["share"], curve["incremental"])) for s in SHARES}
        rows.append({"method": method, "qini": qini_coefficient(curve), **at})
    return TargetingEvaluation(pd.concat(curves, ignore_index=True), pd.DataFrame(rows))


class CampaignTruth(Protocol):
    """How customers truly answer a message: only a source that knows it (ShopSourceResource.truth) has one."""

    def campaign_response(self, sends: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
        """Per send: at least `true_uplift`, the true change in conversion probability the message causes."""
        ...


@dataclass
class BudgetEvaluation:
    per_send: pd.DataFrame  # campaign, send_date, pool, budget, true incremental conversions per method
    totals: dict[str, float]


def true_targeting_at_budget(model: UpliftModel, audiences: pd.DataFrame, sends: pd.DataFrame,
                             truth: CampaignTruth, catalog: pd.DataFrame) -> BudgetEvaluation:
    """Against the source's truth: for each held-out send, message as many people as it did, chosen from its
    campaign's eligible pool (minus people already in the campaign earlier) by each method; sum their true uplift."""
    rows = []
    for (campaign, day), sent in sends.groupby(["campaign", "send_date"], sort=True):
        earlier = set(sends.loc[(sends["campaign"] == campaign) & (sends["send_date"] < day), "user_id"])
        pool = audiences[(audiences["campaign"] == campaign) & audiences["eligible"] & ~audiences["user_id"].isin(earlier)]
        pool = pool.reset_index(drop=True)
        pool = pool.assign(send_time=pd.Timestamp(day, tz="UTC") + pd.to_timedelta(pool["send_minute"].to_numpy(), unit="min"),
                           measurement_days=int(sent["measurement_days"].iloc[0]))
        true_uplift = truth.campaign_response(pool, catalog)["true_uplift"].to_numpy()
        budget = min(len(sent), len(pool))
        share = budget / max(len(pool), 1)
        scores = method_scores(model, pool) | {"as_planned": pool["rank_score"].to_numpy(float), "oracle": true_uplift}
        rows.append({"campaign": campaign, "send_date": day, "pool": len(pool), "budget": budget,
                     **{m: true_incremental_at(s, true_uplift, [share])[share] for m, s in scores.items()}})
    per_send = pd.DataFrame(rows)
    methods = [*METHODS, "as_planned", "oracle"]
    return BudgetEvaluation(per_send, {m: float(per_send[m].sum()) for m in methods} if len(per_send) else {})
