"""The recommendation API: session re-ranking, cold lists, reloads, and a real uvicorn answering over HTTP."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ecomarket_assets.defs.recommender.assets import _output_frame
from ecomarket_assets.profiles.state import StateStore
from ecomarket_assets.recommender.pair_state import state_name
from ecomarket_assets.recommender.store import CutoffPlan, RecStore
from ecomarket_assets.schemas import CATALOG
from ecomarket_assets.serving import lists
from ecomarket_assets.serving.session import Item, rerank
from ecomarket_assets.storage import DataLayout, write_frame
from ecomarket_assets_tests.servers import free_port, start_module

PLAN = CutoffPlan.for_last_day(dt.date(2025, 12, 1))
TITLES = {f"P{i}": f"Title P{i}" for i in range(1, 7)}


# ----------------------------------------------------------------------------- a tiny data directory


def write_catalog(layout: DataLayout) -> None:
    catalog = pd.DataFrame({"product_id": list(TITLES), "title": list(TITLES.values()), "description": None,
                            "category": ["garden", "garden", "toys", "toys", "beauty", "beauty"], "brand": None,
                            "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    write_frame(catalog, layout.table("catalog"), CATALOG)


def write_pairs(layout: DataLayout) -> None:
    """P1 and P2 are engaged with by the same three users, P3 and P4 by the same two, P5 by one; P6 by nobody.
    Buyers in the last 28 days: P1 3, P4 2, P2 1, P3 1; this week: P4 2, P2 1 (nobody before)."""
    rows = []

    def pair(user, product, b28=0, b7=0):
        rows.append({"user_id": user, "product_id": product, "rows": 1, "engagement": 1.0,
                     "purchase_days": int(b28 > 0), "views": 1, "first_day": pd.Timestamp("2025-11-20"),
                     "last_day": pd.Timestamp("2025-12-01"), "first_bought_day": pd.NaT, "last_bought_day": pd.NaT,
                     "bought_7d": b7, "bought_28d": b28, "bought_prev_28d": 0, "bought_90d": b28, "viewed_28d": 0})

    for user in ("U1", "U2", "U3"):
        pair(user, "P1", b28=1)
        pair(user, "P2", b28=int(user == "U1"), b7=int(user == "U1"))
    pair("U4", "P3", b28=1)
    pair("U4", "P4", b28=1, b7=1)
    pair("U5", "P3")
    pair("U5", "P4", b28=1, b7=1)
    pair("U6", "P5")
    frame = pd.DataFrame(rows).set_index(["user_id", "product_id"])
    StateStore(layout.root / "state" / state_name(0)).write({"pairs": frame}, {"as_of": "2025-12-01"})


def write_recommendations(layout: DataLayout, version: str, lines: dict[str, list[str]]) -> None:
    """Through the `recommendations` asset's own output frame and writer."""
    rows = [{"user_id": user, "rank": rank, "product_id": product, "score": 2.0 - rank / 10,
             "reason": f"nightly reason {product}", "reason_type": "item_knn", "reason_product_id": None,
             "user_items": 1}
            for user, products in lines.items() for rank, product in enumerate(products, start=1)]
    catalog = pd.DataFrame({"product_id": list(TITLES), "title": list(TITLES.values()), "category": "c", "price": 1.0})
    write_frame(_output_frame(pd.DataFrame(rows), catalog, PLAN, version), RecStore(layout).recommendations_path)


def write_state(layout: DataLayout, users: dict[str, tuple[list[str], pd.Timestamp]]) -> None:
    frame = pd.DataFrame({"user_id": list(users), "recent_views": [v for v, _ in users.values()],
                          "last_event_at": pd.to_datetime([t for _, t in users.values()], utc=True)})
    write_frame(frame, lists.flows_state_path(layout))


NIGHTLY = {"U1": ["P3", "P5", "P6"], "U2": ["P5", "P6"]}


@pytest.fixture
def layout(data_dir: Path) -> DataLayout:
    layout = DataLayout(data_dir)
    write_catalog(layout)
    write_pairs(layout)
    write_recommendations(layout, "7", NIGHTLY)
    return layout


# ----------------------------------------------------------------------------- session re-rank


def _items(*products: str) -> list[Item]:
    return [Item(p, f"Title {p}", 1.0, f"nightly {p}", "item_knn") for p in products]


def test_rerank_blends_list_order_with_neighbour_strength_and_lets_strong_neighbours_in() -> None:
    base = _items("A", "B", "C", "D")  # nightly parts 0.5, 0.375, 0.25, 0.125
    neighbours = {"V": (("C", 1.0), ("X", 0.8), ("Y", 0.2))}
    titles = {p: f"Title {p}" for p in ("A", "B", "C", "D", "V", "X", "Y")}
    lines, applied = rerank(base, ["V"], neighbours, titles, 10)
    assert applied
    assert [i.product_id for i in lines] == ["C", "A", "X", "B", "D"]  # Y (0.2) is below the entry strength
    assert [i.score for i in lines] == [0.75, 0.5, 0.4, 0.375, 0.125]
    assert [i.reason_type for i in lines] == ["session", "item_knn", "session", "item_knn", "item_knn"]
    assert lines[0].reason == "Because you just viewed Title V" and lines[1].reason == "nightly A"


