"""Unit tests of the plain forecasting code: panel, leak-free features, calibration, folds, serving."""

import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.forecasting import calendar as cal
from ecomarket_assets.forecasting import features as ft
from ecomarket_assets.forecasting import forecast as fc
from ecomarket_assets.forecasting import metrics
from ecomarket_assets.forecasting import model as dm
from ecomarket_assets.forecasting import panel as pn
from ecomarket_assets.forecasting import training as tr


def _events(rows: list[tuple[str, str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "event_time": pd.to_datetime([r[0] for r in rows], utc=True),
        "event_type": [r[1] for r in rows],
        "product_id": [r[2] for r in rows],
        "quantity": [r[3] for r in rows],
        "unit_price": [r[4] for r in rows],
    })


CATALOG = pd.DataFrame({"product_id": ["A", "B"], "category": ["lamps", "rugs"], "price": [10.0, 20.0]})


def test_panel_zero_days_are_zeros_and_days_before_launch_are_nan():
    events = _events([
        ("2025-01-01 10:00", "purchase", "A", 2, 10.0),
        ("2025-01-01 11:00", "purchase", "A", 1, 10.0),
        ("2025-01-03 09:00", "view", "B", 1, 18.0),
        ("2025-01-04 09:00", "purchase", "B", 3, 18.0),
        ("2025-01-04 09:30", "return", "A", 1, 10.0),
    ])
    panel = pn.build_panel(events, CATALOG)
    assert list(panel.product_ids) == ["A", "B"] and len(panel.days) == 4
    np.testing.assert_array_equal(panel.units[0], [3, 0, 0, 0])  # a return is not negative demand
    assert np.isnan(panel.units[1, :2]).all() and panel.units[1, 2:].tolist() == [0, 3]
    assert panel.first_day.tolist() == [0, 2]
    assert panel.views[1].tolist() == [0, 0, 1, 0]
    assert panel.price[1].tolist() == [20.0, 20.0, 18.0, 18.0]  # list price until observed, then carried
    round_trip = pn.panel_from_long(pn.panel_to_long(panel), panel.calendar)
    np.testing.assert_array_equal(round_trip.units, panel.units)
    np.testing.assert_array_equal(round_trip.price, panel.price)
    assert round_trip.category.tolist() == ["lamps", "rugs"]


def _random_panel(n_products: int = 12, n_days: int = 150, seed: int = 0) -> pn.SalesPanel:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2025-01-01", periods=n_days, freq="D")
    rate = rng.gamma(2.0, 1.0, size=(n_products, 1)) * (1 + 0.5 * (days.dayofweek.to_numpy() >= 5))[None, :]
    units = rng.poisson(rate).astype(float)
    first = rng.integers(0, 60, size=n_products)
    first[0] = 0
    units[np.arange(n_days)[None, :] < first[:, None]] = np.nan
    views = rng.poisson(rate * 5).astype(float)
    price = np.tile(rng.uniform(5, 50, size=(n_products, 1)), (1, n_days))
    categories = np.array([f"c{i % 3}" for i in range(n_products)], dtype=object)
    calendar = cal.SalesCalendar((cal.SaleEvent("spring", pd.Timestamp("2025-03-01"), 5, 0.2),))
    return pn.SalesPanel(np.array([f"P{i}" for i in range(n_products)], dtype=object), days, units, views, price,
                         price[:, 0].copy(), categories, calendar)


def test_features_never_read_the_target_day_or_later():
    """Scramble every day after each row's cutoff: the row's features must not move."""
    panel = _random_panel()
    p, d, h = ft.training_rows(panel, panel.units.shape[1] - 1, seed=1)
    pick = np.random.default_rng(2).choice(len(p), size=300, replace=False)
    p, d, h = p[pick], d[pick], h[pick]
    before = ft.build_features(panel, p, d, h)
    for row in range(0, 300, 15):
        cutoff = d[row] - h[row]
        scrambled = _random_panel(seed=99)
        changed = pn.SalesPanel(panel.product_ids, panel.days, panel.units.copy(), panel.views.copy(),
                                panel.price.copy(), panel.list_price, panel.category, panel.calendar)
        future = np.arange(panel.units.shape[1]) > cutoff
        for name in ("units", "views", "price"):
            matrix = getattr(changed, name)
            matrix[:, future] = getattr(scrambled, name)[:, future]
        changed.units[np.isnan(panel.units)] = np.nan  # launch days are known, keep them
        after = ft.build_features(changed, p[row : row + 1], d[row : row + 1], h[row : row + 1])
        pd.testing.assert_frame_equal(before.iloc[[row]].reset_index(drop=True), after, check_exact=True)


def test_features_known_values():
    panel = _random_panel()
    p, d, h = np.array([0]), np.array([100]), np.array([10])
    row = ft.build_features(panel, p, d, h).iloc[0]
    units = panel.units[0]
    c = 90
    assert row["last_day_units"] == units[c]
    assert row["mean_7"] == pytest.approx(units[c - 6 : c + 1].mean())
    assert row["mean_28"] == pytest.approx(units[c - 27 : c + 1].mean())
    assert row["same_weekday_lag_1"] == units[100 - 14]  # h=10: the newest same weekday at or before the cutoff
    assert row["same_weekday_lag_2"] == units[100 - 21]
    assert row["weekday"] == (panel.days[0] + pd.Timedelta(days=100)).dayofweek
    assert row["days_since_sale"] == c - max(i for i in range(c + 1) if units[i] > 0)
    sale = ft.build_features(panel, np.array([0]), np.array([60]), np.array([3])).iloc[0]  # 2025-03-02
    assert sale["site_sale"] == 1.0 and sale["site_sale_discount"] == 0.2
    with pytest.raises(ValueError):
        ft.build_features(panel, np.array([0]), np.array([5]), np.array([6]))  # cutoff before launch


def test_training_rows_cover_each_product_day_once_with_valid_horizons():
    panel = _random_panel()
    p, d, h = ft.training_rows(panel, 120, seed=0)
    assert ((h >= 1) & (h <= ft.HORIZON)).all() and (d <= 120).all() and (d - h >= panel.first_day[p]).all()
    expected = sum(max(0, 121 - f - 1) for f in panel.first_day)
    assert len(p) == expected and not pd.DataFrame({"p": p, "d": d}).duplicated().any()


def test_plan_folds_puts_tuning_before_backtest():
    plan = tr.plan_folds(180)
    assert plan.backtest_origins == [123, 151] and plan.tuning_origins == [67, 95]
    assert tr.plan_folds(150).tuning_origins == [65]  # the earliest window lacks training days
    with pytest.raises(ValueError, match="at least"):
        tr.plan_folds(100)


def test_calibration_hits_the_target_coverage_on_held_out_rows():
    rng = np.random.default_rng(0)
    n = 40_000
    scale = rng.uniform(1, 20, n)
    actual = rng.poisson(scale).astype(float)
    low, high = scale * 0.9, scale * 1.1  # far too narrow
    calibration = dm.calibrate(low[: n // 2], high[: n // 2], actual[: n // 2])
    assert calibration.coverage_before < 0.5
    new_low, new_high = dm.apply_calibration(low[n // 2 :], high[n // 2 :], calibration)
    assert dm.coverage(actual[n // 2 :], new_low, new_high) == pytest.approx(0.8, abs=0.02)
    assert (new_low <= new_high).all() and (new_low >= 0).all()


def test_calibration_with_a_pile_of_zeros_does_not_overshoot():
    rng = np.random.default_rng(1)
    actual = np.where(rng.random(20_000) < 0.7, 0.0, rng.poisson(3, 20_000) + 1.0)
    low, high = np.zeros(20_000), np.full(20_000, 10.0)  # covers almost everything
    calibration = dm.calibrate(low, high, actual)
    assert calibration.coverage_before > 0.95
    assert calibration.coverage_after == pytest.approx(0.8, abs=0.03)


def _poisson_weeks(n_products: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily units (P, 28) and daily bounds that cover about 80 % of days, so their week sums are far too wide."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(1, 10, (n_products, 1)) * np.ones((1, 28))
    spread = 1.28 * np.sqrt(rate)
    return rng.poisson(rate).astype(float), np.maximum(np.floor(rate - spread), 0), np.ceil(rate + spread)


def test_week_calibration_narrows_summed_daily_bounds_to_the_target_on_held_out_weeks():
    actual, low, high = _poisson_weeks(4_000, seed=2)
    fit = dm.calibrate_weeks(dm.IntervalCalibration(lower=0.1), low, high, actual)
    assert fit.lower == 0.1  # the daily offsets stay
    assert fit.week_coverage_before > 0.95 and fit.week_coverage_after == pytest.approx(0.8, abs=0.01)
    assert len(fit.week_edges) == 2 and len(fit.week_lower) == len(fit.week_upper) == 3  # three volume buckets
    assert max(fit.week_lower) < 0 and max(fit.week_upper) < 0  # independent days: the week's interval is narrower
    actual, low, high = _poisson_weeks(4_000, seed=3)
    week_low, week_high = dm.week_interval(low, high, fit)
    assert week_low.shape == (4_000, 4) and (week_low >= 0).all() and (week_low <= week_high).all()
    assert dm.coverage(metrics.weekly(actual).ravel(), week_low.ravel(), week_high.ravel()) == pytest.approx(0.8, abs=0.02)
    busy = metrics.weekly(high) > fit.week_edges[1]  # the top bucket on its own
    assert dm.coverage(metrics.weekly(actual)[busy], week_low[busy], week_high[busy]) == pytest.approx(0.8, abs=0.04)
    unchanged = dm.week_interval(low, high, dm.IntervalCalibration())  # no week offsets: the summed daily bounds
    np.testing.assert_array_equal(unchanged[0], metrics.weekly(low))
    np.testing.assert_array_equal(unchanged[1], metrics.weekly(high))


def test_evaluate_scores_the_methods_own_week_bounds_and_keeps_the_summed_ones():
    actual = np.array([[1.0] * 7 + [3.0] * 7])  # weeks: 7 and 21
    low, high = np.zeros((1, 14)), np.full((1, 14), 2.0)  # summed: [0, 14] twice -> 1 of 2 weeks inside
    history = np.ones((1, 21))
    summed = metrics.evaluate(actual, actual, history, low, high)
    assert summed["coverage_week"] == 0.5 and "coverage_week_summed_days" not in summed
    own = metrics.evaluate(actual, actual, history, low, high, lo_week=np.array([[8.0, 20.0]]),
                           hi_week=np.array([[9.0, 22.0]]))
    assert own["coverage_week"] == 0.5 and own["coverage_week_summed_days"] == 0.5  # week 1 out (7 < 8), week 2 in
    both = metrics.evaluate(actual, actual, history, low, high, lo_week=np.array([[6.0, 20.0]]),
                            hi_week=np.array([[9.0, 22.0]]))
    assert both["coverage_week"] == 1.0 and both["coverage_day"] == 0.5
    with pytest.raises(ValueError, match="week bounds need"):
        metrics.evaluate(actual, actual, history, lo_week=np.zeros((1, 2)), hi_week=np.ones((1, 2)))


def test_product_weeks_sum_the_days_and_carry_the_week_bounds():
    days = pd.date_range("2025-03-01", periods=14, freq="D").date
    forecast = pd.DataFrame({
        "product_id": ["A"] * 14 + ["B"] * 14, "category": ["x"] * 14 + ["y"] * 14, "date": list(days) * 2,
        "horizon": list(range(1, 15)) * 2, "forecast": [1.0] * 14 + [2.0] * 7 + [0.0] * 7,
        "expected_units": [1.5] * 28, "p10": [0.0] * 28, "p50": [1.0] * 28, "p90": [3.0] * 28,
    })
    calibration = dm.IntervalCalibration(week_edges=[30.0], week_lower=[-0.25, 0.0], week_upper=[-0.5, 9.0])
    weeks = fc.product_weeks(forecast, calibration)
    assert weeks[["product_id", "week"]].values.tolist() == [["A", 1], ["A", 2], ["B", 1], ["B", 2]]
    assert weeks["forecast"].tolist() == [7.0, 7.0, 14.0, 0.0] and (weeks["expected_units"] == 10.5).all()
    assert weeks["date_from"].tolist() == [days[0], days[7]] * 2 and weeks["date_to"].tolist() == [days[6], days[13]] * 2
    assert weeks["category"].tolist() == ["x", "x", "y", "y"]
    # summed bounds [0, 21] (below the edge 30: the first bucket), width 21: low 0 + 0.25 x 21, high 21 - 0.5 x 21
    assert weeks["p10_week"].tolist() == [5.25] * 4 and weeks["p90_week"].tolist() == [10.5] * 4


def test_every_product_is_forecast_and_quiet_ones_are_counted():
    panel = _random_panel(n_products=6, n_days=120)
    panel.units[2, -40:] = 0.0  # quiet: no sale and no view for 40 days
    panel.views[2, -40:] = 0.0
    origin = len(panel.days) - 1
    assert fc.quiet_products(panel, origin).tolist() == [2]
    assert 2 not in fc.active_products(panel, origin)

    def predict(features: pd.DataFrame) -> pd.DataFrame:
        rate = features["mean_112"].to_numpy()
        return pd.DataFrame({"forecast": rate, "expected_units": rate, "p10": 0 * rate, "p50": rate, "p90": 2 * rate})

    forecast = fc.product_forecast(panel, predict, None)
    assert sorted(forecast["product_id"].unique()) == sorted(panel.product_ids)
    quiet = forecast[forecast["product_id"] == panel.product_ids[2]]
    assert len(quiet) == 28 and (quiet["forecast"] > 0).all()  # its longer history still gives it a rate
    from ecomarket_assets.forecasting.baselines import weekday_mean
    blended = fc.product_forecast(panel, predict, None, calibration=dm.IntervalCalibration(blend=1.0, level=2.0))
    rule = weekday_mean(panel.units[:, : origin + 1], 28).ravel()  # every product, product-major
    np.testing.assert_allclose(blended["forecast"], rule)
    np.testing.assert_allclose(blended["expected_units"], 2 * rule)


def test_choose_blend_takes_the_best_week_weight_that_keeps_the_day_margin():
    # two products over 14 days; the model gets the days right but misses the level of product 2's weeks
    actual = np.array([[0, 0, 0, 7, 0, 0, 0] * 2, [2, 2, 2, 2, 2, 2, 2] * 2], dtype=float)
    model = np.array([[0, 0, 0, 7, 0, 0, 0] * 2, [1, 1, 1, 1, 1, 1, 1] * 2], dtype=float)
    rule = np.array([[1, 1, 1, 1, 1, 1, 1] * 2, [2, 2, 2, 2, 2, 2, 2] * 2], dtype=float)
    weight, table = dm.choose_blend([actual], [model], [rule], weights=(0.0, 0.25, 0.5, 1.0), margin=0.03)
    # units 42; rule: day errors 24 (product 1), week errors 0; model: day and week errors 14 (product 2)
    assert table["weight"].tolist() == [0.0, 0.25, 0.5, 1.0]
    assert table.loc[0, "wape_day"] == pytest.approx(14 / 42) and table.loc[3, "wape_week"] == 0.0
    expected_day = [(14 * (1 - w) + 24 * w) / 42 for w in (0.0, 0.25, 0.5, 1.0)]  # errors never cancel here
    np.testing.assert_allclose(table["wape_day"], expected_day)
    # the rule's weeks are perfect, but only weights whose day WAPE is 3 % below the rule's (24 / 42) count
    assert weight == 0.5 and table.loc[2, "day_vs_rule"] <= -0.03 < table.loc[3, "day_vs_rule"]
    assert dm.choose_blend([actual], [rule], [rule], weights=(0.0, 1.0))[0] == 0.0  # nothing beats the rule


def test_with_rule_blends_the_point_forecast_and_keeps_the_level():
    predicted = pd.DataFrame({"forecast": [1.0, 3.0], "expected_units": [9.0, 9.0], "p10": [0.0, 1.0],
                              "p50": [1.0, 2.0], "p90": [2.0, 4.0]})
    blended = dm.with_rule(predicted, np.array([[3.0, 1.0]]), dm.IntervalCalibration(blend=0.25, level=2.0))
    assert blended["forecast"].tolist() == [1.5, 2.5] and blended["expected_units"].tolist() == [3.0, 5.0]
    pd.testing.assert_frame_equal(blended[["p10", "p50", "p90"]], predicted[["p10", "p50", "p90"]])


def test_a_product_without_events_is_forecast_from_its_text_neighbours_launch_weeks():
    panel = _random_panel(n_products=6, n_days=120)
    launch = fc.launch_days(panel, days=28)
    first = int(panel.first_day[3])
    np.testing.assert_array_equal(launch[3], panel.units[3, first : first + 28])
    late = fc.launch_days(panel, days=130)  # past the panel's end: NaN
    assert np.isnan(late[0, 120:]).all() and not np.isnan(late[0, :120]).any()
    coords = np.eye(6, 3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]] + np.float32(0.01) * np.arange(6)[:, None]
    new_coords = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)  # next to P2/P5, next to P0/P3
    basis = ft.EmbeddingBasis(np.array([*panel.product_ids, "NEW", "NO_TEXT_OK"], dtype=object),
                              np.vstack([coords, new_coords]))
    catalog = pd.DataFrame({"product_id": [*panel.product_ids, "NEW", "NO_TEXT_OK", "NO_TEXT"],
                            "category": [*panel.category, "lamps", None, "rugs"]})
    new = fc.new_product_forecast(panel, basis, catalog, horizon=14, k=2)
    assert sorted(new["product_id"].unique()) == ["NEW", "NO_TEXT_OK"]  # NO_TEXT has no embedding: left out
    assert len(new) == 28 and (new["method"] == "text_neighbours").all() and new["horizon"].tolist()[:3] == [1, 2, 3]
    neighbours = np.concatenate([launch[2], launch[5]])
    row = new[new["product_id"] == "NEW"].iloc[0]
    assert row["forecast"] == pytest.approx(np.nanmean(neighbours)) and row["category"] == "lamps"
    assert row["p90"] == pytest.approx(np.nanquantile(neighbours, 0.9)) and row["p10"] <= row["p50"] <= row["p90"]
    assert new[new["product_id"] == "NO_TEXT_OK"]["category"].iloc[0] == "unknown"
    assert fc.new_product_forecast(panel, None, catalog).empty


def test_level_factor_corrects_a_low_forecast_and_is_bounded():
    actual = np.array([[0.0, 4.0, np.nan], [2.0, 0.0, 0.0]])
    assert dm.level_factor(actual, np.array([[1.0, 1.0, 9.0], [1.0, 0.0, 0.0]])) == pytest.approx(2.0)  # NaN ignored
    assert dm.level_factor(actual, np.full((2, 3), 0.01)) == dm.LEVEL_BOUNDS[1]
    assert dm.level_factor(actual, np.zeros((2, 3))) == 1.0


def test_rollups_add_up_and_intervals_are_ordered():
    forecast = pd.DataFrame({
        "product_id": ["A", "B", "C"] * 2, "category": ["x", "x", "y"] * 2,
        "date": ["2025-01-01"] * 3 + ["2025-01-02"] * 3,
        "forecast": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "expected_units": [2.0] * 6, "p10": [0.0] * 6, "p50": [1.0] * 6, "p90": [3.0] * 6,
    })
    rollups = fc.rollups(forecast)
    total = rollups[rollups["level"] == "total"].set_index("date")
    assert total["forecast"].tolist() == [6.0, 15.0] and total["expected_units"].tolist() == [6.0, 6.0]
    category = rollups[(rollups["level"] == "category") & (rollups["date"] == "2025-01-01")].set_index("key")
    assert category["forecast"].to_dict() == {"x": 3.0, "y": 3.0}
    spread = fc.Z80 * np.sqrt(3 * (3 / (2 * fc.Z80)) ** 2)
    assert total.loc["2025-01-01", "p90"] == pytest.approx(6.0 + spread)
    assert (rollups["p10"] <= rollups["forecast"]).all() and (rollups["forecast"] <= rollups["p90"]).all()


def test_model_quantiles_are_ordered_and_serving_round_trip(tmp_path):
    from ecomarket_assets.forecasting import serving

    panel = _random_panel(n_products=20)
    train = tr.make_training_set(panel, None)
    model = dm.fit(train.features, train.target, {"num_leaves": 7, "min_data_in_leaf": 20}, 30)
    fold = tr.fold_data(panel, 120, None)
    predicted = model.predict(fold.features)
    assert ((predicted["p10"] <= predicted["p50"]) & (predicted["p50"] <= predicted["p90"])).all()
    assert (predicted["p10"] >= 0).all() and (predicted["forecast"] >= 0).all()
    np.testing.assert_allclose(predicted["expected_units"], predicted["forecast"] * model.calibration.level)
    loaded = serving.load_model(serving.save_model(model, tmp_path / "m"))
    pd.testing.assert_frame_equal(loaded.predict(fold.features), predicted)
    unknown = fold.features.head(3).assign(category="never seen")
    assert loaded.predict(unknown).notna().all().all()


def test_tuning_reports_each_trial_and_calibrates_on_its_folds():
    panel = _random_panel(n_products=8, n_days=150)
    train = tr.make_training_set(panel, None)
    plan = tr.plan_folds(len(panel.days))
    folds = [tr.fold_data(panel, o, None) for o in plan.tuning_origins]

    def small(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", 0.05, 0.2), "num_leaves": 7,
                "min_data_in_leaf": 20}, trial.suggest_int("num_boost_round", 20, 40, step=10)

    lines: list[str] = []
    tuning = tr.tune(train, folds, n_trials=3, seed=1, search_space=small, progress=lines.append)
    assert [line.split(":")[0] for line in lines] == [f"Optuna trial {n}/3" for n in (1, 2, 3)]
    assert all("WAPE" in line for line in lines)
    best = min(float(line.split("WAPE ")[1].split(",")[0].split(" ")[0]) for line in lines)
    assert f"best {best:.4f}" in lines[-1] and tuning.best_wape == pytest.approx(best, abs=1e-4)
    assert len(tuning.trials) == 3 and len(tuning.fold_metrics) == len(folds)
    assert 0 < tuning.calibration.coverage_after <= 1
    assert tuning.calibration.week_coverage_after == pytest.approx(0.8, abs=0.2)  # few weeks: 8 products x 4
    assert [o["mean"].shape for o in tuning.fold_forecasts] == [f.actual.shape for f in folds]


def test_early_stopping_waits_past_an_early_dip_in_the_validation_curve():
    import lightgbm as lgb
    from lightgbm.basic import EvalResult

    curve = [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0] + [3.5 - 0.1 * i for i in range(20)] + [1.6] * 30

    def env(i: int, score: float):
        return lgb.callback.CallbackEnv(None, {}, i, 0, len(curve), [EvalResult("valid_0", "l1", score, False)])

    callback = dm.early_stopping_after(patience=5, min_rounds=20)
    with pytest.raises(lgb.callback.EarlyStopException) as stopped:
        for i, score in enumerate(curve):
            callback(env(i, score))
    # plain patience would have stopped at round 7 with the dip at round 2; the real minimum is round 28
    assert stopped.value.best_iteration == 28 and i == 33
    stop_at_dip = dm.early_stopping_after(patience=5, min_rounds=1)
    with pytest.raises(lgb.callback.EarlyStopException) as early:
        for i, score in enumerate(curve):
            stop_at_dip(env(i, score))
    assert early.value.best_iteration == 2


def test_search_budget_scales_with_rows_between_a_floor_and_the_timeout():
    assert tr.search_budget(120, 600_000) == 120
    assert tr.search_budget(120, tr.FULL_BUDGET_ROWS // 2) == pytest.approx(60)
    assert tr.search_budget(120, 1_000) == tr.MIN_BUDGET_SECONDS
    assert tr.search_budget(10, 1_000) == 10  # never above the deployment's timeout


def test_tuning_sample_keeps_whole_products_in_training_rows_and_folds():
    panel = _random_panel(n_products=12, n_days=150)
    train = tr.make_training_set(panel, None)
    folds = [tr.fold_data(panel, o, None) for o in tr.plan_folds(len(panel.days)).tuning_origins]
    sample, sample_folds = tr.tuning_sample(train, folds, limit=5, seed=3)
    from ecomarket_assets.forecasting.baselines import weekday_mean
    for fold in folds:  # the rule a blend would mix in, from the days up to the origin only
        np.testing.assert_array_equal(fold.rival, weekday_mean(panel.units[fold.products, : fold.origin + 1], 28))
    chosen = np.unique(sample.product_index)
    assert len(chosen) == 5
    for p in chosen:  # every row of a chosen product, nothing of the others
        assert (sample.product_index == p).sum() == (train.product_index == p).sum()
    assert len(sample.target) == np.isin(train.product_index, chosen).sum() < len(train.target)
    for fold, part in zip(folds, sample_folds, strict=True):
        assert set(part.products) == set(fold.products) & set(chosen)
        for i, p in enumerate(part.products):  # the rows and actuals of each kept product move together
            j = int(np.flatnonzero(fold.products == p)[0])
            np.testing.assert_array_equal(part.actual[i], fold.actual[j])
            np.testing.assert_array_equal(part.rival[i], fold.rival[j])
            h = fold.actual.shape[1]
            pd.testing.assert_frame_equal(part.features.iloc[i * h:(i + 1) * h].reset_index(drop=True),
                                          fold.features.iloc[j * h:(j + 1) * h].reset_index(drop=True))
    same, same_folds = tr.tuning_sample(train, folds, limit=0)
    assert same is train and same_folds is folds
    assert tr.tuning_sample(train, folds, limit=5, seed=3)[0].target.tolist() == sample.target.tolist()
