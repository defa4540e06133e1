"""The simulator must be deterministic and believable: every later model is judged on it."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.schemas import EVENT_TYPES, EVENTS
from ecomarket_assets.simulator.shop import SimConfig, simulate, true_product_affinity


def test_same_seed_same_shop_other_seed_other_shop():
    cfg = SimConfig(n_users=200, n_products=40, n_days=10, seed=5)
    a, b = simulate(cfg), simulate(cfg)
    pd.testing.assert_frame_equal(a.tables.events, b.tables.events)
    pd.testing.assert_frame_equal(a.tables.catalog, b.tables.catalog)
    c = simulate(SimConfig(n_users=200, n_products=40, n_days=10, seed=6))
    assert not a.tables.events["product_id"].equals(c.tables.events["product_id"])


def test_events_fit_the_canonical_schema(small_shop):
    events = small_shop.tables.events
    EVENTS.to_arrow(events)  # raises on a type mismatch
    assert set(events["event_type"]) == set(EVENT_TYPES)
    assert events["event_id"].is_unique
    assert events["product_id"].isin(small_shop.tables.catalog["product_id"]).all()
    assert events["user_id"].isin(small_shop.tables.customers["user_id"]).all()
    assert events["event_time"].is_monotonic_increasing
    assert events["event_time"].min() >= pd.Timestamp("2025-10-01", tz="UTC")
    assert events["event_time"].max() < pd.Timestamp("2025-11-30", tz="UTC")


def test_funnel_every_purchase_was_carted_and_viewed(small_shop):
    ev = small_shop.tables.events
    key = ["session_id", "product_id"]
    views = ev[ev.event_type == "view"].set_index(key).index
    carts = ev[ev.event_type == "cart"].set_index(key).index
    purchases = ev[ev.event_type == "purchase"]
    assert purchases.set_index(key).index.isin(carts).all()
    assert carts.isin(views).all()
    counts = ev["event_type"].value_counts()
    assert counts["view"] > 5 * counts["cart"] > 5 * counts["purchase"] / 2 > 0
    # purchases in a session share one order id and carry a price
    assert purchases.groupby("session_id")["order_id"].nunique().max() == 1
    assert (purchases["unit_price"] > 0).all()


def test_returns_follow_their_purchase(small_shop):
    ev = small_shop.tables.events
    purchases = ev[ev.event_type == "purchase"].set_index(["order_id", "product_id"])
    returns = ev[ev.event_type == "return"]
    assert len(returns) > 0
    matched = purchases.loc[returns.set_index(["order_id", "product_id"]).index]
    assert (returns["event_time"].to_numpy() > matched["event_time"].to_numpy()).all()
    assert (returns["user_id"].to_numpy() == matched["user_id"].to_numpy()).all()


def test_demand_ground_truth_matches_realised_sales(small_shop):
    ev = small_shop.tables.events
    sold = ev[ev.event_type == "purchase"].assign(date=lambda f: f.event_time.dt.date)
    realised = sold.groupby("product_id")["quantity"].sum()
    expected = small_shop.truth["demand"].groupby("product_id")["expected_units"].sum()
    both = pd.concat([realised, expected], axis=1).fillna(0)
    assert realised.sum() == pytest.approx(expected.sum(), rel=0.05)
    assert np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1] > 0.9
    truth = small_shop.truth["demand"]
    assert (truth.loc[~truth.in_stock, "expected_units"] == 0).all()  # stock-outs sell nothing


def test_weekly_and_promotion_effects_are_present():
    shop = simulate(SimConfig(n_users=3000, n_products=150, n_days=98, start_date=dt.date(2025, 9, 1), seed=2))
    truth = shop.truth["demand"]
    truth["weekday"] = pd.to_datetime(truth["date"]).dt.weekday
    by_weekday = truth.groupby("weekday")["expected_units"].sum()
    assert by_weekday[6] > by_weekday[4] * 1.1  # Sunday busier than Friday
    promo_lift = truth[truth.promo & truth.in_stock]["expected_units"].mean() / truth[~truth.promo & truth.in_stock]["expected_units"].mean()
    assert promo_lift > 1.2


def test_churned_users_stop_coming(small_shop):
    users = small_shop.truth["users"].set_index("user_id")
    ev = small_shop.tables.events
    sessions = ev[ev.event_type == "view"]
    last_seen = sessions.groupby("user_id")["event_time"].max().dt.date
    churn = users.loc[last_seen.index, "churn_date"]
    assert (last_seen < churn).all()
    assert (users["churn_date"] < dt.date(2025, 11, 30)).mean() > 0.05  # some users churn inside the window


def test_reviews_text_agrees_with_stars(small_shop):
    reviews = small_shop.tables.reviews
    assert len(reviews) > 20
    positive = reviews["text"].str.contains("excellent|love|perfect|best|good|happy|nice", case=False)
    assert positive[reviews.rating >= 4].mean() > 0.95
    assert positive[reviews.rating <= 2].mean() < 0.05
    assert reviews["review_id"].is_unique


def test_users_prefer_their_true_categories(small_shop):
    """Users buy mostly in the categories the ground truth says they prefer."""
    ev = small_shop.tables.events
    bought = ev[ev.event_type == "purchase"].merge(small_shop.tables.catalog[["product_id", "category"]], on="product_id")
    prefs = small_shop.truth["user_category_preferences"]
    merged = bought.merge(prefs, on=["user_id", "category"])
    random_pick = prefs.groupby("user_id")["preference"].mean().mean()  # 1 / number of categories
    assert merged["preference"].mean() > 2.5 * random_pick
    affinity = true_product_affinity(small_shop.truth, bought["user_id"].unique()[:50].tolist())
    assert affinity.groupby("user_id")["affinity"].sum().between(0.99, 1.01).all()


def test_consent_and_catalog_text(small_shop):
    customers = small_shop.tables.customers
    assert 0.55 < customers["email_opt_in"].mean() < 0.75
    assert 0.2 < customers["sms_opt_in"].mean() < 0.4
    catalog = small_shop.tables.catalog
    assert catalog["title"].is_unique or catalog["title"].nunique() > 0.9 * len(catalog)
    # similar products read alike: the category's nouns appear in titles and descriptions
    kitchen = catalog[catalog.category == "kitchen"]
    assert kitchen["description"].str.contains("kitchen|cook|dinner|meal|hob|handle|sharp|dishwasher", case=False).all()


def test_tracker_glitches_are_injected_for_ingestion_to_catch():
    shop = simulate(SimConfig(n_users=300, n_products=40, n_days=14, seed=4, glitch_share=0.01))
    events = shop.tables.events
    n = shop.tables.notes["double_fired_events"]
    assert n == shop.tables.notes["delisted_product_events"] > 10
    assert events["event_id"].duplicated().sum() == n
    assert events["product_id"].str.startswith("DELISTED-").sum() >= n - 1  # a doubled row may copy one
    assert not shop.tables.catalog["product_id"].str.startswith("DELISTED-").any()


def test_market_shift_changes_only_the_days_from_the_shift_on():
    from ecomarket_assets.simulator.shift import NEW_CATEGORY
    from ecomarket_assets.simulator.shop import SimConfig, simulate

    config = {"n_users": 400, "n_products": 60, "n_days": 40, "start_date": dt.date(2025, 10, 1), "seed": 5}
    base, shifted = simulate(SimConfig(**config)), simulate(SimConfig(**config, shift_day=30))
    boundary = pd.Timestamp("2025-10-31", tz="UTC")
    before = [e[e["event_time"] < boundary].reset_index(drop=True) for e in (base.tables.events, shifted.tables.events)]
    pd.testing.assert_frame_equal(*before)
    after_base = base.tables.events[base.tables.events["event_time"] >= boundary]
    after = shifted.tables.events[shifted.tables.events["event_time"] >= boundary]
    assert len(after) == len(after_base)  # the same shoppers, some on other products
    category = shifted.tables.catalog.set_index("product_id")["category"]
    bought = after.loc[after["event_type"] == "purchase", "product_id"].map(category)
    assert (bought == NEW_CATEGORY).mean() > 0.02
    unmoved = after["product_id"].to_numpy() == after_base["product_id"].to_numpy()
    ratio = after.loc[unmoved, "unit_price"] / after_base.loc[unmoved, "unit_price"].to_numpy()
    assert ratio.dropna().between(1.29, 1.31).all()
    assert SimConfig(**config).fingerprint() != SimConfig(**config, shift_day=30).fingerprint()
    assert "shift" not in SimConfig(**config).fingerprint()