def test_older_views_count_half_and_the_viewed_products_are_not_shown_unless_nothing_else() -> None:
    base = _items("A", "B", "C")  # nightly parts 0.5, 0.333, 0.167
    neighbours = {"V1": (("B", 1.0),), "V2": (("A", 1.0), ("X", 1.0))}
    titles = {p: p for p in ("A", "B", "C", "V1", "V2", "X")}
    lines, _ = rerank(base, ["V1", "V2"], neighbours, titles, 5)  # V1 newest: B gets 0.5, A and X a quarter
    assert [(i.product_id, i.score) for i in lines] == [("B", 0.833333), ("A", 0.75), ("X", 0.25), ("C", 0.166667)]
    assert [(i.reason_type, i.reason) for i in lines[:2]] == [("session", "Because you just viewed V1"),
                                                               ("item_knn", "nightly A")]
    base = base[:2]
    assert rerank(base, ["A"], {}, titles, 1)[0] == [base[1]]
    assert [i.product_id for i in rerank(base, ["A"], {}, titles, 2)[0]] == ["B", "A"]  # nothing else to fill


def test_two_views_no_longer_saturate_and_equal_session_parts_follow_the_model() -> None:
    base = _items("A", "B")
    titles = {p: p for p in ("A", "B", "V1", "V2", "P1", "P2", "P3")}
    # each entering product neighbours both views well: a capped sum put all three at exactly 1 (0.5 shown) in
    # product id order; combined as a probabilistic or they keep their order: P3 0.93, P2 0.88, P1 0.85
    neighbours = {"V1": (("P3", 0.9), ("P2", 0.8), ("P1", 0.7)), "V2": (("P1", 1.0), ("P2", 0.8), ("P3", 0.6))}
    lines, _ = rerank(base, ["V1", "V2"], neighbours, titles, 5)
    assert [(i.product_id, i.score) for i in lines] == [("A", 0.5), ("P3", 0.465), ("P2", 0.44), ("P1", 0.425),
                                                        ("B", 0.25)]
    # equal session parts: the model's prior (popularity) orders them, not the product id
    neighbours = {"V1": (("P1", 0.6), ("P2", 0.6), ("P3", 0.6))}
    prior = {"P1": 0.2, "P2": 0.9, "P3": 0.5}
    lines, _ = rerank(base, ["V1"], neighbours, titles, 5, prior)
    assert [(i.product_id, i.score) for i in lines] == [("A", 0.5), ("P2", 0.3), ("P3", 0.3), ("P1", 0.3),
                                                        ("B", 0.25)]
    assert [i.product_id for i in rerank(base, ["V1"], neighbours, titles, 5)[0]] == ["A", "P1", "P2", "P3", "B"]
    # the strongest neighbour of the newest view still lands right after the nightly first line, whatever its prior
    lines, _ = rerank(base, ["V2"], {"V2": (("P1", 1.0),)}, titles, 3, {"P1": 1.0})
    assert [(i.product_id, i.score) for i in lines] == [("A", 0.5), ("P1", 0.5), ("B", 0.25)]


def test_neighbours_from_the_pair_state(layout: DataLayout) -> None:
    items = lists.load_item_data(layout.table("catalog"), lists.pair_state_path(layout), RecStore(layout).plan_path)
    assert items.neighbours["P1"][0] == ("P2", 1.0) and items.neighbours["P3"][0] == ("P4", 1.0)
    assert {p for p, _ in items.neighbours["P1"]}.isdisjoint({"P3", "P4", "P5", "P6"})
    assert "P6" not in items.neighbours and items.as_of == "2025-12-01"
    # the prior of products entering from a session: buyers in 28 days (log1p), over the best one's
    assert items.popularity == {"P1": 1.0, "P4": 0.792481, "P2": 0.5, "P3": 0.5}


def test_cold_list_interleaves_popular_and_trending(layout: DataLayout) -> None:
    items = lists.load_item_data(layout.table("catalog"), lists.pair_state_path(layout), RecStore(layout).plan_path)
    assert [(i.product_id, i.reason_type) for i in items.cold] == [
        ("P1", "popular"), ("P4", "trending"), ("P2", "trending"), ("P3", "popular")]
    assert items.cold[0].reason == "a best-seller: 3 shoppers bought it in the last four weeks"
    assert items.cold[1].reason == "trending: 2 shoppers bought it this week" and items.cold[1].score == 1.0


