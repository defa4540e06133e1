"""Choosing BG/NBD or the supervised model per column on a validation window, and calibrating totals."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.profiles import selection, supervised

CUTOFF = dt.date(2025, 3, 31)


class _StubModel:
    """Stands in for a fitted `supervised.SupervisedModel`: fixed predictions, and records what it was shown."""

    cutoffs = [CUTOFF - dt.timedelta(days=d) for d in (90, 104, 118)]

    def __init__(self, predictions: pd.DataFrame):
        self.predictions, self.seen = predictions, []

    def predict(self, users: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
        self.seen.append((users["date"].max(), as_of))
        return self.predictions


def _validation() -> pd.DataFrame:
    """Four past buyers: a and b bought in the window (3 and 1 days, 300 and 100 spent), c and d did not."""
    return pd.DataFrame({
        "user_id": ["a", "b", "c", "d"],
        "churn_probability": [0.6, 0.2, 0.4, 0.9],  # BG/NBD: c (gone) below a (stayed): AUC 0.75
        "predicted_purchases": [1.0, 2.0, 0.5, 0.5],  # wrong order, total 4.0 against 4 real
        "predicted_clv": [100.0, 50.0, 25.0, 25.0],  # right order, total 200 against 400 real
        "actual_purchases": [3.0, 1.0, 0.0, 0.0], "actual_revenue": [300.0, 100.0, 0.0, 0.0],
        "no_purchase": [False, False, True, True],
    })


def _users() -> pd.DataFrame:
    days = [(CUTOFF - dt.timedelta(days=d)).isoformat() for d in (200, 100, 10)]
    return pd.DataFrame({"date": days + [(CUTOFF + dt.timedelta(days=5)).isoformat()], "user_id": ["a", "b", "c", "a"],
                         "events": 1, "sessions": 1, "orders": 1, "revenue": 10.0})


def test_choose_takes_the_supervised_model_only_where_it_validates_better(monkeypatch):
    boosted = pd.DataFrame({"churn_probability": [0.1, 0.2, 0.8, 0.9],  # perfect churn order: AUC 1
                            "predicted_purchases": [4.0, 2.0, 1.0, 1.0],  # right order, total 8
                            "predicted_clv": [10.0, 20.0, 30.0, 40.0]},  # reversed: worse than BG/NBD
                           index=["a", "b", "c", "d"])
    stub = _StubModel(boosted)
    seen_days = []
    monkeypatch.setattr(supervised, "fit", lambda users, as_of, horizon: seen_days.append(users["date"].max()) or stub)
    chosen = selection.choose(_validation(), _users(), CUTOFF, 90)
    assert chosen.chosen == {"churn_probability": "lightgbm", "predicted_purchases": "lightgbm",
                             "predicted_clv": "bg_nbd"}
    assert seen_days == [(CUTOFF - dt.timedelta(days=10)).isoformat()]  # nothing after the cutoff is trained on
    assert chosen.scale["predicted_purchases"] == pytest.approx(0.5)  # the chosen model's total 8 -> real 4
    assert chosen.scale["predicted_clv"] == pytest.approx(2.0)  # BG/NBD's 200 -> real 400 (at the limit)
    table = chosen.table.set_index("column")
    assert table.loc["churn_probability", "lightgbm"] == 1.0 and table.loc["churn_probability", "bg_nbd"] == 0.75
    assert table.loc["churn_probability", "blend"] == 1.0  # a tie goes to the simpler of the two
    assert 0.5 < table.loc["predicted_clv", "blend"] < 1.0 == table.loc["predicted_clv", "bg_nbd"]


def test_choose_does_not_trust_a_supervised_model_validated_on_too_few_cutoffs(monkeypatch):
    stub = _StubModel(pd.DataFrame({"churn_probability": [0.1, 0.2, 0.8, 0.9], "predicted_purchases": [4.0, 2.0, 1.0, 1.0],
                                    "predicted_clv": [40.0, 30.0, 20.0, 10.0]}, index=["a", "b", "c", "d"]))
    stub.cutoffs = stub.cutoffs[:selection.MIN_VALIDATION_CUTOFFS - 1]
    monkeypatch.setattr(supervised, "fit", lambda users, as_of, horizon: stub)
    chosen = selection.choose(_validation(), _users(), CUTOFF, 90)
    assert set(chosen.chosen.values()) == {"bg_nbd"} and "fewer than" in chosen.note


def test_choose_keeps_bg_nbd_when_the_supervised_model_cannot_be_trained(monkeypatch):
    monkeypatch.setattr(supervised, "fit", lambda users, as_of, horizon: None)
    chosen = selection.choose(_validation(), _users(), CUTOFF, 90)
    assert set(chosen.chosen.values()) == {"bg_nbd"} and not chosen.needs_supervised
    assert "fewer than" in chosen.note
    assert chosen.scale["predicted_purchases"] == 1.0  # BG/NBD's total was right


def test_apply_replaces_the_chosen_columns_of_past_buyers_and_scales_their_totals():
    stub = _StubModel(pd.DataFrame({"churn_probability": [0.05, 0.25], "predicted_purchases": [9.0, 9.0],
                                    "predicted_clv": [9.0, 9.0]}, index=["a", "b"]))
    predictions = pd.DataFrame({"user_id": ["a", "b", "never"], "churn_probability": [0.5, 0.5, 0.97],
                                "predicted_purchases": [1.0, 2.0, 0.03], "predicted_clv": [10.0, 20.0, 0.5]})
    chosen = selection.Selection(chosen={"churn_probability": "lightgbm", "predicted_purchases": "bg_nbd",
                                         "predicted_clv": "blend"},
                                 scale={"predicted_purchases": 1.5, "predicted_clv": 1.0})
    users = _users().query("user_id != 'c'")
    out = selection.apply(predictions, chosen, stub, users, CUTOFF).set_index("user_id")
    assert out["churn_probability"].tolist() == [0.05, 0.25, 0.97]  # never-buyers keep the observed rate
    assert out["predicted_purchases"].tolist() == [1.5, 3.0, 0.03]
    assert out["predicted_clv"].tolist() == [9.5, 14.5, 0.5]  # the mean of BG/NBD's and the supervised model's
    assert stub.seen == [((CUTOFF - dt.timedelta(days=100)).isoformat(), CUTOFF)]  # features as of the cutoff only
    assert np.isfinite(out.to_numpy(dtype=float)).all()


def test_the_choice_and_the_serving_model_are_kept_for_a_week(tmp_path):
    """A night reuses the last refit's choice and boosters; a week later (or an earlier day) they are not used."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"f1": rng.normal(size=200), "f2": rng.normal(size=200)})
    boosters = {t: lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
                             lgb.Dataset(x, label=x["f1"] * k), num_boost_round=5)
                for k, t in enumerate(supervised.OBJECTIVES, start=1)}
    model = supervised.SupervisedModel(boosters, ["f1", "f2"], [CUTOFF - dt.timedelta(days=90)], 200)
    chosen = selection.Selection(chosen={"churn_probability": "blend", "predicted_purchases": "bg_nbd",
                                         "predicted_clv": "lightgbm"},
                                 scale={"predicted_purchases": 0.9, "predicted_clv": 1.2},
                                 table=pd.DataFrame({"column": ["churn_probability"], "bg_nbd": [0.7]}), note="why")
    selection.save(tmp_path, chosen, model, CUTOFF)
    kept, loaded, made = selection.load(tmp_path, CUTOFF + dt.timedelta(days=6))
    assert made == CUTOFF and kept.chosen == chosen.chosen and kept.scale == chosen.scale and kept.note == "why"
    assert loaded.feature_names == ["f1", "f2"] and loaded.cutoffs == model.cutoffs
    for target, booster in boosters.items():
        assert np.allclose(loaded.boosters[target].predict(x), booster.predict(x))
    assert selection.load(tmp_path, CUTOFF + dt.timedelta(days=selection.REFIT_DAYS)) is None  # a week old: refit
    assert selection.load(tmp_path, CUTOFF - dt.timedelta(days=1)) is None  # made after the day asked for
    assert selection.load(tmp_path / "missing", CUTOFF) is None
