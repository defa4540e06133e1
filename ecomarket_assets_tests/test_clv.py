"""BG/NBD and Gamma-Gamma CLV models: hand-built RFM cases, published CDNOW estimates, simulations."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.profiles.clv import (
    BetaGeoModel,
    GammaGammaModel,
    customer_lifetime_value,
    read_cdnow_transactions,
    rfm_summary,
)

CDNOW_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cdnow"
CDNOW_SAMPLE = CDNOW_DIR / "CDNOW_sample.txt"
CALIBRATION_END = pd.Timestamp("1997-09-30", tz="UTC")  # 39 weeks after 1997-01-01 (last day)

# Fader, Hardie & Lee (2005), table 1 / section 5, fitted on the CDNOW 1/10 sample in weeks.
FHL_PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
FHL_LOG_LIKELIHOOD = -9582.4
# Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value", same 946 repeat buyers.
FH_SPEND_PARAMS = {"p": 6.25, "q": 3.74, "v": 15.44}


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def published_bgnbd() -> BetaGeoModel:
    model = BetaGeoModel()
    model.params_ = dict(FHL_PARAMS)
    return model


# --------------------------------------------------------------------------- rfm_summary


def test_rfm_summary_hand_built_table():
    tx = pd.DataFrame(
        [
            ("a", "2024-01-01 10:00", 10.0),
            ("a", "2024-01-05 09:00", 20.0),
            ("a", "2024-01-05 23:00", 5.0),  # same day: one occasion worth 25
            ("a", "2024-01-11 12:00", 30.0),
            ("a", "2024-02-01 08:00", 99.0),  # after calibration: ignored
            ("b", "2024-01-20 15:00", 40.0),  # single order
            ("c", "2024-01-03 01:00", 1.0),
            ("c", "2024-01-03 22:00", 2.0),  # two orders one day: no repeat
            ("d", "2024-02-02 00:00", 7.0),  # first buys after calibration: absent
        ],
        columns=["user_id", "event_time", "revenue"],
    ).assign(event_time=lambda d: pd.to_datetime(d["event_time"], utc=True))

    out = rfm_summary(tx, calibration_end=utc("2024-01-31"))

    assert list(out.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert out.index.name == "user_id"
    assert list(out.index) == ["a", "b", "c"]
    expected = pd.DataFrame(
        {
            "frequency": [2, 0, 0],
            "recency": [10.0, 0.0, 0.0],
            "T": [30.0, 11.0, 28.0],
            "monetary_value": [27.5, 0.0, 0.0],  # a: mean of 25 and 30; first order excluded
        },
        index=pd.Index(["a", "b", "c"], name="user_id"),
    )
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)


def test_rfm_summary_weeks_and_timezone_conversion():
    # 23:30 in New York on Jan 9 is Jan 10 in UTC, so these are two distinct UTC days.
    tx = pd.DataFrame(
        {
            "customer": [1, 1, 1],
            "ts": pd.to_datetime(
                ["2024-01-01 12:00", "2024-01-09 23:30", "2024-01-10 08:00"]
            ).tz_localize("America/New_York"),
            "amount": [5.0, 7.0, 9.0],
        }
    )
    out = rfm_summary(
        tx,
        customer_col="customer",
        time_col="ts",
        value_col="amount",
        calibration_end=pd.Timestamp("2024-01-15"),
        time_unit="W",  # naive end is read as UTC
    )
    row = out.loc[1]
    assert row["frequency"] == 1
    assert row["recency"] == pytest.approx(9 / 7)
    assert row["T"] == pytest.approx(14 / 7)
    assert row["monetary_value"] == pytest.approx(16.0)


def test_rfm_summary_on_cdnow_sample_matches_published_summary():
    if not CDNOW_SAMPLE.exists():
        pytest.skip(f"CDNOW sample not found at {CDNOW_SAMPLE}")
    summary = rfm_summary(
        read_cdnow_transactions(CDNOW_SAMPLE), calibration_end=CALIBRATION_END, time_unit="W"
    )
    assert len(summary) == 2357
    assert (summary["frequency"] > 0).sum() == 946
    # Customer 4 (the first row of the lifetimes `cdnow_customers` summary): 2, 30.43, 38.86, 22.35.
    row = summary.loc[4]
    assert row["frequency"] == 2
    assert row["recency"] == pytest.approx(213 / 7)
    assert row["T"] == pytest.approx(272 / 7)
    assert row["monetary_value"] == pytest.approx((29.73 + 14.96) / 2)


# --------------------------------------------------------------------------- published CDNOW fits


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    if not CDNOW_SAMPLE.exists():
        pytest.skip(f"CDNOW sample not found at {CDNOW_SAMPLE} (expected ../shared/datasets/cdnow)")
    return rfm_summary(
        read_cdnow_transactions(CDNOW_SAMPLE), calibration_end=CALIBRATION_END, time_unit="W"
    )


def test_bgnbd_reproduces_fader_hardie_lee_on_cdnow(cdnow_summary):
    s = cdnow_summary
    model = BetaGeoModel().fit(s["frequency"], s["recency"], s["T"])
    for name, published in FHL_PARAMS.items():
        assert model.params_[name] == pytest.approx(published, rel=0.01), name
    assert model.log_likelihood(s["frequency"], s["recency"], s["T"]) == pytest.approx(
        FHL_LOG_LIKELIHOOD, abs=0.5
    )


def test_bgnbd_time_unit_only_rescales_alpha():
    if not CDNOW_SAMPLE.exists():
        pytest.skip(f"CDNOW sample not found at {CDNOW_SAMPLE}")
    days = rfm_summary(read_cdnow_transactions(CDNOW_SAMPLE), calibration_end=CALIBRATION_END)
    model = BetaGeoModel().fit(days["frequency"], days["recency"], days["T"])
    assert model.params_["alpha"] == pytest.approx(7 * FHL_PARAMS["alpha"], rel=0.01)
    for name in ("r", "a", "b"):
        assert model.params_[name] == pytest.approx(FHL_PARAMS[name], rel=0.01), name


def test_gamma_gamma_reproduces_fader_hardie_on_cdnow(cdnow_summary):
    # The published p, q, v come from the mean value of the *repeat* purchase occasions in the
    # 39-week calibration window (first purchase excluded, same-day orders summed): exactly
    # rfm_summary's monetary_value. Including the first purchase gives p~14.3, q~3.95, v~7.3.
    s = cdnow_summary
    model = GammaGammaModel().fit(s["frequency"], s["monetary_value"])
    for name, published in FH_SPEND_PARAMS.items():
        assert model.params_[name] == pytest.approx(published, rel=0.01), name
    # Population mean spend per occasion, p v / (q - 1), as implied by the published parameters.
    p, q, v = FH_SPEND_PARAMS.values()
    assert model.population_mean_value() == pytest.approx(p * v / (q - 1), rel=0.005)


# --------------------------------------------------------------------------- BG/NBD properties


def test_bgnbd_matches_reference_values():
    # Cross-checked against lifetimes 0.11.3 (BetaGeoFitter) at the published parameters.
    model = BetaGeoModel()
    model.params_ = {
        "r": 0.2425945219186083,
        "alpha": 4.413602216314436,
        "a": 0.792922035014682,
        "b": 2.425907017517562,
    }
    x = np.array([0, 1, 2, 20, 100, 3])
    t_x = np.array([0, 1, 30.43, 38, 38.8, 10])
    T = np.array([38.86, 38.86, 38.86, 38.86, 38.86, 38.86])
    np.testing.assert_allclose(
        model.expected_purchases(39, x, t_x, T),
        [
            0.1947820364688,
            0.1798143900631,
            1.2259068520021,
            13.425900417025,
            68.553969841765,
            0.3275698193599,
        ],
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        model.probability_alive(x, t_x, T),
        [1.0, 0.1877562332303, 0.7266091726528, 0.9473642324678, 0.9910956706143, 0.1364248559704],
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        model.unconditional_expected_purchases(np.array([1, 39, 100])),
        [0.0531842891859, 1.1950100251596, 2.1507555532651],
        rtol=1e-9,
    )


def test_probability_alive_properties():
    model = published_bgnbd()
    # No repeat purchase yet: dropout only follows a purchase, so the customer is surely active.
    np.testing.assert_array_equal(
        model.probability_alive(np.zeros(3), np.zeros(3), np.array([1.0, 20, 300])), 1.0
    )
    recency = np.linspace(0.5, 38.0, 40)
    alive = model.probability_alive(np.full(40, 3), recency, np.full(40, 38.0))
    assert np.all((alive > 0) & (alive <= 1))
    assert np.all(np.diff(alive) > 0), "an older last purchase must mean a lower P(alive)"


def test_expected_purchases_and_no_purchase_properties():
    model = published_bgnbd()
    t = np.linspace(0.0, 200.0, 81)
    for x, t_x, T in [(0, 0.0, 38.0), (1, 2.0, 38.0), (5, 36.0, 38.0), (40, 37.5, 38.0)]:
        expected = model.expected_purchases(t, x, t_x, T)
        quiet = model.probability_no_purchase(t, x, t_x, T)
        alive = model.probability_alive(x, t_x, T)
        assert expected[0] == pytest.approx(0.0, abs=1e-12) and np.all(expected >= 0)
        assert np.all(np.diff(expected) > 0)
        assert quiet[0] == pytest.approx(1.0) and np.all((quiet >= 0) & (quiet <= 1))
        assert np.all(np.diff(quiet) <= 0) and quiet[-1] < quiet[1]  # flattens at 1 - P(alive)
        assert np.all(expected >= 1 - quiet - 1e-12), "E[Y] >= P(Y >= 1)"
        # Far ahead, an active customer surely buys again: only the dropped-out stay quiet.
        far = model.probability_no_purchase(1e40, x, t_x, T)  # heavy-tailed in t: small r
        assert far == pytest.approx(1 - alive, abs=1e-3)


def test_heavy_buyers_stay_finite():
    model = published_bgnbd()
    x = np.array([100.0, 1_000.0, 10_000.0])
    T = np.full(3, 38.86)
    expected = model.expected_purchases(39, x, T, T)  # bought on the last day: surely active
    assert np.all(np.isfinite(expected)) and np.all(np.diff(expected) > 0)
    # Rate ~ x / (alpha + T) per week, thinned by later dropouts: of the order of x.
    assert np.all((expected > 0.5 * x) & (expected < 1.1 * x))
    # 10,000 purchases but none in the last 10 hours: almost surely dropped out.
    assert model.probability_alive(10_000, 38.8, 38.86) < 0.05


def test_predictions_keep_series_index_and_are_fast():
    model = published_bgnbd()
    rng = np.random.default_rng(0)
    n = 100_000
    T = pd.Series(rng.uniform(1, 52, n), index=pd.RangeIndex(n, name="user_id") + 10)
    x = pd.Series(rng.poisson(2, n).astype(float), index=T.index)
    t_x = np.where(x > 0, rng.uniform(0, 1, n) * T, 0.0)
    start = time.perf_counter()
    expected = model.expected_purchases(26, x, t_x, T)
    model.probability_alive(x, t_x, T)
    model.probability_no_purchase(26, x, t_x, T)
    assert time.perf_counter() - start < 2.0
    assert isinstance(expected, pd.Series) and expected.index.equals(T.index)


def test_fit_rejects_inconsistent_input():
    with pytest.raises(ValueError, match="recency"):
        BetaGeoModel().fit([1, 2], [5.0, 1.0], [4.0, 3.0])
    with pytest.raises(ValueError, match="frequency 0"):
        BetaGeoModel().fit([0, 2], [1.0, 1.0], [4.0, 3.0])
    with pytest.raises(RuntimeError, match="fit"):
        BetaGeoModel().probability_alive(1, 1, 2)


# --------------------------------------------------------------------------- simulation


def simulate_bgnbd(
    n: int, r: float, alpha: float, a: float, b: float, T: np.ndarray, horizon: float, seed: int
) -> dict[str, np.ndarray]:
    """Draw customers from the BG/NBD story; return calibration RFM, holdout counts, true state.

    Every customer buys at time 0; while active they buy as Poisson(lambda); after the k-th
    repeat purchase they drop out, with k ~ Geometric(p). Returns x, t_x within (0, T], the
    number of purchases in (T, T + horizon] and whether they were still active at T.
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    last_purchase_allowed = rng.geometric(rng.beta(a, b, n))
    now, t_x = np.zeros(n), np.zeros(n)
    x, future = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        nxt = now[idx] + rng.exponential(1 / lam[idx])
        buys = (nxt <= T[idx] + horizon) & (x[idx] + future[idx] < last_purchase_allowed[idx])
        in_cal = buys & (nxt <= T[idx])
        x[idx[in_cal]] += 1
        t_x[idx[in_cal]] = nxt[in_cal]
        future[idx[buys & ~in_cal]] += 1
        now[idx] = nxt
        active[idx[~buys]] = False
    return {"x": x, "t_x": t_x, "T": T, "future": future, "alive": x < last_purchase_allowed}