# ----------------------------------------------------------------------------- the service


def test_known_and_cold_users_with_the_session_from_the_request_and_the_state_file(layout: DataLayout) -> None:
    now = pd.Timestamp("2025-12-02 10:00", tz="UTC")
    write_state(layout, {"U2": (["P3"], now - pd.Timedelta(minutes=5)), "U1": (["P3"], now - pd.Timedelta(hours=2))})
    service = lists.RecommendationService(layout.root, clock=lambda: now.timestamp())
    service.refresh()
    plain = service.recommend("U1", [], 2)
    assert plain["user_known"] and plain["model_version"] == "7" and plain["as_of"] == str(PLAN.serving)
    assert [(i["product_id"], i["rank"], i["score"]) for i in plain["items"]] == [("P3", 1, 1.9), ("P5", 2, 1.8)]
    assert not plain["session_applied"] and plain["session_views"] == []  # U1's state views are two hours old
    viewed = service.recommend("U1", ["NOPE", "P1"], 3)
    assert viewed["session_views"] == ["P1"]  # unknown ids are ignored
    assert [(i["product_id"], i["reason_type"]) for i in viewed["items"]] == [
        ("P3", "item_knn"), ("P2", "session"), ("P5", "item_knn")]
    assert viewed["items"][1]["reason"] == "Because you just viewed Title P1"
    state = service.recommend("U2", [], 3)  # the state's fresh view of P3 brings its neighbour P4 in
    assert state["session_views"] == ["P3"]
    assert [i["product_id"] for i in state["items"]] == ["P5", "P4", "P6"]
    cold = service.recommend("U9", ["P3"], 3)
    assert not cold["user_known"]
    assert [(i["product_id"], i["reason_type"]) for i in cold["items"]] == [
        ("P4", "session"), ("P1", "popular"), ("P2", "trending")]
    assert lists.products_for("U1", ["P1"], 3, data_dir=layout.root)[1]["product_id"] == "P2"
    with pytest.raises(ValueError):
        service.recommend("U1", [], 51)


def test_a_broken_file_never_replaces_the_loaded_lists(layout: DataLayout) -> None:
    service = lists.RecommendationService(layout.root)
    service.refresh()
    path = RecStore(layout).recommendations_path
    path.write_bytes(b"PAR1 half a file")
    service.refresh()
    health = service.health()
    assert health["model_version"] == "7" and health["users"] == 2 and "ArrowInvalid" in health["file_error"]
    assert service.recommend("U1", [], 1)["items"][0]["product_id"] == "P3"
    write_recommendations(layout, "8", {"U1": ["P6"]})
    service.refresh()
    assert service.health()["file_error"] is None and service.health()["users"] == 1
    assert service.recommend("U1", [], 1)["model_version"] == "8"
    assert service.recommend("U1", [], 1)["items"][0]["product_id"] == "P6"


# ----------------------------------------------------------------------------- a real server


def start_server(data: Path, port: int, *extra: str) -> subprocess.Popen:
    return start_module("ecomarket_assets.serving", port, "--data-dir", str(data), *extra)


def test_uvicorn_serves_validates_and_reloads(layout: DataLayout) -> None:
    port = free_port()
    proc = start_server(layout.root, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            health = http.get("/health").json()
            assert health["status"] == "ok" and health["model_version"] == "7" and health["users"] == 2
            assert health["file"] == str(RecStore(layout).recommendations_path)
            assert health["state_file_age_seconds"] is None
            assert http.get("/v1/recommendations/U1", params={"k": 0}).status_code == 422
            assert http.get("/v1/recommendations/U1", params={"k": 51}).status_code == 422
            answer = http.get("/v1/recommendations/U1", params={"k": 3, "viewed": "P1,NOPE"}).json()
            assert [i["product_id"] for i in answer["items"]] == ["P3", "P2", "P5"]
            assert answer["items"][1] == {"product_id": "P2", "title": "Title P2", "score": 0.5, "rank": 2,
                                          "reason": "Because you just viewed Title P1", "reason_type": "session"}
            cold = http.get("/v1/recommendations/U9").json()
            assert not cold["user_known"] and [i["product_id"] for i in cold["items"]] == ["P1", "P4", "P2", "P3"]
            write_recommendations(layout, "9", {"U9": ["P5"]})
            deadline = time.monotonic() + 10
            while http.get("/health").json()["model_version"] != "9":
                assert time.monotonic() < deadline, "the new file was not loaded"
                time.sleep(0.1)
            answer = http.get("/v1/recommendations/U9", params={"k": 1}).json()
            assert answer["user_known"] and answer["model_version"] == "9" and answer["items"][0]["product_id"] == "P5"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn shuts down, then re-raises the signal it caught
