"""Known-answer tests for the forecast baselines and the backtest metrics."""

from __future__ import annotations

import numpy as np
import pytest

from ecomarket_assets.forecasting.baselines import (
    auto_ets,
    moving_average,
    seasonal_naive,
    weekday_mean,
)
from ecomarket_assets.forecasting.metrics import (
    bias,
    coverage,
    evaluate,
    mase,
    mase_result,
    metrics_table,
    wape,
    weekly,
    weekly_history,
)

NAN = np.nan
PATTERN = np.array([1.0, 1.0, 1.2, 1.3, 1.5, 2.0, 2.2])


# --- seasonal_naive ---------------------------------------------------------------------


def test_seasonal_naive_repeats_a_weekly_pattern_exactly():
    days = np.arange(5 * 7 + 3)  # history does not end on a week boundary
    history = np.stack([PATTERN[days % 7], 10 * PATTERN[days % 7]])
    forecast = seasonal_naive(history, horizon=10)
    future = np.arange(len(days), len(days) + 10)
    np.testing.assert_allclose(forecast, np.stack([PATTERN[future % 7], 10 * PATTERN[future % 7]]))


def test_seasonal_naive_nan_prefix_cold_and_empty_products():
    history = np.array(
        [
            [NAN] * 7 + [2.0, 4.0, 6.0],  # cold: only the last 3 days observed, mean 4
            [NAN] * 10,  # never observed
        ]
    )
    forecast = seasonal_naive(history, horizon=9)
    # Day T+h copies day T-7+(h%7) = 3..9; days 3..6 are NaN -> mean 4.
    np.testing.assert_allclose(forecast[0], [4, 4, 4, 4, 2, 4, 6, 4, 4])
    np.testing.assert_allclose(forecast[1], np.zeros(9))


def test_seasonal_naive_history_shorter_than_season():
    forecast = seasonal_naive(np.array([[1.0, 2.0, 6.0]]), horizon=7)
    # Sources T-7+h = -4..2: only h=4,5,6 exist; the rest fall back to the mean 3.
    np.testing.assert_allclose(forecast, [[3, 3, 3, 3, 1, 2, 6]])


# --- weekday_mean -----------------------------------------------------------------------


def test_weekday_mean_averages_the_same_weekday_over_the_last_weeks():
    days = np.arange(9 * 7 + 3)
    noise = np.where(days >= len(days) - 7, 7.0, 0.0)  # only the last week is up by 7 (a promotion)
    history = np.stack([PATTERN[days % 7] + noise])
    forecast = weekday_mean(history, horizon=10, weeks=8)
    future = np.arange(len(days), len(days) + 10)
    np.testing.assert_allclose(forecast[0], PATTERN[future % 7] + 7.0 / 8)  # the promotion weighs 1/8, not 1
    np.testing.assert_allclose(weekday_mean(history, 10, weeks=1), seasonal_naive(history, 10))


def test_weekday_mean_skips_missing_days_and_falls_back_to_the_mean():
    history = np.array([
        [NAN] * 10 + [2.0, 4.0, 6.0, 8.0],  # 4 observed days: weekdays of T-7+3 .. T-7+6, mean 5
        [NAN] * 14,  # never observed
        [1.0, NAN, NAN, NAN, NAN, NAN, NAN, 3.0] + [NAN] * 6,  # NaN mid-history: day 0 and day 7, same weekday
    ])
    forecast = weekday_mean(history, horizon=7, weeks=2)
    np.testing.assert_allclose(forecast[0], [5, 5, 5, 2, 4, 6, 8])
    np.testing.assert_allclose(forecast[1], np.zeros(7))
    assert forecast[2, 0] == pytest.approx(2.0)  # mean of 1 and 3: the weekday of day T-7 = day 7 (and day 0)


# --- moving_average ---------------------------------------------------------------------