TRUE = {"r": 0.4, "alpha": 5.0, "a": 0.8, "b": 2.5}


@pytest.fixture(scope="module")
def simulated() -> dict[str, np.ndarray]:
    n = 30_000
    T = np.random.default_rng(1).uniform(20, 52, n)
    return simulate_bgnbd(n, **TRUE, T=T, horizon=26.0, seed=2)


def test_bgnbd_recovers_simulated_parameters(simulated):
    s = simulated
    model = BetaGeoModel().fit(s["x"], s["t_x"], s["T"])
    fitted = model.params_
    # Across seeds r and alpha land within ~2%; a and b drift together by up to ~12% (they are
    # strongly correlated), while the mean dropout probability a / (a + b) stays within ~1%.
    assert fitted["r"] == pytest.approx(TRUE["r"], rel=0.05), fitted
    assert fitted["alpha"] == pytest.approx(TRUE["alpha"], rel=0.05), fitted
    assert fitted["a"] == pytest.approx(TRUE["a"], rel=0.2), fitted
    assert fitted["b"] == pytest.approx(TRUE["b"], rel=0.2), fitted
    true_dropout = TRUE["a"] / (TRUE["a"] + TRUE["b"])
    assert fitted["a"] / (fitted["a"] + fitted["b"]) == pytest.approx(true_dropout, rel=0.03), (
        fitted
    )


