"""The simulator's live stream: valid canonical events, a cart truth that agrees with them, reminders that
lift orders as the truth says, and the command line posting a stream to a real collector."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.collector.validation import judge_batch
from ecomarket_assets.ingestion import landing
from ecomarket_assets.ingestion.adapters.canonical import read_table_file
from ecomarket_assets.schemas import CATALOG, CUSTOMERS, EVENTS
from ecomarket_assets.simulator import live
from ecomarket_assets.simulator.shop import SimConfig, simulate
from ecomarket_assets.storage import DataLayout, read_frame, write_frame
from ecomarket_assets_tests.servers import free_port, start_module

START = pd.Timestamp("2025-06-05T10:00:00Z")


@pytest.fixture(scope="module")
def shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    tables = simulate(SimConfig(n_users=600, n_products=120, n_days=10, seed=3)).tables
    return tables.catalog, tables.customers


@pytest.fixture(scope="module")
def stream(shop) -> live.LiveStream:
    return live.live_stream(*shop, START, 10, sessions_per_minute=40, new_user_share=0.1, seed=5)


def test_every_event_is_a_valid_canonical_event_inside_the_window(shop, stream) -> None:
    events = stream.events
    EVENTS.to_arrow(events)  # exactly the canonical columns and types
    judged = judge_batch(live.event_records(events), set(shop[0]["product_id"]))
    assert not judged.rejects and len(judged.kept) == len(events)
    assert events["event_time"].is_monotonic_increasing
    assert events["event_time"].min() >= START and events["event_time"].max() < START + pd.Timedelta(minutes=10)
    assert events["event_id"].is_unique and set(events["event_type"]) == {"view", "cart", "purchase"}
    new = stream.signups
    CUSTOMERS.to_arrow(new)
    assert len(new) and not set(new["user_id"]) & set(shop[1]["user_id"])
    first = events.groupby("user_id")["event_time"].min()
    assert (first.reindex(new["user_id"]).to_numpy() == new["signup_time"].to_numpy()).all()


def test_the_cart_truth_agrees_with_the_events(stream) -> None:
    events, carts = stream.events, stream.carts
    lines = events[events["event_type"] == "cart"]
    assert set(carts["session_id"]) == set(lines["session_id"]) and carts["session_id"].is_unique
    by_session = carts.set_index("session_id")
    assert (lines.groupby("session_id")["event_time"].max().reindex(by_session.index) == by_session["cart_time"]).all()
    assert all(sorted(lines[lines["session_id"] == s]["product_id"]) == sorted(p)
               for s, p in by_session["product_ids"].head(50).items())
    bought = events[events["event_type"] == "purchase"].merge(carts[["session_id", "cart_time"]], on="session_id")
    assert (bought["event_time"] > bought["cart_time"]).all()
    assert set(bought["session_id"]) == set(carts.loc[carts["bought_in_session"], "session_id"])
    assert (carts["abandoned"] == ~carts["bought_in_session"]).all()
    value = carts.apply(lambda c: sum(q * p for q, p in zip(c["quantities"], c["unit_prices"], strict=True)), axis=1)
    assert np.allclose(value, carts["cart_value"], atol=0.011)
    ab = carts[carts["abandoned"]]
    assert 0.4 < len(ab) / len(carts) < 0.85
    assert ab[["p_buy_without", "p_buy_with_reminder"]].stack().between(0, 1).all()
    assert np.allclose(ab["true_uplift"], ab["p_buy_with_reminder"] - ab["p_buy_without"])
    assert carts.loc[carts["bought_in_session"], "true_uplift"].isna().all()


def test_the_same_seed_gives_the_same_stream(shop, stream) -> None:
    again = live.live_stream(*shop, START, 10, sessions_per_minute=40, new_user_share=0.1, seed=5)
    pd.testing.assert_frame_equal(again.events, stream.events)
    pd.testing.assert_frame_equal(again.carts, stream.carts)
    other = live.live_stream(*shop, START, 10, sessions_per_minute=40, new_user_share=0.1, seed=6)
    assert not other.events["product_id"].equals(stream.events["product_id"])


def test_the_speed_squeezes_times_towards_the_start(stream) -> None:
    fast = live.squeezed(stream, 10)
    assert fast.events["event_time"].max() < START + pd.Timedelta(minutes=1)
    assert (fast.events["event_id"] == stream.events["event_id"]).all()
    assert fast.events["event_time"].is_monotonic_increasing


@pytest.fixture(scope="module")
def big(shop) -> live.LiveStream:
    return live.live_stream(*shop, START, 30, sessions_per_minute=300, seed=11)


def test_reminders_lift_orders_as_the_truth_says(big) -> None:
    """Measured uplift of a random half against the expected one, within 4 standard errors of a difference
    of two proportions (about 4 x 1.6 points at 1,500 sends a side: a false failure is a 1 in 15,000 event)."""
    ab = big.carts[big.carts["abandoned"]]
    assert len(ab) > 2_500
    assert 0.05 <= ab["true_uplift"].mean() <= 0.15
    # price-sensitive users and big carts respond more
    assert ab.groupby("price_sensitivity")["true_uplift"].mean().is_monotonic_increasing
    big_cart = ab["cart_value"] > ab["cart_value"].median()
    assert ab.loc[big_cart, "true_uplift"].mean() > ab.loc[~big_cart, "true_uplift"].mean()
    group = np.where(np.random.default_rng(1).random(len(ab)) < 0.5, "treatment", "control")
    sends = pd.DataFrame({"user_id": ab["user_id"].to_numpy(), "session_id": ab["session_id"].to_numpy(),
                          "send_time": (ab["cart_time"] + pd.Timedelta(minutes=30)).to_numpy(), "group": group})
    orders = live.respond(sends, big.carts, window=pd.Timedelta(hours=24), seed=2)
    EVENTS.to_arrow(orders)
    assert set(orders["event_type"]) == {"purchase"} and orders["event_id"].is_unique
    converted = sends["session_id"].isin(orders["order_id"].str.removeprefix("RO-"))
    treated = sends["group"] == "treatment"
    rate_t, rate_c = converted[treated].mean(), converted[~treated].mean()
    expect_t, expect_c = ab["p_buy_with_reminder"][treated.to_numpy()].mean(), ab["p_buy_without"][~treated.to_numpy()].mean()
    se_t = np.sqrt(expect_t * (1 - expect_t) / treated.sum())
    se_c = np.sqrt(expect_c * (1 - expect_c) / (~treated).sum())
    assert abs(rate_t - expect_t) < 4 * se_t and abs(rate_c - expect_c) < 4 * se_c
    assert abs((rate_t - rate_c) - (expect_t - expect_c)) < 4 * np.hypot(se_t, se_c)
    assert rate_t - rate_c > 2 * np.hypot(se_t, se_c)
    # each order comes after its send, inside the window, and buys the cart's lines at the cart's prices
    joined = orders.assign(session_id=orders["order_id"].str.removeprefix("RO-")).merge(sends, on="session_id")
    assert (joined["event_time"] > joined["send_time"]).all()
    assert (joined["event_time"] < joined["send_time"] + pd.Timedelta(hours=24)).all()
    lines = big.carts.explode(live.LINE_COLUMNS)
    priced = joined.merge(lines, left_on=["session_id", "product_id"], right_on=["session_id", "product_ids"])
    assert len(priced) == len(orders) and (priced["unit_price"] == priced["unit_prices"].astype(float)).all()


def test_sends_without_a_session_and_carts_without_a_send(big) -> None:
    ab = big.carts[big.carts["abandoned"]]
    one = ab.iloc[[0]]
    sends = pd.DataFrame({"user_id": one["user_id"], "session_id": [None],
                          "send_time": one["cart_time"] + pd.Timedelta(minutes=30), "group": "treatment"})
    sure = big.carts.assign(p_buy_with_reminder=np.where(big.carts["abandoned"], 0.999999, np.nan))
    [order] = live.respond(sends, sure, window=pd.Timedelta(hours=24), seed=0)["order_id"].unique()
    before = ab[(ab["user_id"] == one["user_id"].iloc[0]) & (ab["cart_time"] < sends["send_time"].iloc[0])]
    latest = before.sort_values("cart_time")["session_id"].iloc[[-1]]
    assert order == f"RO-{latest.iloc[0]}"  # the user's latest abandoned cart before the send
    bought = big.carts[big.carts["bought_in_session"]].iloc[[0]]
    nothing = live.respond(bought[["user_id", "session_id"]].assign(send_time=bought["cart_time"], group="treatment"),
                           sure, window=pd.Timedelta(hours=24))
    assert nothing.empty  # a cart bought in its session is not re-ordered
    everyone = live.respond(sends, big.carts, window=pd.Timedelta(hours=24), unsent=True, seed=0)
    unsent = everyone.assign(session_id=everyone["order_id"].str.removeprefix("RO-"))
    unsent = unsent[unsent["session_id"] != latest.iloc[0]].merge(big.carts, on="session_id")
    assert (unsent["event_time"] > unsent["cart_time"]).all()
    rate = unsent["session_id"].nunique() / (len(ab) - 1)
    assert abs(rate - ab["p_buy_without"].mean()) < 0.04  # ~4 standard errors at 3,000 carts
    shorter = live.respond(sends, big.carts, window=pd.Timedelta(hours=2), unsent=True, seed=0)
    assert shorter["order_id"].nunique() < 0.3 * everyone["order_id"].nunique()  # a constant hazard over 2 h of 24


def test_a_failed_post_is_retried_with_the_same_batch_id() -> None:
    calls: list[str] = []

    class Flaky:
        def post(self, path: str, json: dict) -> httpx.Response:
            calls.append(json["batch_id"])
            if len(calls) < 3:
                raise httpx.ConnectError("refused")
            return httpx.Response(201, json={"accepted": len(json["events"]), "quarantined": 0})

    assert live.post_batch(Flaky(), [{"event_id": "e"}], "b-1")["accepted"] == 1
    assert calls == ["b-1", "b-1", "b-1"]


# ----------------------------------------------------------------------------- the command line and a collector


def test_the_command_line_posts_every_event_to_a_real_collector(tmp_path: Path, shop) -> None:
    data, port = tmp_path / "data", free_port()
    layout = DataLayout(data)
    write_frame(shop[0][CATALOG.names], layout.table("catalog"), CATALOG)
    write_frame(shop[1][CUSTOMERS.names], layout.table("customers"), CUSTOMERS)
    proc = start_module("ecomarket_assets.collector", port, ready=lambda answer: answer.json()["catalog_products"],
                        env={"ECOMARKET_DATA_DIR": str(data), "ECOMARKET_COLLECTOR_KEYS": "live:k1"})
    try:
        t0 = time.monotonic()
        result = live.main(["--collector", f"http://127.0.0.1:{port}", "--key", "k1", "--minutes", "1",
                            "--speed", "30", "--sessions-per-minute", "120", "--seed", "4", "--data-dir", str(data),
                            "--quiet"])
        assert time.monotonic() - t0 < 10
    finally:
        proc.send_signal(signal.SIGTERM)  # closes the open micro-batch file
        proc.wait(20)
    stream, totals = result["stream"], result["totals"]
    assert totals["accepted"] == totals["events"] == len(stream.events) > 100 and totals["quarantined"] == 0
    assert 2 <= totals["batches"] <= 4  # a batch per second of a 2 s stream
    files = landing.inbox(data / "landing")
    landed = pd.concat([read_table_file(f) for f in files], ignore_index=True)
    assert sorted(landed["event_id"]) == sorted(stream.events["event_id"])
    landed_at = pd.to_datetime(landed.set_index("event_id")["event_time"], utc=True, format="ISO8601")
    assert (landed_at.reindex(stream.events["event_id"]).to_numpy() == stream.events["event_time"].to_numpy()).all()
    truth = read_frame(live.live_folder(data, result["start"]) / "carts.parquet")
    assert list(truth["session_id"]) == list(stream.carts["session_id"])
    assert truth["cart_time"].max() < result["start"] + pd.Timedelta(seconds=2)  # squeezed like the events
