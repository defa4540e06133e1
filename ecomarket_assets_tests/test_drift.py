"""Drift monitoring on Evidently: verdicts read back from the snapshot, files, feature selection."""

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.monitoring import drift

# Evidently's import warns about numpy.core and litestar deprecations: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

N = 3000  # above Evidently's 1000-row switch from p-value tests to distances
NUMERICAL = ["price", "score"]
CATEGORICAL = ["category", "reason_type"]


def _sample(seed: int, n: int = N, price_factor: float = 1.0, new_category_share: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    category = rng.choice(["garden", "kitchen", "toys & games"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    category[rng.random(n) < new_category_share] = "pet supplies"
    return pd.DataFrame({
        "price": rng.lognormal(3.0, 0.5, n) * price_factor,
        "score": rng.normal(0.0, 1.0, n),
        "category": category,
        "reason_type": rng.choice(["similar", "category", "country"], size=n, p=[0.6, 0.3, 0.1]),
        "user_id": [f"U{i:07d}" for i in range(n)],  # not compared: extra columns are ignored
    })


@pytest.fixture(scope="module")
def same() -> drift.DriftReport:
    ref, cur = _sample(1), _sample(2)
    # nullable dtypes as user_profiles has them (Int64 RFM scores, boolean opt-ins), with gaps
    for frame, seed in ((ref, 3), (cur, 4)):
        rng = np.random.default_rng(seed)
        frame["r_score"] = pd.array(rng.integers(1, 6, N), dtype="Int64")
        frame.loc[rng.random(N) < 0.2, "r_score"] = pd.NA
        frame["email_opt_in"] = pd.array(rng.random(N) < 0.4, dtype="boolean")
        frame.loc[rng.random(N) < 0.1, "email_opt_in"] = pd.NA
    return drift.compare(ref, cur, NUMERICAL + ["r_score"], CATEGORICAL + ["email_opt_in"], "same distribution")


@pytest.fixture(scope="module")
def shifted() -> drift.DriftReport:
    ref = _sample(1)
    cur = _sample(2, price_factor=1.3, new_category_share=0.45)
    return drift.compare(ref, cur, NUMERICAL, CATEGORICAL, "recommendations: week 2 vs week 1 & <b>")


def test_same_distribution_nothing_drifts(same):
    table = same.table
    assert list(table.columns) == drift.TABLE_COLUMNS
    assert table["column"].tolist() == ["price", "score", "r_score", "category", "reason_type", "email_opt_in"]
    assert table["kind"].tolist() == ["numerical"] * 3 + ["categorical"] * 3
    assert same.drifted_columns == [] and same.drifted_share == 0.0
    assert (same.reference_rows, same.current_rows) == (N, N)
    # Evidently's choice for > 1000 rows: distances, drift when score >= threshold
    methods = dict(zip(table["column"], table["method"], strict=True))
    assert methods["price"] == "Wasserstein distance (normed)"
    assert methods["category"] == "Jensen-Shannon distance"
    assert (table["score"] < table["threshold"]).all()


def test_nullable_columns_summarised(same):
    rows = same.table.set_index("column")
    assert rows.loc["r_score", "reference_mean"] == pytest.approx(3.0, abs=0.1)
    assert rows.loc["email_opt_in", "reference_top"] == "False"  # booleans become labels; 60 % False
    assert np.isnan(rows.loc["email_opt_in", "reference_mean"])
    assert rows.loc["r_score", "reference_top"] is None


def test_shifted_price_and_new_category_drift(shifted):
    rows = shifted.table.set_index("column")
    assert shifted.drifted_columns == ["price", "category"]
    assert rows["drifted"].to_dict() == {"price": True, "score": False, "category": True, "reason_type": False}
    assert shifted.drifted_share == pytest.approx(0.5)
    assert shifted.drifted_share == pytest.approx(rows["drifted"].mean())  # Evidently's count agrees with its tests
    assert (rows.loc[["price", "category"], "score"] >= rows.loc[["price", "category"], "threshold"]).all()
    assert rows.loc["price", "current_mean"] / rows.loc["price", "reference_mean"] == pytest.approx(1.3, abs=0.05)
    assert rows.loc["category", "reference_top"] == "garden"
    assert rows.loc["category", "current_top"] == "pet supplies"
    assert rows.loc["price", "reference_top"] is None


def test_small_samples_use_p_values_and_read_the_verdict():
    """Below 1000 rows Evidently tests p-values (drift when score < threshold): the table must follow it."""
    ref, cur = _sample(5, n=400), _sample(6, n=400, price_factor=1.5)
    report = drift.compare(ref, cur, ["price", "score"], [], "small")
    rows = report.table.set_index("column")
    assert rows.loc["price", "method"] == "K-S p_value"
    assert rows.loc["price", "threshold"] == pytest.approx(0.05)
    assert rows.loc["price", "score"] < 1e-6 and rows.loc["price", "drifted"]
    assert rows.loc["score", "score"] > 0.05 and not rows.loc["score", "drifted"]
    assert report.drifted_share == pytest.approx(0.5)


def test_save_writes_html_and_json(shifted, tmp_path):
    shifted.extra = {"cold_start_share_current": 0.25, "cold_start_share_reference": float("nan")}
    html_path, json_path = shifted.save(tmp_path / "drift", "recs")
    assert (html_path, json_path) == (tmp_path / "drift" / "recs.html", tmp_path / "drift" / "recs.json")
    page = html_path.read_text(encoding="utf-8")
    assert "<title>recommendations: week 2 vs week 1 &amp; &lt;b&gt;</title>" in page
    assert "<b>" not in page.split("<body>")[1][:500]  # escaped in the heading too
    assert "drifted columns: 2 of 4 (price, category)" in page
    assert "drawDashboard" in page and not re.search(r"<script[^>]+src=", page)  # Evidently's JS inlined: offline
    summary = json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert summary["drifted_columns"] == ["price", "category"]
    assert summary["rows"] == {"reference": N, "current": N}
    assert summary["drifted_share"] == pytest.approx(0.5)
    assert summary["extra"] == {"cold_start_share_current": 0.25, "cold_start_share_reference": None}
    price = next(c for c in summary["columns"] if c["column"] == "price")
    assert price["drifted"] is True and price["kind"] == "numerical" and price["current_top"] is None
    assert summary == json.loads(json.dumps(shifted.summary()))


@pytest.mark.parametrize(("reference", "current", "message"), [
    (_sample(1, 50), _sample(2, 50).drop(columns="price"), r"current frame lacks column\(s\) \['price'\]"),
    (_sample(1, 50).drop(columns="category"), _sample(2, 50), r"reference frame lacks column\(s\) \['category'\]"),
    (_sample(1, 50), _sample(2, 50).head(0), "current frame is empty"),
    (_sample(1, 50).head(0), _sample(2, 50), "reference frame is empty"),
    (_sample(1, 50), _sample(2, 50).assign(price=np.nan), r"\['price'\] are entirely null in the current"),
    (_sample(1, 50), _sample(2, 50).assign(price="cheap"), "numerical column 'price' holds non-numeric"),
])
def test_bad_inputs_raise_clear_errors(reference, current, message):
    with pytest.raises(ValueError, match=message):
        drift.compare(reference, current, NUMERICAL, CATEGORICAL, "bad")


def test_column_lists_must_be_usable():
    frame = _sample(1, 50)
    with pytest.raises(ValueError, match="no columns"):
        drift.compare(frame, frame, [], [], "none")
    with pytest.raises(ValueError, match="both numerical and categorical"):
        drift.compare(frame, frame, ["price"], ["price"], "twice")


def _profiles(n: int = 60) -> pd.DataFrame:
    """A user_profiles-shaped frame with the awkward dtypes of the real one."""
    rng = np.random.default_rng(7)
    as_of = dt.date(2025, 12, 1)
    orders = rng.integers(0, 6, n)
    buyer = orders > 0
    return pd.DataFrame({
        "user_id": [f"U{i:07d}" for i in range(n)],
        "as_of": [as_of] * n,
        "country": rng.choice(["Spain", "France", "United Kingdom"], n),
        "signup_time": pd.to_datetime("2024-01-01", utc=True) + pd.to_timedelta(rng.integers(0, 600, n), unit="D"),
        "email_opt_in": pd.array(rng.random(n) < 0.5, dtype="boolean"),
        "tenure_days": rng.uniform(1, 900, n).round(1),
        "orders": orders.astype("int64"),
        "avg_order_value": np.where(buyer, rng.uniform(5, 60, n), np.nan),
        "first_order_date": pd.to_datetime(np.where(buyer, "2025-06-01", None)),
        "top_category": rng.choice(["garden", "kitchen", None], n),
        "favourite_brands": [f"Brand{i}; Brand{i + 1}" for i in range(n)],  # free text, one per user
        "r_score": pd.array(np.where(buyer, rng.integers(1, 6, n), None), dtype="Int64"),
        "rfm_score": [f"{i % 5 + 1}{i % 4 + 1}{i % 3 + 1}" for i in range(n)],  # 60 codes: high cardinality
        "rfm_segment": rng.choice(["champions", "lost", "prospects"], n),
        "predicted_clv": rng.gamma(2.0, 20.0, n),
        "churn_probability": rng.random(n),
        "churn_band": rng.choice(["low", "medium", "high"], n),
        "probability_alive": np.full(n, np.nan),  # entirely null: nothing to compare
        "shipping_note": rng.choice(["Leave the parcel with the neighbour at number twelve if out"] * 2, n),
        "expected_next_order_date": [as_of + dt.timedelta(days=int(d)) if b else None
                                     for d, b in zip(rng.integers(1, 60, n), buyer, strict=True)],
        "product_id": rng.integers(1, 10_000, n),
    }, index=pd.RangeIndex(100, 100 + n))


def test_profile_features_picks_behaviour_and_segments():
    profiles = _profiles()
    frame, numerical, categorical = drift.profile_features(profiles)
    assert numerical == ["tenure_days", "orders", "avg_order_value", "r_score", "predicted_clv", "churn_probability"]
    assert categorical == ["country", "email_opt_in", "top_category", "rfm_segment", "churn_band"]
    assert list(frame.columns) == numerical + categorical
    assert frame.index.equals(profiles.index)
    assert (frame[numerical].dtypes == "float64").all()
    assert frame["r_score"].isna().sum() == (profiles["orders"] == 0).sum()  # Int64 NA -> NaN, not 0
    assert set(frame["email_opt_in"]) == {"True", "False"}
    assert frame["top_category"].isna().sum() == profiles["top_category"].isna().sum()


def test_recommendation_features_by_hand():
    recs = pd.DataFrame({
        "user_id": ["U1", "U1", "U2", "U2", "U3"],
        "rank": [1, 2, 1, 2, 1],
        "product_id": ["P1", "P2", "P1", "P3", "P9"],
        "score": np.array([0.9, 0.5, 0.8, 0.1, 0.3], dtype="float32"),
        "reason": ["r"] * 5,
        "reason_type": ["similar", "category", "similar", "country", "popular"],
        "reason_product_id": ["P7", None, "P7", None, None],
        "title": ["a", "b", "a", "c", None],
        "category": ["garden", "kitchen", "garden", "toys", None],
        "price": [10, 20, 10, 5, np.nan],
        "cold_user": [True, True, False, False, True],
        "as_of": [dt.date(2025, 12, 2)] * 5,
        "model_version": ["3"] * 5,
    })
    features = drift.recommendation_features(recs)
    assert list(features.columns) == ["category", "price", "score", "cold_user", "reason_type"]
    assert features["category"].tolist() == ["garden", "kitchen", "garden", "toys", "(missing)"]
    assert features["price"].dtype == "float64" and features["price"].tolist()[:4] == [10.0, 20.0, 10.0, 5.0]
    assert features["score"].dtype == "float64" and features["score"].iloc[1] == pytest.approx(0.5)
    assert features["cold_user"].tolist() == ["yes", "yes", "no", "no", "yes"]
    assert features["reason_type"].tolist() == recs["reason_type"].tolist()
    assert drift.cold_start_share(recs) == pytest.approx(2 / 3)  # by user (U1, U3 of 3), not by row (3 of 5)


def test_cold_start_share_edge_cases():
    assert drift.cold_start_share(pd.DataFrame({"user_id": [], "cold_user": []})) == 0.0
    unknown = pd.DataFrame({"user_id": ["U1", "U2", "U3", "U4"], "cold_user": [True, None, False, None]})
    assert drift.cold_start_share(unknown) == pytest.approx(0.25)  # unknown history is not counted as cold