def test_bgnbd_predictions_are_calibrated_on_simulated_customers(simulated):
    # With the true parameters, population means of the conditional predictions must equal the
    # simulated outcomes (law of total expectation), up to Monte-Carlo error.
    s = simulated
    model = BetaGeoModel()
    model.params_ = dict(TRUE)
    args = (s["x"], s["t_x"], s["T"])
    future = s["future"]
    se = future.std() / np.sqrt(len(future))
    assert model.expected_purchases(26.0, *args).mean() == pytest.approx(future.mean(), abs=4 * se)
    assert model.probability_alive(*args).mean() == pytest.approx(s["alive"].mean(), abs=0.01)
    assert model.probability_no_purchase(26.0, *args).mean() == pytest.approx(
        (future == 0).mean(), abs=0.01
    )
    se_x = s["x"].std() / np.sqrt(len(future))
    assert model.unconditional_expected_purchases(s["T"]).mean() == pytest.approx(
        s["x"].mean(), abs=4 * se_x
    )


def test_gamma_gamma_recovers_simulated_parameters():
    rng = np.random.default_rng(5)
    p, q, v, n = 6.0, 4.0, 15.0, 8_000
    x = 1 + rng.poisson(2.0, n)
    nu = rng.gamma(q, 1 / v, n)
    mean_spend = rng.gamma(p * x, 1 / nu) / x  # sum of x Gamma(p, nu) values, averaged
    model = GammaGammaModel().fit(x, mean_spend)
    assert model.params_["p"] == pytest.approx(p, rel=0.1)
    assert model.params_["q"] == pytest.approx(q, rel=0.15)
    assert model.params_["v"] == pytest.approx(v, rel=0.2)