def test_moving_average_last_window_observed_days():
    history = np.array(
        [
            [NAN, 1.0, 2.0, 3.0, 10.0],
            [NAN, NAN, NAN, NAN, 4.0],
            [NAN] * 5,
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    forecast = moving_average(history, horizon=2, window=3)
    np.testing.assert_allclose(forecast, [[5, 5], [4, 4], [0, 0], [0, 0]])


# --- metrics ------------------------------------------------------------------------------


def test_wape_and_bias_ignore_nan_actuals():
    actual = np.array([[1.0, 2.0, NAN], [3.0, 0.0, 4.0]])
    forecast = np.array([[2.0, 2.0, 100.0], [1.0, 2.0, 4.0]])
    # |errors| 1, 0, 2, 2, 0 = 5; signed 1, 0, -2, 2, 0 = 1; sum(actual) = 10.
    assert wape(actual, forecast) == pytest.approx(0.5)
    assert bias(actual, forecast) == pytest.approx(0.1)
    assert np.isnan(wape(np.zeros((1, 3)), np.ones((1, 3))))
    assert np.isnan(bias(np.zeros((1, 3)), np.ones((1, 3))))


def test_mase_scale_and_exclusions():
    history = np.array(
        [
            [1.0, 2.0, 3.0, 4.0, 5.0],  # lag-2 diffs 2, 2, 2 -> scale 2
            [NAN, NAN, 5.0, 5.0, 5.0],  # scale 0 -> excluded
            [NAN, NAN, NAN, 1.0, 2.0],  # no lag-2 pair observed -> excluded
            [0.0, 4.0, 0.0, 4.0, 8.0],  # diffs 0, 0, 8 -> scale 8/3
            [1.0, 3.0, 2.0, 4.0, 5.0],  # usable scale, but nothing to score
        ]
    )
    actual = np.array([[4.0, 6.0], [1.0, 1.0], [1.0, 1.0], [2.0, NAN], [NAN, NAN]])
    forecast = np.array([[5.0, 3.0], [0.0, 0.0], [0.0, 0.0], [6.0, 0.0], [1.0, 1.0]])
    result = mase_result(actual, forecast, history, season=2)
    # Product 0: MAE 2 / 2 = 1.0; product 3: MAE 4 / (8/3) = 1.5.
    np.testing.assert_allclose(result.per_product, [1.0, NAN, NAN, 1.5, NAN])
    assert result.value == pytest.approx(1.25)
    assert result.n_excluded == 2
    assert result.n_no_actual == 1
    assert mase(actual, forecast, history, season=2) == pytest.approx(1.25)
    assert np.isnan(mase(actual[1:3], forecast[1:3], history[1:3], season=2))


def test_coverage_counts_bounds_as_inside():
    actual = np.array([[1.0, 2.0, 3.0], [NAN, 5.0, 6.0]])
    lo = np.array([[0.0, 2.0, 4.0], [0.0, 0.0, 7.0]])
    hi = np.array([[1.0, 2.0, 5.0], [9.0, 9.0, 9.0]])
    assert coverage(actual, lo, hi) == pytest.approx(3 / 5)
    assert np.isnan(coverage(np.full((1, 2), NAN), lo[:1, :2], hi[:1, :2]))


def test_weekly_sums_blocks_and_rejects_partial_weeks():
    daily = np.arange(28.0).reshape(2, 14)
    np.testing.assert_allclose(weekly(daily), [[21, 70], [119, 168]])
    with_nan = daily.copy()
    with_nan[0, 3] = NAN
    assert np.isnan(weekly(with_nan)[0, 0]) and weekly(with_nan)[0, 1] == 70
    with pytest.raises(ValueError):
        weekly(np.ones((2, 10)))


def test_weekly_history_blocks_end_on_the_last_day():
    history = np.arange(16.0)[None, :]  # drop days 0, 1; blocks 2..8 and 9..15
    np.testing.assert_allclose(weekly_history(history), [[35, 84]])


def test_evaluate_day_and_week_levels():
    # Leading odd day 100, then three weeks of 1s, 2s and 3s: T = 22.
    history = np.concatenate([[100.0], np.repeat([1.0, 2.0, 3.0], 7)])[None, :]
    actual = np.repeat([4.0, 5.0], 7)[None, :]
    forecast = np.full((1, 14), 3.0)
    result = evaluate(actual, forecast, history)
    assert set(result) == {
        "wape_day",
        "mase_day",
        "bias_day",
        "wape_week",
        "mase_week",
        "bias_week",
    }
    assert result["wape_day"] == pytest.approx(21 / 63)
    assert result["bias_day"] == pytest.approx(-21 / 63)
    # Daily lag-7 scale: |1 - 100| once plus 14 diffs of 1 -> 113 / 15; daily MAE 1.5.
    assert result["mase_day"] == pytest.approx(1.5 / (113 / 15))
    # Weekly: history weeks 7, 14, 21 (day 0 dropped) -> scale 7; weekly MAE (7 + 14) / 2.
    assert result["wape_week"] == pytest.approx(21 / 63)
    assert result["bias_week"] == pytest.approx(-21 / 63)
    assert result["mase_week"] == pytest.approx(10.5 / 7)

    with_interval = evaluate(actual, forecast, history, lo=forecast + 1, hi=forecast + 1.5)
    assert with_interval["coverage_day"] == pytest.approx(0.5)  # the 4s are inside, 5s not
    assert with_interval["coverage_week"] == pytest.approx(0.5)  # week sums 28 and 35 against summed bounds 28 .. 31.5
    wide_days = evaluate(actual, forecast, history, lo=forecast + 0.5, hi=forecast + 2.5)
    assert wide_days["coverage_day"] == 1.0 and wide_days["coverage_week"] == 1.0  # 24.5 .. 38.5 holds both weeks
    with pytest.raises(ValueError):
        evaluate(actual, forecast, history, lo=forecast)


def test_metrics_table_order_and_relative_wape():
    rows = {
        "seasonal_naive": {"bias_day": 0.1, "wape_day": 0.5, "mase_day": 1.0},
        "ets": {"wape_day": 0.4, "coverage_day": 0.8, "mase_day": 0.9, "bias_day": 0.0},
    }
    table = metrics_table(rows)
    assert list(table.columns) == [
        "wape_day",
        "mase_day",
        "bias_day",
        "coverage_day",
        "wape_vs_seasonal_naive",
    ]
    assert list(table.index) == ["seasonal_naive", "ets"]
    assert table.loc["ets", "wape_vs_seasonal_naive"] == pytest.approx(-0.2)
    assert table.loc["seasonal_naive", "wape_vs_seasonal_naive"] == pytest.approx(0.0)
    assert np.isnan(table.loc["seasonal_naive", "coverage_day"])
    assert "wape_vs_seasonal_naive" not in metrics_table({"ets": rows["ets"]}).columns


# --- auto_ets ---------------------------------------------------------------------------

T_TRAIN, HORIZON = 26 * 7, 28


@pytest.fixture(scope="module")
def ets_case():
    """One batched auto_ets call shared by the ETS tests (keeps the file fast)."""
    rng = np.random.default_rng(7)
    days = np.arange(T_TRAIN + HORIZON)
    levels = np.array([5.0, 20.0, 50.0, 10.0, 30.0])
    clean = levels[:, None] * PATTERN[days % 7][None, :]
    series = np.clip(clean + rng.normal(0.0, 0.1, clean.shape) * levels[:, None], 0.0, None)
    series[3, :100] = NAN  # a NaN prefix: starts on day 100
    extra = np.full((4, T_TRAIN + HORIZON), NAN)
    extra[0, T_TRAIN - 14 : T_TRAIN] = 3.0 + np.arange(14) % 7  # exactly 2 seasons: ETS
    extra[1, T_TRAIN - 13 : T_TRAIN] = 3.0  # one day short: fallback
    extra[2, T_TRAIN - 5 : T_TRAIN] = [1.0, 2.0, 3.0, 4.0, 5.0]  # fallback with a spread
    # extra[3] never observed: fallback at 0
    data = np.vstack([series, extra])
    history, actual = data[:, :T_TRAIN], data[:, T_TRAIN:]
    return history, actual, auto_ets(history, HORIZON)


def test_auto_ets_beats_moving_average_with_calibrated_interval(ets_case):
    history, actual, result = ets_case
    n = 5
    ma = moving_average(history[:n], HORIZON)
    assert wape(actual[:n], result.mean[:n]) < 0.5 * wape(actual[:n], ma)
    assert 0.6 <= coverage(actual[:n], result.lo[:n], result.hi[:n]) <= 0.95
    # Rows are not mixed up in the batched call: each product keeps its own level.
    ratio = result.mean[:n].mean(axis=1) / actual[:n].mean(axis=1)
    np.testing.assert_allclose(ratio, 1.0, atol=0.1)


def test_auto_ets_fallback_flags_and_values(ets_case):
    history, _, result = ets_case
    assert result.mean.shape == result.lo.shape == result.hi.shape == (9, HORIZON)
    np.testing.assert_array_equal(result.fallback, [False] * 6 + [True] * 3)
    assert (result.lo >= 0).all() and (result.lo <= result.mean + 1e-9).all()
    assert (result.mean <= result.hi + 1e-9).all()
    np.testing.assert_allclose(result.mean[6], 3.0)
    np.testing.assert_allclose(result.lo[6], 3.0)
    # Mean 3; residuals -2..2 -> 10% / 90% quantiles -1.6 / +1.6.
    np.testing.assert_allclose(result.mean[7], 3.0)
    np.testing.assert_allclose(result.lo[7], 1.4)
    np.testing.assert_allclose(result.hi[7], 4.6)
    for values in (result.mean[8], result.lo[8], result.hi[8]):
        np.testing.assert_allclose(values, 0.0)


def test_auto_ets_isolates_a_failing_series(monkeypatch):
    """One series that makes statsforecast raise must not sink the whole batch."""
    import pandas as pd

    from ecomarket_assets.forecasting import baselines

    calls = []

    def fake_run(frame, horizon, season, level, model, n_jobs):
        ids = frame["unique_id"].unique()
        calls.append(len(ids))
        if 1 in ids:
            raise RuntimeError("bad series")
        last_day = frame["ds"].max()
        out = pd.DataFrame(
            {
                "unique_id": np.repeat(ids, horizon),
                "ds": np.tile(np.arange(horizon) + last_day + 1, len(ids)),
            }
        )
        out["ets"] = out["unique_id"] * 10.0
        out["ets-lo-80"], out["ets-hi-80"] = out["ets"] - 1, out["ets"] + 1
        return out

    monkeypatch.setattr(baselines, "_run_statsforecast", fake_run)
    history = np.tile(np.arange(1.0, 22.0), (3, 1))  # 21 observed days: ETS-eligible
    result = auto_ets(history, 2)
    assert calls == [3, 1, 1, 1]  # the batch, then each series alone
    np.testing.assert_array_equal(result.fallback, [False, True, False])
    np.testing.assert_allclose(result.mean, [[0, 0], [11, 11], [20, 20]])  # 11: mean of 1..21
    np.testing.assert_allclose(result.hi[2], [21, 21])
