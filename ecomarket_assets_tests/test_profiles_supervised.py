"""The supervised churn and value model: features only from before a cutoff, labels only from after it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.profiles import supervised

CUTOFF = dt.date(2025, 3, 31)


def _day(offset: int) -> str:
    return (CUTOFF + dt.timedelta(days=offset)).isoformat()


def users_table() -> pd.DataFrame:
    """ann buys 3 times (40, 10 and 2 days before the cutoff) and once after; ben once long ago; cat only browses."""
    rows = [
        ("ann", -40, 1, 20.0), ("ann", -10, 2, 30.0), ("ann", -2, 1, 10.0), ("ann", 5, 1, 99.0),
        ("ann", -1, 0, 0.0),  # a visit without an order
        ("ben", -100, 1, 50.0), ("ben", 20, 1, 70.0), ("ben", 200, 1, 1.0),
        ("cat", -3, 0, 0.0),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "offset", "orders", "revenue"])
    return pd.DataFrame({"date": frame["offset"].map(_day), "user_id": frame["user_id"], "events": 3,
                         "sessions": 1, "orders": frame["orders"], "revenue": frame["revenue"]})


def test_cutoff_features_see_only_buyers_and_days_up_to_the_cutoff():
    features = supervised.cutoff_features(users_table(), CUTOFF)
    assert list(features.index) == ["ann", "ben"]  # cat never ordered
    ann, ben = features.loc["ann"], features.loc["ben"]
    assert (ann["days_since_last_order"], ann["days_since_first_order"], ann["purchase_days"]) == (2, 40, 3)
    assert (ann["orders"], ann["revenue"], ann["order_value"]) == (4, 60.0, 15.0)  # the 99 after the cutoff is unseen
    assert ann["mean_gap_days"] == 19.0 and np.isnan(ben["mean_gap_days"])
    assert (ann["purchase_days_30"], ann["revenue_30"], ann["purchase_days_90"]) == (2, 40.0, 3)
    assert ann["days_since_last_visit"] == 1 and ann["active_days_30"] == 3
    assert ben["days_since_last_order"] == 100 and ben["purchase_days_90"] == 0
    assert features["window_month"].eq(4).all()  # the target window starts on 1 April


def test_labels_count_purchase_days_and_revenue_inside_the_window_only():
    got = supervised.labels(users_table(), CUTOFF, 90, pd.Index(["ann", "ben", "dan"]))
    assert got.loc["ann"].tolist() == [1.0, 99.0, 0.0]
    assert got.loc["ben"].tolist() == [1.0, 70.0, 0.0]  # day +200 is outside the 90 days
    assert got.loc["dan"].tolist() == [0.0, 0.0, 1.0]


def test_training_cutoffs_have_a_known_future_and_enough_history():
    users = users_table()
    cutoffs = supervised.training_cutoffs(users, CUTOFF + dt.timedelta(days=200), 90, step=14)
    first = dt.date.fromisoformat(users["date"].min())
    assert cutoffs and cutoffs[0] == CUTOFF + dt.timedelta(days=110)
    assert all(c + dt.timedelta(days=90) <= CUTOFF + dt.timedelta(days=200) for c in cutoffs)
    assert all((c - first).days + 1 >= supervised.MIN_HISTORY_DAYS for c in cutoffs)
    assert supervised.training_cutoffs(users, CUTOFF - dt.timedelta(days=50), 90) == []  # too early: no model


def _shop(seed: int = 3, customers: int = 400, days: int = 240) -> pd.DataFrame:
    """Customers with their own purchase rate; a third stop buying at a random day."""
    rng = np.random.default_rng(seed)
    start = CUTOFF - dt.timedelta(days=days)
    rows = []
    for c in range(customers):
        rate, stop = rng.gamma(1.0, 0.03), rng.integers(0, days * 2) if c % 3 == 0 else days * 2
        for d in np.flatnonzero(rng.random(days + 120) < rate):
            if d < stop:
                rows.append((f"u{c}", (start + dt.timedelta(days=int(d))).isoformat(), 1, float(rng.gamma(2, 20))))
    frame = pd.DataFrame(rows, columns=["user_id", "date", "orders", "revenue"])
    return frame.assign(events=2, sessions=1)


def test_fit_ignores_everything_after_as_of_and_ranks_churners_above_chance():
    users = _shop()
    model = supervised.fit(users, CUTOFF, 90)
    blind = supervised.fit(users[users["date"] <= CUTOFF.isoformat()], CUTOFF, 90)
    assert model is not None and model.rows > 0
    pd.testing.assert_frame_equal(model.predict(users, CUTOFF), blind.predict(users, CUTOFF))  # no leakage
    predicted = model.predict(users, CUTOFF)
    scores = supervised.score(predicted, supervised.labels(users, CUTOFF, 90, predicted.index))
    assert scores["churn_auc"] > 0.65 and scores["purchases_spearman"] > 0.3
    assert 0.5 < scores["purchases_total_ratio"] < 2.0
    assert predicted["churn_probability"].between(0, 1).all()


def test_fit_without_a_usable_cutoff_returns_none():
    assert supervised.fit(users_table(), CUTOFF, 90) is None


@pytest.mark.parametrize("column", ["churn_probability", "predicted_purchases", "predicted_clv"])
def test_predictions_carry_the_bg_nbd_column_names(column):
    users = _shop(customers=150)
    assert column in supervised.fit(users, CUTOFF, 90).predict(users, CUTOFF).columns
