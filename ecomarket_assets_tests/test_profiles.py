"""Profile features on hand-built event tables with known answers; incremental == from scratch; model quality."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.profiles import predictive
from ecomarket_assets.profiles.activity import DailyActivity, daily_activity
from ecomarket_assets.profiles.build import build_profiles
from ecomarket_assets.profiles.features import user_features
from ecomarket_assets.profiles.rfm import rfm_table, segment_name
from ecomarket_assets.profiles.segments import segment_users
from ecomarket_assets.simulator.shop import SimConfig, simulate

AS_OF = dt.date(2025, 3, 20)
CATALOG = pd.DataFrame({"product_id": ["mug", "pan", "tea"], "title": ["Mug", "Pan", "Tea"], "description": None,
                        "category": ["kitchen", "kitchen", "coffee & tea"], "brand": ["Acme", "Acme", "Leaf"],
                        "price": [10.0, 30.0, 5.0]})
CUSTOMERS = pd.DataFrame({"user_id": ["alice", "bob"], "signup_time": pd.to_datetime(["2025-01-01", "2025-03-01"], utc=True),
                          "country": ["UK", "FR"], "email_opt_in": [True, False], "sms_opt_in": [False, False],
                          "push_opt_in": [None, None]})


def ev(user, day, hour, kind, product, qty=1, price=10.0, order=None, session="s"):
    return {"event_id": f"{user}-{day}-{hour}-{kind}-{product}", "event_time": pd.Timestamp(f"2025-03-{day:02d} {hour:02d}:00", tz="UTC"),
            "user_id": user, "session_id": f"{user}-{session}{day}", "event_type": kind, "product_id": product,
            "quantity": qty, "unit_price": price, "order_id": order, "channel": "web"}


def alice_and_bob() -> pd.DataFrame:
    rows = [
        # alice: three orders (days 1, 6, 11) worth 10, 20, 30; one carted pan never bought; returns one mug
        ev("alice", 1, 9, "view", "mug"), ev("alice", 1, 9, "cart", "mug"), ev("alice", 1, 9, "purchase", "mug", 1, 10.0, "o1"),
        ev("alice", 6, 9, "view", "mug"), ev("alice", 6, 9, "cart", "mug"), ev("alice", 6, 9, "purchase", "mug", 2, 10.0, "o2"),
        ev("alice", 6, 20, "view", "pan", price=30.0), ev("alice", 6, 20, "cart", "pan", price=30.0),
        ev("alice", 11, 9, "view", "tea", price=5.0), ev("alice", 11, 9, "cart", "tea", price=5.0),
        ev("alice", 11, 9, "purchase", "tea", 6, 5.0, "o3"),
        ev("alice", 15, 9, "return", "mug", 1, 10.0, "o2"),
        # bob: only browses tea
        ev("bob", 18, 22, "view", "tea", price=5.0), ev("bob", 19, 22, "view", "tea", price=5.0),
        # a guest purchase: counts for demand, not for any profile
        {**ev("guest", 12, 12, "purchase", "pan", 1, 30.0, "o9"), "user_id": None},
    ]
    frame = pd.DataFrame(rows)
    frame["quantity"] = frame["quantity"].astype("int32")
    return frame


@pytest.fixture
def features() -> pd.DataFrame:
    return user_features(daily_activity(alice_and_bob()), CUSTOMERS, CATALOG, AS_OF).set_index("user_id")


def test_behaviour_of_a_user_with_three_known_orders(features):
    alice = features.loc["alice"]
    assert alice["orders"] == 3 and alice["revenue"] == pytest.approx(60.0)
    assert alice["avg_order_value"] == pytest.approx(20.0)
    assert alice["days_between_orders"] == pytest.approx(5.0)
    assert alice["days_since_last_order"] == 9  # 2025-03-11 -> 2025-03-20
    assert alice["purchase_units"] == 9 and alice["return_units"] == 1
    assert alice["return_rate"] == pytest.approx(1 / 9)
    assert alice["cart_abandonment_rate"] == pytest.approx(1 / 4)  # pan carted, never bought
    assert alice["historic_clv"] == pytest.approx(50.0)
    assert alice["preferred_hour"] == 9
    assert alice["orders_7d"] == 0 and alice["orders_30d"] == 3 and alice["events_7d"] == 1  # the return, 5 days ago
    assert alice["country"] == "UK" and bool(alice["email_opt_in"]) is True


def test_windows_count_days_inside_them(features):
    alice, bob = features.loc["alice"], features.loc["bob"]
    assert bob["events_7d"] == 2 and bob["orders"] == 0 and pd.isna(bob["avg_order_value"])
    assert alice["events_30d"] == 12


def test_preference_layer(features):
    alice, bob = features.loc["alice"], features.loc["bob"]
    affinity = features.filter(like="affinity_")
    assert affinity.sum(axis=1).round(6).eq(1.0).all()
    assert bob["affinity_coffee_tea"] == pytest.approx(1.0) and bob["top_category"] == "coffee & tea"
    assert alice["top_category"] == "coffee & tea"  # 6 teas bought most recently outweigh the mugs
    assert alice["favourite_brands"].split("; ")[0] == "Leaf"
    assert bob["price_index"] == pytest.approx(1.0) and bob["price_band"] == "mid"
    assert "guest" not in features.index


def test_rfm_scores_and_segments():
    recency = pd.Series([1, 5, 40, 90, 200, 3], index=list("abcdef"))
    frequency = pd.Series([10, 6, 3, 2, 1, 0], index=list("abcdef"))
    monetary = pd.Series([500, 300, 90, 60, 20, 0], index=list("abcdef"))
    table = rfm_table(recency, frequency, monetary)
    assert table.loc["a", ["r_score", "f_score", "m_score"]].tolist() == [5, 5, 5]
    assert table.loc["a", "rfm_segment"] == "champions"
    assert table.loc["e", ["r_score", "f_score"]].tolist() == [1, 1] and table.loc["e", "rfm_segment"] == "lost"
    assert table.loc["f", "rfm_segment"] == "prospects" and pd.isna(table.loc["f", "r_score"])
    assert segment_name(1, 5) == "can't lose them" and segment_name(5, 1) == "new customers" and segment_name(3, 3) == "need attention"


def test_incremental_days_equal_from_scratch():
    shop = simulate(SimConfig(n_users=300, n_products=50, n_days=20, seed=9))
    events = shop.tables.events
    by_day = [daily_activity(part) for _, part in events.groupby(events["event_time"].dt.date)]
    incremental, scratch = DailyActivity.concat(by_day), daily_activity(events)
    for name in ("interactions", "users", "hours"):
        pd.testing.assert_frame_equal(getattr(incremental, name).reset_index(drop=True), getattr(scratch, name).reset_index(drop=True),
                                      check_dtype=False)
    as_of = dt.date(2025, 6, 24)
    pd.testing.assert_frame_equal(user_features(incremental, shop.tables.customers, shop.tables.catalog, as_of),
                                  user_features(scratch, shop.tables.customers, shop.tables.catalog, as_of))


@pytest.fixture(scope="module")
def default_shop_portrait():
    shop = simulate(SimConfig())
    activity = daily_activity(shop.tables.events)
    as_of = SimConfig().end_date
    features = user_features(activity, shop.tables.customers, shop.tables.catalog, as_of)
    return build_profiles(features, activity, as_of, truth_users=shop.truth["users"])


def test_churn_and_purchases_beat_naive_on_the_simulator(default_shop_portrait):
    metrics = default_shop_portrait.backtest.metrics
    assert metrics["churn_auc"] > 0.72
    assert metrics["churn_auc_vs_true_churn"] > 0.6
    assert metrics["purchases_corr"] > 0.5
    assert metrics["purchases_mae"] < 0.8 * metrics["purchases_mae_naive"]


def test_profiles_have_bands_and_next_order_dates(default_shop_portrait):
    profiles = default_shop_portrait.profiles
    assert set(profiles["churn_band"]) == {"low", "medium", "high"}
    assert profiles["churn_probability"].between(0, 1).all()
    buyers = profiles[profiles["orders"] > 0]
    assert (pd.to_datetime(buyers["expected_next_order_date"]) > pd.Timestamp(SimConfig().end_date)).all()
    # the churn bands order users by what the model believes: high band = lower predicted purchases
    by_band = profiles.groupby("churn_band")["predicted_purchases"].mean()
    assert by_band["low"] > by_band["medium"] > by_band["high"]


def test_no_purchase_probability_matches_frequency_in_backtest(default_shop_portrait):
    scored = default_shop_portrait.backtest.scored
    predicted, observed = scored["churn_probability"].mean(), scored["no_purchase"].mean()
    assert abs(predicted - observed) < 0.1  # calibrated on average within 10 points


def test_segments_find_planted_clusters():
    rng = np.random.default_rng(0)
    groups = []
    for i, (orders, revenue, days) in enumerate([(1, 20, 150), (12, 900, 3), (4, 120, 40)]):
        n = 200
        groups.append(pd.DataFrame({"user_id": [f"g{i}-{j}" for j in range(n)], "orders": rng.poisson(orders, n) + 1,
                                    "revenue": rng.normal(revenue, revenue / 10, n).clip(1), "avg_order_value": revenue / orders,
                                    "days_since_last_order": rng.normal(days, 3, n).clip(0), "events_30d": 10,
                                    "return_rate": 0.05, "cart_abandonment_rate": 0.5, "price_index": 1.0,
                                    "churn_probability": 0.5}))
    result = segment_users(pd.concat(groups, ignore_index=True))
    assert result.k == 3
    assert sorted(result.summary["users"]) == [200, 200, 200]
    names = set(result.summary["segment_name"])
    assert any("high spenders" in n or "frequent buyers" in n for n in names)
    assert predictive.churn_band(pd.Series([0.1, 0.5, 0.9])).tolist() == ["low", "medium", "high"]


def test_interest_embedding_is_the_weighted_mean_of_engaged_products():
    from ecomarket_assets.profiles.features import interest_embeddings

    activity = daily_activity(alice_and_bob())
    vectors = np.eye(3, dtype=np.float32)  # mug, pan, tea orthogonal
    interests = interest_embeddings(activity.interactions, CATALOG["product_id"], vectors, AS_OF).set_index("user_id")
    bob = interests.loc["bob", "interest_embedding"]
    np.testing.assert_allclose(bob, [0, 0, 1], atol=1e-6)  # bob only looked at tea
    alice = interests.loc["alice", "interest_embedding"]
    assert np.linalg.norm(alice) == pytest.approx(1.0, abs=1e-5)
    assert alice[2] > alice[0] > alice[1] > 0  # most weight on the recent teas, least on the carted pan
