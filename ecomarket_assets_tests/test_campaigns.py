"""Campaign planning rules, control groups, uplift statistics and the simulator's campaign response."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.campaigns import audience as aud
from ecomarket_assets.campaigns import inputs
from ecomarket_assets.campaigns import uplift as up
from ecomarket_assets.campaigns.consent import Consent
from ecomarket_assets.campaigns.explain import list_rule_shares
from ecomarket_assets.campaigns.guards import rule_violations
from ecomarket_assets.campaigns.planner import assign_group, plan_campaigns
from ecomarket_assets.campaigns.results import attribute_outcomes, difference_ci, uplift_table
from ecomarket_assets.campaigns.specs import CampaignSpec
from ecomarket_assets.campaigns.store import CampaignStore, export_lists
from ecomarket_assets.simulator import campaigns as sim_campaigns
from ecomarket_assets.simulator.shop import SimConfig, simulate
from ecomarket_assets.storage import DataLayout, write_frame

START = dt.date(2025, 12, 1)  # a Monday


def make_users(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "user_id": [f"U{i:04d}" for i in range(n)],
        "email_opt_in": pd.array(rng.random(n) < 0.7, dtype="boolean"),
        "sms_opt_in": pd.array(rng.random(n) < 0.3, dtype="boolean"),
        "push_opt_in": pd.array(rng.random(n) < 0.4, dtype="boolean"),
        "preferred_hour": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 24, n)),
        "top_category": rng.choice(["kitchen", "garden"], n),
        "orders": rng.integers(0, 10, n),
        "churn_band": rng.choice(["low", "medium", "high"], n),
        "price_band": rng.choice(["budget", "mid"], n),
        "segment_name": "everyone",
    })
    for column in aud.PROFILE_FEATURES:
        if column not in frame:
            frame[column] = rng.uniform(0, 5, n)
    frame.loc[0, "email_opt_in"] = pd.NA  # unknown consent counts as no
    return frame


def make_offers(users: pd.DataFrame, per_user: int = 5) -> aud.OfferInputs:
    n = len(users)
    recs = pd.DataFrame({
        "user_id": np.repeat(users["user_id"].to_numpy(), per_user),
        "rank": np.tile(np.arange(1, per_user + 1), n),
        "product_id": [f"P{(i * 7 + r) % 40:03d}" for i in range(n) for r in range(per_user)],
    })
    recs["title"] = "Title " + recs["product_id"]
    recs["category"] = np.where(recs["product_id"].str[-1].astype(int) % 2 == 0, "kitchen", "garden")
    recs["price"] = 10.0
    recs["score"] = 1.0 / recs["rank"]
    recs["reason"] = "because"
    return aud.OfferInputs(recs, in_stock={f"P{i:03d}" for i in range(40)}, rising=set(),
                           recent_purchases=pd.DataFrame(columns=["user_id", "product_id"]))


def make_spec(name: str = "cross_sell", **overrides) -> CampaignSpec:
    spec = {
        "name": name, "objective": "cross-sell", "audience": {"rule": "orders >= 1"},
        "channels": ["sms", "email", "push"],
        "creatives": [{"id": "kitchen_fan", "subject": "For your kitchen: {first_product}", "when": 'top_category == "kitchen"'},
                      {"id": "default", "subject": "Picked for you"}],
        "schedule": {"weekdays": ["mon"], "start_hour": 9, "end_hour": 20},
        "budget": {"max_recipients": 60}, "frequency_cap": {"messages": 1, "days": 7}, "control_share": 0.2,
    }
    spec.update(overrides)
    return CampaignSpec.model_validate(spec)


def build(specs, users, suppressed=frozenset(), offers=None):
    offers = offers or make_offers(users)
    return pd.concat([aud.build_audience(s, users, set(suppressed), offers) for s in specs], ignore_index=True)


def customers_of(users: pd.DataFrame) -> pd.DataFrame:
    return users[["user_id", "email_opt_in", "sms_opt_in", "push_opt_in"]]


# --------------------------------------------------------------------------- audiences


def test_channel_is_the_first_consented_in_campaign_order_and_no_consent_is_removed():
    users = make_users()
    audience = build([make_spec()], users)
    consent = users.set_index("user_id")
    for row in audience.itertuples():
        flags = {c: consent.at[row.user_id, aud.CONSENT_COLUMN[c]] for c in ("sms", "email", "push")}
        expected = next((c for c, flag in flags.items() if pd.notna(flag) and bool(flag)), None)
        assert (row.channel if isinstance(row.channel, str) else None) == expected
    assert set(audience.loc[audience["channel"].isna(), "removed_by"]) <= {"no_consent", "suppressed"}
    assert "U0000" not in set(audience.loc[audience["channel"] == "email", "user_id"])  # unknown consent = no


def test_matched_users_reconcile_with_eligible_plus_removed_per_rule():
    users = make_users()
    offers = make_offers(users)
    only_garden = make_spec(products={"count": 2, "categories": ["garden"]})
    offers.recommendations.loc[offers.recommendations["user_id"] == "U0005", "category"] = "kitchen"
    audience = build([only_garden], users, suppressed={"U0001", "U0002"}, offers=offers)
    matched = int((users["orders"] >= 1).sum())
    assert len(audience) == matched
    assert audience["eligible"].sum() + audience["removed_by"].notna().sum() == matched
    assert audience.loc[audience["user_id"].isin(["U0001", "U0002"]), "removed_by"].eq("suppressed").all() or \
        not users.loc[users["user_id"].isin(["U0001", "U0002"]), "orders"].ge(1).any()
    if "U0005" in set(audience["user_id"]) and audience.set_index("user_id").at["U0005", "removed_by"] != "no_consent":
        assert audience.set_index("user_id").at["U0005", "removed_by"] == "no_product"
    offered = audience.loc[audience["eligible"], "product_ids"]
    assert offered.map(len).le(2).all()
    recs = offers.recommendations
    garden = set(zip(recs.loc[recs["category"] == "garden", "user_id"], recs.loc[recs["category"] == "garden", "product_id"], strict=False))
    pairs = audience.loc[audience["eligible"], ["user_id", "product_ids"]].explode("product_ids")
    assert all(pair in garden for pair in zip(pairs["user_id"], pairs["product_ids"], strict=False))


def test_creative_follows_its_rule_and_send_minute_stays_in_the_window():
    users = make_users()
    audience = build([make_spec()], users)
    eligible = audience[audience["eligible"]]
    assert (eligible["creative_id"] == np.where(eligible["top_category"] == "kitchen", "kitchen_fan", "default")).all()
    kitchen = eligible[eligible["creative_id"] == "kitchen_fan"].iloc[0]
    assert kitchen["subject"] == f"For your kitchen: {kitchen['product_titles'][0]}"
    assert eligible["send_minute"].between(9 * 60, 20 * 60 - 1).all()
    no_hour = eligible[eligible["preferred_hour"].isna()]
    assert (no_hour["send_minute"] == 9 * 60).all()


def test_no_audiences_has_every_audience_column_and_no_rows():
    users = make_users(20)
    empty = aud.no_audiences(users)
    built = build([make_spec()], users)
    assert len(empty) == 0 and set(empty.columns) <= set(built.columns)
    assert {"campaign", "eligible", "removed_by", "channel", "rank_score", "send_minute"} <= set(empty.columns)
    assert plan_campaigns([], empty, START, 7).lists.empty  # what campaign_lists does with no campaign enabled


def test_list_rule_shares_by_hand():
    audiences = pd.DataFrame({"campaign": "c", "eligible": [True, True, False, False],
                              "removed_by": [None, None, "suppressed", "no_consent"]})
    sends = pd.DataFrame({"campaign": "c", "send_date": [START, START + dt.timedelta(days=7)], "pool": [2, 1],
                          "already_in_campaign": [0, 1], "frequency_cap": [1, 0], "over_budget": [0, 0],
                          "recipients": [1, 0]})
    row = list_rule_shares(audiences, sends).set_index("campaign").loc["c"]
    assert row["matched"] == 4 and row["suppressed_share"] == 0.25 and row["no_product_share"] == 0.0
    assert row["pool"] == 3 and row["already_in_campaign_share"] == row["frequency_cap_share"] == 0.333
    assert row["over_budget_share"] == 0.0 and row["recipients"] == 1


# --------------------------------------------------------------------------- planning rules


def test_planned_lists_break_no_rule():
    users = make_users(600)
    specs = [make_spec("a", priority=1), make_spec("b", schedule={"weekdays": ["tue"], "start_hour": 8, "end_hour": 12},
                                                   budget={"max_cost": 0.5}, priority=2)]
    audiences = build(specs, users, suppressed={"U0003"})
    plan = plan_campaigns(specs, audiences, START, 28)
    assert len(plan.lists) > 0 and plan.lists["send_date"].nunique() == 8
    assert rule_violations(plan.lists, specs, Consent.of(customers_of(users), {"U0003"})) == {
        "no_consent": 0, "suppressed": 0, "twice_in_campaign": 0, "over_frequency_cap": 0, "over_budget": 0,
        "unstable_group": 0, "outside_send_window": 0}


def _tampered(lists: pd.DataFrame, rule: str, users: pd.DataFrame) -> pd.DataFrame:
    broken = lists.copy()
    if rule == "no_consent":
        refusing = users.loc[~users["sms_opt_in"].fillna(False).astype(bool), "user_id"]
        row = broken.index[broken["user_id"].isin(refusing)][0]
        broken.loc[row, "channel"] = "sms"
    elif rule == "suppressed":
        broken.loc[broken.index[0], "user_id"] = "U0003"
    elif rule == "twice_in_campaign":
        broken = pd.concat([broken, broken.iloc[[0]].assign(send_date=broken["send_date"].max())], ignore_index=True)
    elif rule == "over_frequency_cap":
        first = broken.iloc[[0]]
        other = broken[broken["campaign"] != first["campaign"].iloc[0]].iloc[[0]]
        broken = pd.concat([broken, other.assign(user_id=first["user_id"].iloc[0], send_date=first["send_date"].iloc[0])],
                           ignore_index=True)
    elif rule == "over_budget":
        extra = broken[broken["campaign"] == "a"].iloc[[0]].assign(user_id="U9999")
        broken = pd.concat([broken, extra], ignore_index=True)
    elif rule == "unstable_group":
        broken.loc[broken.index[0], "group"] = "control" if broken["group"].iloc[0] == "treatment" else "treatment"
    elif rule == "outside_send_window":
        broken.loc[broken.index[0], "send_time"] = broken["send_time"].iloc[0].normalize() + pd.Timedelta(hours=23)
    return broken


@pytest.mark.parametrize("rule", ["no_consent", "suppressed", "twice_in_campaign", "over_frequency_cap",
                                  "over_budget", "unstable_group", "outside_send_window"])
def test_the_guard_catches_each_broken_rule(rule):
    users = make_users(600)
    specs = [make_spec("a", priority=1), make_spec("b", schedule={"weekdays": ["mon"], "start_hour": 8, "end_hour": 12},
                                                   priority=2)]
    plan = plan_campaigns(specs, build(specs, users, suppressed={"U0003"}), START, 14)
    a_full = plan.funnel.query("campaign == 'a'")["recipients"].iloc[0] == 60
    assert a_full  # so one more recipient breaks the budget
    violations = rule_violations(_tampered(plan.lists, rule, users), specs, Consent.of(customers_of(users), {"U0003"}))
    assert violations[rule] >= 1


def test_frequency_cap_spans_campaigns_and_counts_control_members():
    users = make_users(300)
    monday = make_spec("monday", priority=1, budget={"max_recipients": 1000})
    tuesday = make_spec("tuesday", schedule={"weekdays": ["tue"]}, priority=2, budget={"max_recipients": 1000})
    audiences = build([monday, tuesday], users)
    plan = plan_campaigns([monday, tuesday], audiences, START, 2)
    first, second = (set(plan.lists.loc[plan.lists["campaign"] == c, "user_id"]) for c in ("monday", "tuesday"))
    assert first and not (first & second)  # everyone touched on Monday (either group) is capped on Tuesday
    assert plan.funnel.set_index("campaign").at["tuesday", "frequency_cap"] == len(first)
    looser = tuesday.model_copy(update={"frequency_cap": tuesday.frequency_cap.model_copy(update={"messages": 2})})
    plan2 = plan_campaigns([monday, looser], audiences, START, 2)
    assert set(plan2.lists.loc[plan2.lists["campaign"] == "tuesday", "user_id"]) & first


def test_budget_is_filled_exactly_and_never_exceeded():
    users = make_users(800)
    by_count = make_spec("count", budget={"max_recipients": 37})
    plan = plan_campaigns([by_count], build([by_count], users), START, 1)
    assert len(plan.lists) == 37 and plan.lists["rank"].tolist() == list(range(1, 38))
    by_cost = make_spec("cost", channels=["sms"], budget={"max_cost": 1.0}, cost_per_message={"sms": 0.04})
    audiences = build([by_cost], users)
    plan = plan_campaigns([by_cost], audiences, START, 1)
    treated = plan.lists[plan.lists["group"] == "treatment"]
    assert len(treated) == 25 and treated["cost"].sum() == pytest.approx(1.0)  # 25 x 0.04: exactly the budget
    assert plan.lists.loc[plan.lists["group"] == "control", "cost"].eq(0).all()
    pool = audiences[audiences["eligible"]].sort_values(["rank_score", "user_id"], ascending=[False, True])
    assert plan.lists["user_id"].tolist() == pool["user_id"].head(len(plan.lists)).tolist()  # the best-ranked prefix


def test_control_assignment_is_stable_and_independent_of_ranking():
    ids = pd.Series([f"U{i:06d}" for i in range(20_000)])
    first = assign_group("win_back", ids, 0.2)
    assert (first == assign_group("win_back", ids, 0.2)).all()
    assert abs((first == "control").mean() - 0.2) < 0.01
    assert (assign_group("win_back", ids[::-1], 0.2) == first[::-1]).all()  # order does not matter
    assert (assign_group("vip", ids, 0.2) != first).mean() > 0.2  # each campaign its own control group
    users = make_users(500)
    spec = make_spec(budget={"max_recipients": 1000})
    audiences = build([spec], users)
    reranked = audiences.assign(rank_score=-audiences["rank_score"])
    groups = [plan_campaigns([spec], a, START, 1).lists.set_index("user_id")["group"].sort_index() for a in (audiences, reranked)]
    assert groups[0].equals(groups[1])
    assert groups[0].tolist() == list(assign_group(spec.name, pd.Series(groups[0].index), 0.2))  # pinned to the hash


def test_exports_one_csv_and_parquet_per_campaign_and_date_and_the_control_group_apart(tmp_path):
    users = make_users()
    spec = make_spec(products={"count": 3})
    plan = plan_campaigns([spec], build([spec], users), START, 14)
    files = export_lists(plan.lists, tmp_path / "exports", tmp_path / "control")
    assert len(files) == 2 * len(plan.lists[["send_date", "group"]].drop_duplicates())
    day = plan.lists["send_date"].min().isoformat()
    on_day = plan.lists[plan.lists["send_date"].astype(str) == day]
    csv = pd.read_csv(tmp_path / "exports" / spec.name / day / f"{spec.name}_{day}.csv")
    parquet = pd.read_parquet(tmp_path / "exports" / spec.name / day / f"{spec.name}_{day}.parquet")
    assert len(csv) == len(parquet) == (on_day["group"] == "treatment").sum()  # only the people to message
    assert set(csv["group"]) == {"treatment"}
    control = pd.read_csv(tmp_path / "control" / spec.name / day / f"{spec.name}_{day}_control.csv")
    assert sorted(control["user_id"]) == sorted(on_day.loc[on_day["group"] == "control", "user_id"]) and len(control)
    assert {"product_1_id", "product_3_title", "product_2_reason", "group", "channel", "send_time"} <= set(csv.columns)


# --------------------------------------------------------------------------- outcomes and uplift statistics


def test_outcomes_count_only_purchases_inside_each_window():
    send = pd.Timestamp("2025-12-01 10:00", tz="UTC")
    lists = pd.DataFrame({"campaign": "c", "user_id": ["a", "b", "c"], "send_time": send, "measurement_days": 7,
                          "group": "treatment"})
    purchases = pd.DataFrame({
        "user_id": ["a", "a", "b", "c"],
        "event_time": [send + pd.Timedelta(hours=1), send + pd.Timedelta(days=2), send - pd.Timedelta(minutes=1),
                       send + pd.Timedelta(days=7)],
        "order_id": ["o1", "o2", "o3", "o4"], "quantity": [2, 1, 1, 1], "unit_price": [5.0, 3.0, 9.0, 9.0]})
    out = attribute_outcomes(lists, purchases, send + pd.Timedelta(days=8))
    assert out["outcome_orders"].tolist() == [2, 0, 0] and out["outcome_revenue"].tolist() == [13.0, 0.0, 0.0]
    assert out["complete"].all()
    assert not attribute_outcomes(lists, purchases, send + pd.Timedelta(days=6))["complete"].any()


def test_outcomes_never_overwrite_the_profile_features_the_uplift_model_reads():
    """Regression: outcomes once landed in `orders`/`revenue`, the profile features, leaking the label."""
    send = pd.Timestamp("2025-12-01 10:00", tz="UTC")
    lists = pd.DataFrame({"campaign": "c", "user_id": ["a", "b"], "send_time": send, "measurement_days": 7,
                          "group": "treatment", "orders": [5, 0], "revenue": [250.0, 0.0]})
    purchases = pd.DataFrame({"user_id": ["b"], "event_time": [send + pd.Timedelta(hours=1)], "order_id": ["o1"],
                              "quantity": [1], "unit_price": [9.0]})
    out = attribute_outcomes(lists, purchases, send + pd.Timedelta(days=8))
    assert out["orders"].tolist() == [5, 0] and out["revenue"].tolist() == [250.0, 0.0]
    assert out["converted"].tolist() == [False, True]
    with pytest.raises(ValueError, match="outcome columns"):
        attribute_outcomes(out, purchases, send + pd.Timedelta(days=8))


def test_difference_interval_matches_a_hand_computed_welch_interval():
    treated, control = np.array([1, 1, 0, 1, 0, 1, 1, 0.0]), np.array([0, 1, 0, 0, 0.0])
    diff, low, high, p = difference_ci(treated, control)
    se = np.sqrt(treated.var(ddof=1) / 8 + control.var(ddof=1) / 5)
    assert diff == pytest.approx(0.625 - 0.2)
    vt, vc = treated.var(ddof=1) / 8, control.var(ddof=1) / 5
    df = (vt + vc) ** 2 / (vt**2 / 7 + vc**2 / 4)
    from scipy import stats
    assert high - diff == pytest.approx(stats.t.ppf(0.975, df) * se)
    assert low < diff < high and 0 < p < 1


def test_uplift_table_recovers_a_known_effect():
    rng = np.random.default_rng(1)
    n = 20_000
    group = np.where(rng.random(n) < 0.2, "control", "treatment")
    converted = rng.random(n) < np.where(group == "treatment", 0.15, 0.10)
    frame = pd.DataFrame({"campaign": "c", "group": group, "converted": converted, "outcome_revenue": converted * 20.0,
                          "complete": True, "cost": 0.0})
    row = uplift_table(frame, ["campaign"]).iloc[0]
    assert row["uplift_low"] < 0.05 < row["uplift_high"] and row["uplift_high"] - row["uplift_low"] < 0.03
    assert row["incremental_revenue"] == pytest.approx(row["revenue_uplift"] * row["treatment"])


def test_qini_curve_by_hand():
    score = np.array([4, 3, 2, 1.0])
    treated = np.array([1, 0, 1, 0])
    outcome = np.array([1, 0, 0, 1])
    curve = up.qini_curve(score, treated, outcome, points=5)
    # k=1: 1 - 0; k=2: 1 - 0*1/1; k=3: 1 - 0*2/1; k=4: 1 - 1*2/2
    assert curve["incremental"].tolist() == [0, 1, 1, 1, 0]
    assert up.true_incremental_at(score, np.array([0.1, 0.2, 0.3, 0.4]), [0.5]) == {0.5: pytest.approx(0.3)}


def test_x_learner_finds_the_persuadable_where_propensity_does_not():
    rng = np.random.default_rng(0)
    n = 12_000
    frame = pd.DataFrame({c: rng.uniform(0, 1, n) for c in up.NUMERIC})
    frame["channel"], frame["objective"] = "email", "win-back"
    base = 0.1 + 0.6 * frame["propensity"]  # who buys anyway
    effect = 0.25 * (frame["price_index"] > 0.5) - 0.05 * (frame["propensity"] > 0.7)  # who is persuaded
    frame["group"] = np.where(rng.random(n) < 0.3, "control", "treatment")
    p = np.clip(base + np.where(frame["group"] == "treatment", effect, 0), 0, 1)
    frame["converted"] = rng.random(n) < p
    train, test = frame.iloc[:8000], frame.iloc[8000:].reset_index(drop=True)
    model = up.fit_x_learner(train)
    predicted = model.predict(test)
    assert np.corrcoef(predicted, effect.iloc[8000:])[0, 1] > 0.7
    truth = effect.iloc[8000:].to_numpy()
    by_uplift = up.true_incremental_at(predicted, truth, [0.3])[0.3]
    by_propensity = up.true_incremental_at(test["propensity"].to_numpy(), truth, [0.3])[0.3]
    assert by_uplift > 1.5 * by_propensity
    summary = up.evaluate_targeting(model, test).summary.set_index("method")["qini"]
    assert summary["uplift"] > summary["propensity"] and summary["uplift"] > summary["random"]


def _sends_on(days: list[dt.date]) -> pd.DataFrame:
    return pd.DataFrame({"send_date": [d for d in days for _ in range(3)], "user_id": [f"U{i}" for i in range(3 * len(days))]})


@pytest.mark.parametrize(("share", "first_held_out"), [(0.5, 2), (0.9, 1), (0.0, 3)])
def test_hold_out_is_the_later_send_dates_with_one_date_on_each_side(share, first_held_out):
    days = [START + dt.timedelta(days=7 * i) for i in range(4)]
    train, test, split = up.split_by_send_date(_sends_on(days), share)
    assert split == days[first_held_out]
    assert set(train["send_date"]) == set(days[:first_held_out]) and set(test["send_date"]) == set(days[first_held_out:])


def test_one_send_date_holds_nothing_out():
    sends = _sends_on([START])
    train, test, split = up.split_by_send_date(sends, 0.5)
    assert split is None and len(train) == len(sends) and test.empty


# --------------------------------------------------------------------------- reading the stored inputs


def test_audience_users_add_the_segment_name_when_segments_exist(tmp_path):
    layout = DataLayout(tmp_path)
    write_frame(pd.DataFrame({"user_id": ["U1", "U2"], "orders": [1, 2]}), layout.table("user_profiles"))
    assert inputs.audience_users(layout)["segment_name"].isna().all()
    write_frame(pd.DataFrame({"user_id": ["U2"], "segment_name": ["loyal"]}), layout.table("user_segments"))
    users = inputs.audience_users(layout)
    assert users["user_id"].tolist() == ["U1", "U2"] and users["segment_name"].iloc[1] == "loyal"
    assert pd.isna(users["segment_name"].iloc[0])


def test_observed_purchases_start_at_the_first_send_date(tmp_path):
    layout = DataLayout(tmp_path)
    for day in ("2025-11-30", "2025-12-01", "2025-12-02"):
        write_frame(pd.DataFrame({"user_id": ["U1", "U2"], "event_time": pd.Timestamp(day, tz="UTC"),
                                  "event_type": ["purchase", "view"], "order_id": [f"o-{day}", None],
                                  "quantity": [1, 0], "unit_price": [5.0, 0.0]}), layout.raw_events_day(day))
    purchases, until = inputs.observed_purchases(layout, pd.DataFrame({"send_date": [START, START]}))
    assert purchases["order_id"].tolist() == ["o-2025-12-01", "o-2025-12-02"]
    assert until == pd.Timestamp("2025-12-03", tz="UTC")
    none, _ = inputs.observed_purchases(layout, pd.DataFrame({"send_date": []}))
    assert none.empty


def test_read_outcomes_attributes_purchases_and_adds_the_true_response(tmp_path):
    store = CampaignStore(DataLayout(tmp_path))
    send = pd.Timestamp("2025-12-01 10:00", tz="UTC")
    write_frame(pd.DataFrame({"campaign": "c", "user_id": ["a", "b"], "send_date": START, "send_time": send,
                              "measurement_days": 7, "group": "treatment"}), store.lists_path)
    write_frame(pd.DataFrame({"user_id": ["a"], "event_time": [send + pd.Timedelta(hours=1)], "order_id": ["o1"],
                              "quantity": [2], "unit_price": [5.0]}), store.outcomes / "purchases.parquet")
    write_frame(pd.DataFrame({"observed_until": [send + pd.Timedelta(days=8)]}), store.outcomes / "observed_until.parquet")
    sends = inputs.read_outcomes(store)
    assert sends["outcome_orders"].tolist() == [1, 0] and sends["complete"].all() and "true_uplift" not in sends
    write_frame(pd.DataFrame({"campaign": "c", "user_id": ["b", "a"], "send_date": START, "true_uplift": [0.2, 0.1]}),
                store.outcomes / "true_response.parquet")
    assert inputs.read_outcomes(store)["true_uplift"].tolist() == [0.1, 0.2]


# --------------------------------------------------------------------------- the simulator's campaign response


@pytest.fixture(scope="module")
def shop():
    return simulate(SimConfig(n_users=600, n_products=60, n_days=60, seed=3))


def test_simulated_response_has_persuadables_and_sleeping_dogs(shop):
    users = shop.truth["users"]
    catalog = shop.tables.catalog
    sends = pd.DataFrame({"user_id": users["user_id"], "channel": "email", "measurement_days": 7,
                          "send_time": pd.Timestamp(SimConfig(n_days=60).end_date, tz="UTC") + pd.Timedelta(hours=34),
                          "product_ids": [[p] for p in catalog["product_id"].sample(len(users), replace=True, random_state=0)]})
    response = sim_campaigns.true_response(sends, shop.truth, catalog)
    assert response["p_control"].between(0, 1).all() and response["p_treated"].between(0, 1).all()
    assert (response.loc[response["sleeping_dog"], "true_uplift"] < 0).all()
    alive = response[response["alive"] & ~response["sleeping_dog"]]
    sensitivity = users["price_sensitivity"].reindex(alive.index)
    assert alive.loc[sensitivity == 2.0, "true_uplift"].mean() > alive.loc[sensitivity == 0.3, "true_uplift"].mean()
    sms = sim_campaigns.true_response(sends.assign(channel="sms"), shop.truth, catalog)
    positive = response["true_uplift"] > 0
    assert (sms.loc[positive, "true_uplift"] > response.loc[positive, "true_uplift"]).all()


def test_simulated_outcomes_convert_at_the_true_rates(shop):
    users = shop.truth["users"]
    catalog = shop.tables.catalog
    n = 40
    sends = pd.DataFrame({"user_id": np.tile(users["user_id"], n), "channel": "email", "measurement_days": 7,
                          "send_time": pd.Timestamp("2025-07-01 12:00", tz="UTC")
                          + pd.to_timedelta(np.repeat(np.arange(n) * 8, len(users)), unit="D"),
                          "product_ids": [[catalog["product_id"].iloc[0]]] * (len(users) * n)})
    sends["group"] = np.where(np.arange(len(sends)) % 2 == 0, "treatment", "control")
    response = sim_campaigns.true_response(sends, shop.truth, catalog)
    purchases = sim_campaigns.simulate_outcomes(sends, response, shop.truth, catalog, seed=1)
    outcomes = attribute_outcomes(sends, purchases, pd.Timestamp("2026-12-01", tz="UTC"))
    for group, column in (("treatment", "p_treated"), ("control", "p_control")):
        mask = (sends["group"] == group).to_numpy()
        assert outcomes.loc[mask, "converted"].mean() == pytest.approx(response.loc[mask, column].mean(), abs=0.01)
    assert purchases["product_id"].isin(catalog["product_id"]).all()