def test_gamma_gamma_expected_value_shrinks_towards_population_mean():
    model = GammaGammaModel()
    model.params_ = dict(FH_SPEND_PARAMS)
    population = model.population_mean_value()
    values = model.expected_average_value(
        np.array([0, 1, 5, 50, 5_000]), np.array([0.0, 100.0, 100.0, 100.0, 100.0])
    )
    assert values[0] == pytest.approx(population)
    assert np.all(np.diff(values) > 0) and np.all(values[1:] < 100.0)
    assert values[-1] == pytest.approx(100.0, rel=1e-3)
    p, q, v = 6.25, 3.74, 15.44
    assert values[1] == pytest.approx(p * (v + 100.0) / (p + q - 1))
    with pytest.warns(UserWarning, match="left out 1 repeat buyers"):
        GammaGammaModel().fit([1, 2, 3, 0], [10.0, 0.0, 12.0, 0.0])
    with pytest.raises(ValueError, match="no customer"):
        GammaGammaModel().fit([0, 0], [0.0, 0.0])


# --------------------------------------------------------------------------- CLV


def test_customer_lifetime_value_discounting():
    bg = published_bgnbd()
    gg = GammaGammaModel()
    gg.params_ = dict(FH_SPEND_PARAMS)
    x = pd.Series([0, 2, 7], index=["u0", "u2", "u7"])
    t_x, T, m = np.array([0.0, 30.0, 37.0]), np.full(3, 38.86), np.array([0.0, 22.35, 40.0])
    undiscounted = customer_lifetime_value(bg, gg, x, t_x, T, m, horizon_periods=52)
    np.testing.assert_allclose(
        undiscounted, bg.expected_purchases(52, x, t_x, T) * gg.expected_average_value(x, m)
    )
    assert list(undiscounted.index) == ["u0", "u2", "u7"]
    weeks_per_month = 365.25 / 12 / 7
    discounted = customer_lifetime_value(
        bg, gg, x, t_x, T, m, 52, 0.01, periods_per_month=weeks_per_month
    )
    assert np.all(discounted < undiscounted) and np.all(discounted > undiscounted / 1.01**52)
    # One step covering the whole horizon: everything discounted from its end.
    one_step = customer_lifetime_value(bg, gg, x, t_x, T, m, 52, 0.01, periods_per_month=100)
    np.testing.assert_allclose(one_step, undiscounted / 1.01**52)
