"""Recommender plain functions: metrics, time split, generators, cold start, filters, MMR, reasons."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from ecomarket_assets.profiles.activity import daily_activity
from ecomarket_assets.recommender import metrics as m
from ecomarket_assets.recommender import ranker as rk
from ecomarket_assets.recommender.candidates import FEATURES, build_candidates, nominated
from ecomarket_assets.recommender.generators import ease_weights, item_knn_similarity
from ecomarket_assets.recommender.interactions import build_interactions, label_rows
from ecomarket_assets.recommender.pipeline import ShopHistory, fit_at, labelled_set, serving_set
from ecomarket_assets.recommender.rerank import (
    ServeConfig,
    add_reasons,
    filter_candidates,
    mmr_rerank,
    top_by_score,
    tune_serve,
)
from ecomarket_assets.recommender.store import CutoffPlan

CUTOFF = dt.date(2025, 11, 10)


@pytest.fixture(scope="module")
def history(small_shop) -> ShopHistory:
    tables = small_shop.tables
    rng = np.random.default_rng(0)
    embeddings = (tables.catalog["product_id"], rng.normal(size=(len(tables.catalog), 8)).astype(np.float32))
    return ShopHistory(daily_activity(tables.events).interactions, tables.catalog, tables.customers, embeddings)


# --------------------------------------------------------------------------- metrics


def test_ranking_metrics_match_hand_computed_values():
    recommended, relevant = ["a", "x", "b", "y"], {"a", "b", "c"}
    assert m.recall_at_k(recommended, relevant, 4) == pytest.approx(2 / 3)
    dcg = 1 + 1 / np.log2(4)
    assert m.ndcg_at_k(recommended, relevant, 4) == pytest.approx(dcg / (1 + 1 / np.log2(3) + 1 / np.log2(4)))
    assert m.average_precision_at_k(recommended, relevant, 4) == pytest.approx((1 + 2 / 3) / 3)
    assert m.ndcg_at_k(["x", "y"], relevant, 2) == 0.0
    assert m.ndcg_at_k(["a", "b", "c"], relevant, 3) == pytest.approx(1.0)
    scores = np.array([[0.1, 0.9, 0.5], [3.0, 1.0, 2.0]])
    assert m.top_k(scores, 2).tolist() == [[1, 2], [0, 2]]


def test_graded_ndcg_is_one_for_the_true_order():
    gains = pd.Series({"a": 0.5, "b": 0.3, "c": 0.1})
    assert m.graded_ndcg_at_k(["a", "b", "c"], gains, 3) == pytest.approx(1.0)
    assert m.graded_ndcg_at_k(["c", "b", "a"], gains, 3) < 0.9


# --------------------------------------------------------------------------- time split


def test_plan_cutoffs_end_at_the_last_day():
    plan = CutoffPlan.for_last_day(dt.date(2011, 9, 30), 28, 2)
    assert plan.serving == dt.date(2011, 10, 1)
    assert plan.holdout == dt.date(2011, 9, 3)  # the last 4 weeks: 2011-09-03 .. 09-30
    assert plan.train == (dt.date(2011, 7, 9), dt.date(2011, 8, 6))
    assert plan.serving_training_sets() == ["train_2", "holdout"]
    assert CutoffPlan.from_dict(plan.to_dict()) == plan


def test_labels_are_purchases_inside_the_window_only(history):
    labels = label_rows(history.interactions, CUTOFF, 7)
    rows = history.interactions
    inside = rows[(rows["date"] >= "2025-11-10") & (rows["date"] < "2025-11-17") & (rows["purchase_units"] > 0)]
    assert len(labels) == len(inside.drop_duplicates(["user_id", "product_id"]))


def test_candidates_do_not_change_when_the_future_is_scrambled(history):
    """No leakage across the time split: every feature reads only days before the cutoff."""
    rows = history.interactions
    future = rows["date"] >= CUTOFF.isoformat()
    scrambled = rows.copy()
    rng = np.random.default_rng(1)
    scrambled.loc[future, "product_id"] = rng.permutation(scrambled.loc[future, "product_id"].to_numpy())
    scrambled.loc[future, ["views", "carts", "purchase_units"]] *= 7
    altered = ShopHistory(scrambled, history.catalog, history.customers, history.embeddings)
    users = pd.Index(sorted(rows.loc[~future, "user_id"].unique())[:150])
    before = build_candidates(fit_at(history, CUTOFF, 50.0), users, 30)
    after = build_candidates(fit_at(altered, CUTOFF, 50.0), users, 30)
    pd.testing.assert_frame_equal(before, after)
    assert (before[["ui_days_since_seen", "item_last_seen_days", "user_days_since_seen"]].dropna() >= 0).all().all()


# --------------------------------------------------------------------------- generators


def test_item_item_models_link_products_bought_together():
    # users 0-3 buy a with b; users 4-5 buy c with d
    rows, cols = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5], [0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3]
    x = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(6, 4))
    knn = item_knn_similarity(x, neighbours=10)
    assert knn[0, 1] == pytest.approx(1.0) and knn[0, 2] == 0 and np.all(np.diag(knn) == 0)
    ease = ease_weights(x, l2=1.0)
    assert np.all(np.diag(ease) == 0)
    assert ease[0, 1] > 0.5 and abs(ease[0, 2]) < 1e-6  # b is predicted from a, c is not


def test_cold_users_and_cold_products_get_candidates(history):
    gen = fit_at(history, CUTOFF, 50.0)
    cold = pd.Index(["u-never-seen-1", "u-never-seen-2"])
    frame = build_candidates(gen, cold, 25)
    assert set(frame["user_id"]) == set(cold)
    assert frame.groupby("user_id").size().min() >= 25
    assert (frame["user_items"] == 0).all()
    assert frame[["item_knn_score", "ease_score", "content_score", "tifu_knn_score"]].abs().sum().sum() == 0
    assert frame["user_repeat_share"].isna().all()  # nothing bought: no repeat habit to read
    # a product nobody touched before the cutoff is reachable through content similarity
    inter = gen.inter
    untouched = np.flatnonzero(np.asarray((inter.engagement > 0).sum(axis=0)).ravel() == 0)
    warm = pd.Index(inter.users[:200])
    content = build_candidates(gen, warm, len(inter.items))
    if len(untouched):
        reached = content[content["product_id"].isin(inter.items[untouched])]
        assert (reached["content_score"] != 0).any()
    assert nominated(content["nominated_by"], "content").any()
    bought = inter.rows_of(inter.purchase_days, inter.user_rows(warm)).toarray()
    days, distinct = bought.sum(axis=1), (bought > 0).sum(axis=1)
    expected = pd.Series(np.where(days > 0, 1 - distinct / np.maximum(days, 1), np.nan), index=warm)
    got = content.groupby("user_id")["user_repeat_share"].first().reindex(warm)
    assert np.allclose(got, expected, equal_nan=True) and (expected > 0).any()  # some customers rebuy


def test_labelled_set_recall_counts_purchases_outside_the_candidates(history):
    built = labelled_set(history, "holdout", CUTOFF, 14, 50.0, 20)
    assert 0 < built.candidate_recall() <= 1
    assert built.frame["label"].sum() <= len(built.labels)
    assert set(built.frame["user_id"]) == set(built.users)


# --------------------------------------------------------------------------- serving


def _scored(rows: list[dict]) -> pd.DataFrame:
    base = {name: 0.0 for name in FEATURES} | {"nominated_by": 1, "ui_purchase_days": 0.0,
                                                 "item_repurchase_rate": 0.0, "item_last_seen_days": 1.0}
    return pd.DataFrame([base | row for row in rows])


def test_filters_drop_bought_non_repeatables_and_inactive_products_and_count_them():
    scored = _scored([
        {"user_id": "u", "product_id": "sofa", "ui_purchase_days": 1, "item_repurchase_rate": 0.05, "score": 3},
        {"user_id": "u", "product_id": "coffee", "ui_purchase_days": 4, "item_repurchase_rate": 0.6, "score": 2},
        {"user_id": "u", "product_id": "delisted", "item_last_seen_days": 90, "score": 1},
        {"user_id": "u", "product_id": "new", "item_last_seen_days": np.nan, "score": 0.5},
    ])
    kept, removed = filter_candidates(scored, ServeConfig(active_days=56, repeatable_rate=0.2))
    assert list(kept["product_id"]) == ["coffee", "new"]
    assert removed == {"already_bought_non_repeatable": 1, "inactive_product": 1}
    assert len(kept) + sum(removed.values()) == len(scored)


def test_mmr_keeps_score_order_at_lambda_one_and_adds_variety_below():
    rows = [{"user_id": "u", "product_id": f"p{i}", "score": 10 - i} for i in range(8)]
    scored = _scored(rows)
    category = pd.Series({f"p{i}": ("toys" if i < 6 else f"garden{i}") for i in range(8)})
    plain = mmr_rerank(scored, category, ServeConfig(k=4, mmr_lambda=1.0))
    assert list(plain["product_id"]) == ["p0", "p1", "p2", "p3"]
    assert list(plain["rank"]) == [1, 2, 3, 4]
    varied = mmr_rerank(scored, category, ServeConfig(k=4, mmr_lambda=0.3))
    assert varied["product_id"].map(category).nunique() > plain["product_id"].map(category).nunique()
    assert varied["product_id"].iloc[0] == "p0"
    assert list(top_by_score(scored, 3)["product_id"]) == ["p0", "p1", "p2"]


def test_tune_serve_keeps_a_rebought_product_and_plain_order_when_they_score_best():
    """u bought p0 before (repurchase rate 0.15) and buys it again; p1..p3 share a category, p4 is alone."""
    rows = [{"user_id": "u", "product_id": "p0", "score": 10.0, "label": 1, "ui_purchase_days": 2.0,
             "item_repurchase_rate": 0.15}]
    rows += [{"user_id": "u", "product_id": f"p{i}", "score": 10.0 - i, "label": int(i == 2)} for i in range(1, 5)]
    category = pd.Series({"p0": "tea", "p1": "mugs", "p2": "mugs", "p3": "mugs", "p4": "garden"})
    chosen, grid = tune_serve(_scored(rows), category, ServeConfig(k=3))
    # p0 kept (rate 0.1 is the strictest filter that keeps it); ties keep the plain score order (lambda 1)
    assert (chosen.repeatable_rate, chosen.mmr_lambda, chosen.k) == (0.1, 1.0, 3)
    assert len(grid) == 7 and grid["ndcg@10"].max() == pytest.approx(1.5 / (1 + 1 / np.log2(3)))  # p0, p1, p2
    strict = grid[(grid["repeatable_rate"] == 0.35) & (grid["mmr_lambda"] == 1.0)]["ndcg@10"].iloc[0]
    assert strict < grid["ndcg@10"].max()  # filtering p0 out loses the re-purchase


def test_served_lists_are_full_for_cold_users_with_reasons_naming_real_products(history):
    gen_cutoff = CUTOFF
    built = serving_set(history, gen_cutoff, 50.0, 40)
    frame = built.frame
    frame["score"] = frame["ease_score"] + frame["popular_score"]
    kept, _ = filter_candidates(frame, ServeConfig())
    category = history.catalog.set_index("product_id")["category"]
    recs = add_reasons(mmr_rerank(kept, category, ServeConfig(k=10)), history.catalog,
                       history.customers.set_index("user_id")["country"])
    per_user = recs.groupby("user_id").size()
    assert per_user.min() == 10 and len(per_user) == len(built.users)
    assert set(built.cold_users) <= set(per_user.index)
    assert recs["reason"].str.len().min() > 10
    named = recs.dropna(subset=["reason_product_id"])
    assert len(named) > 0 and named["reason_product_id"].isin(history.catalog["product_id"]).all()
    # the product a co-occurrence or content reason names is one the user really interacted with before the cutoff
    inter = gen_cutoff_inter = build_interactions(history.interactions, history.product_ids, gen_cutoff)
    anchored = named[named["reason_type"].isin(["item_knn", "ease", "content"])]
    assert len(anchored) > 0
    rows = inter.user_rows(anchored["user_id"])
    cols = inter.items.get_indexer(anchored["reason_product_id"])
    assert (np.asarray(gen_cutoff_inter.engagement[rows, cols]).ravel() > 0).all()
    titles = history.catalog.set_index("product_id")["title"]
    sample = anchored.iloc[0]
    assert titles[sample["reason_product_id"]] in sample["reason"]


def test_ranker_learns_from_candidates_and_beats_its_inputs(history):
    train = [labelled_set(history, f"train_{i}", CUTOFF - dt.timedelta(days=14 * (2 - i)), 14, 50.0, 30).frame
             for i in range(2)]
    holdout = labelled_set(history, "holdout", CUTOFF, 14, 50.0, 30).frame
    fit = rk.train_ranker(train, max_rounds=100)
    assert fit.rounds >= 1 and fit.cold_policy in rk.COLD_POLICIES
    holdout["score"] = rk.score(fit.booster, holdout, fit.cold_policy)
    truth = holdout[holdout["label"] > 0].groupby("user_id")["product_id"].agg(set)
    ranked = top_by_score(holdout, 10).groupby("user_id")["product_id"].agg(list).reindex(truth.index)
    by_random = top_by_score(holdout.assign(score=np.random.default_rng(0).random(len(holdout))), 10)
    random_lists = by_random.groupby("user_id")["product_id"].agg(list).reindex(truth.index)
    model = np.mean([m.ndcg_at_k(r, t, 10) for r, t in zip(ranked, truth, strict=True)])
    chance = np.mean([m.ndcg_at_k(r, t, 10) for r, t in zip(random_lists, truth, strict=True)])
    assert model > chance + 0.05


def test_forecast_rising_products_join_every_serving_list_with_their_reason(history):
    rising = pd.Index([history.catalog["product_id"].iloc[-1]])
    built = serving_set(history, CUTOFF, 50.0, 5, rising)
    offered = built.frame[built.frame["product_id"].isin(rising)]
    assert set(offered["user_id"]) == set(built.users)
    assert offered["forecast_rising"].all() and not built.frame.loc[~built.frame["product_id"].isin(rising),
                                                                     "forecast_rising"].any()
