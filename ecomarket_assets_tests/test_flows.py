"""Triggered flows without Dagster: specs, the micro-batch feed, triggers and exits, the send rules, the outbox
and its webhook. The whole loop through a real collector and the Dagster sensor is in test_realtime_loop.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pandas as pd
import pytest

from ecomarket_assets.campaigns.planner import assign_group
from ecomarket_assets.campaigns.specs import SpecError
from ecomarket_assets.collector.writer import MicroBatchWriter
from ecomarket_assets.flows.feed import read_new
from ecomarket_assets.flows.outbox import Outbox, Webhook, deliver
from ecomarket_assets.flows.specs import duration, load_flows
from ecomarket_assets.flows.state import load_state, state_dir
from ecomarket_assets.flows.tick import run_tick
from ecomarket_assets.storage import DataLayout, remove_tree, write_frame

T0 = pd.Timestamp("2026-12-03 10:00:00", tz="UTC")
CART_FLOW = """
name: cart_reminder
trigger: {type: cart_abandoned}
wait: 10m
channels: [email, push]
subject: "Still thinking about {first_product}?"
frequency_cap: {messages: 1, days: 7}
control_share: 0.2
measurement: 1d
"""


def event(n: int, user: str, kind: str, product: str, minute: float, session: str | None = None,
          order: str | None = None) -> dict:
    return {"event_id": f"e{n}", "event_time": T0 + pd.Timedelta(minutes=minute), "user_id": user,
            "session_id": session or f"s-{user}", "event_type": kind, "product_id": product, "quantity": 1,
            "unit_price": 10.0, "order_id": order if kind == "purchase" else None, "channel": "web"}


def users_in(group: str, n: int, flow: str = "cart_reminder", share: float = 0.2) -> list[str]:
    """The first n ids c0, c1, ... the stable hash puts in `group` for the flow."""
    ids = pd.Series([f"c{i}" for i in range(400)])
    return ids[assign_group(flow, ids, share) == group].head(n).tolist()


@pytest.fixture
def shop(tmp_path: Path):
    root = tmp_path / "data"
    layout = DataLayout(root)
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    (flows_dir / "cart_reminder.yaml").write_text(CART_FLOW)
    customers = pd.DataFrame({"user_id": [f"c{i}" for i in range(400)], "email_opt_in": True, "sms_opt_in": False,
                              "push_opt_in": False})
    write_frame(customers, layout.table("customers"))
    write_frame(pd.DataFrame({"product_id": ["p1", "p2", "p3"], "title": ["Red mug", "=HYPERLINK(1)", "Teapot"]}),
                layout.table("catalog"))
    writer = MicroBatchWriter(root / "landing", root)
    writer.start()
    yield layout, flows_dir, writer
    writer.close()


def post(writer: MicroBatchWriter, rows: list[dict]) -> None:
    writer.store("shop", pd.DataFrame(rows), [])


def test_durations_and_spec_errors_name_file_and_field(tmp_path: Path) -> None:
    assert duration("90s") == pd.Timedelta(seconds=90) and duration("1.5h") == pd.Timedelta(minutes=90)
    (tmp_path / "bad.yaml").write_text(CART_FLOW.replace("wait: 10m", "wait: ten minutes").replace(
        "cart_abandoned", "cart_left"))
    with pytest.raises(SpecError) as error:
        load_flows(tmp_path)
    text = str(error.value)
    assert "bad.yaml: wait:" in text and "bad.yaml: trigger.type:" in text
    (tmp_path / "bad.yaml").write_text(CART_FLOW.replace("trigger: {type: cart_abandoned}",
                                                         "trigger: {type: rule, rule: 'cart_valu > 50'}"))
    with pytest.raises(SpecError, match="cart_value"):
        load_flows(tmp_path, allowed_columns=["orders"])
    assert load_flows(tmp_path / "missing") == []


def test_feed_reads_the_open_file_once_and_follows_its_rename(shop) -> None:
    layout, _, writer = shop
    post(writer, [event(1, "c1", "view", "p1", 0)])
    first = read_new(layout.root / "landing", {})
    assert first.events["event_id"].tolist() == ["e1"]
    assert read_new(layout.root / "landing", first.offsets).events.empty  # nothing new: nothing twice
    post(writer, [event(2, "c1", "cart", "p1", 1), event(3, "c1", "view", "p2", 2)])
    writer.rotate_due(now=float("inf"))  # the collector closes (renames) the file
    second = read_new(layout.root / "landing", first.offsets)
    assert second.events["event_id"].tolist() == ["e2", "e3"]
    assert second.events["event_time"].iloc[0] == T0 + pd.Timedelta(minutes=1)


def test_cart_abandonment_sends_once_after_the_wait_and_never_to_a_buyer(shop) -> None:
    layout, flows_dir, writer = shop
    flows = load_flows(flows_dir)
    leaver, buyer = users_in("treatment", 2)
    post(writer, [event(1, leaver, "cart", "p1", 0), event(2, leaver, "cart", "p3", 1),
                  event(3, buyer, "cart", "p1", 0), event(4, buyer, "purchase", "p1", 5, order="o1")])
    landing = layout.root / "landing"
    early = run_tick(layout, landing, flows, now=T0 + pd.Timedelta(minutes=6))
    assert early.opened == {"cart_reminder": 2} and early.due == 0 and early.waiting == {"cart_reminder": 1}
    # the second cart event restarted the wait: not due 10 minutes after the first one
    assert run_tick(layout, landing, flows, now=T0 + pd.Timedelta(minutes=10, seconds=30)).due == 0
    due = run_tick(layout, landing, flows, now=T0 + pd.Timedelta(minutes=11, seconds=30))
    assert due.treatment == 1 and due.control == 0
    send = due.sends.iloc[0]
    assert send["user_id"] == leaver and send["channel"] == "email"
    assert list(send["product_ids"])[:2] == ["p1", "p3"] and send["subject"] == "Still thinking about Red mug?"
    again = run_tick(layout, landing, flows, now=T0 + pd.Timedelta(hours=1))
    assert again.due == 0 and len(Outbox(layout.root).read()) == 1
    entries = load_state(state_dir(layout.root)).entries_frame().set_index("user_id")
    assert entries.loc[buyer, "status"] == "exited" and entries.loc[leaver, "status"] == "sent"


def test_consent_suppression_cap_and_control_group_hold(shop) -> None:
    layout, flows_dir, writer = shop
    flows = load_flows(flows_dir)
    treated, suppressed, capped = users_in("treatment", 3)
    control = users_in("control", 1)[0]
    stranger = "new-visitor"  # not a customer: no consent known
    customers = pd.DataFrame({"user_id": [treated, suppressed, capped, control], "email_opt_in": True,
                              "sms_opt_in": False, "push_opt_in": False})
    write_frame(customers, layout.table("customers"))
    (layout.root / "suppression").mkdir()
    (layout.root / "suppression" / "unsubscribed.txt").write_text(f"{suppressed}\n")
    lists = pd.DataFrame({"user_id": [capped], "send_time": [T0 - pd.Timedelta(days=2)], "campaign": ["win_back"]})
    write_frame(lists, layout.table("campaign_lists"))  # a batch campaign touched this customer 2 days ago
    post(writer, [event(i, u, "cart", "p1", 0) for i, u in enumerate([treated, suppressed, capped, control, stranger])])
    report = run_tick(layout, layout.root / "landing", flows, now=T0 + pd.Timedelta(minutes=20))
    assert report.removed["cart_reminder"] == {"stale": 0, "suppressed": 1, "no_consent": 1, "no_product": 0,
                                               "frequency_cap": 1}
    sends = report.sends.set_index("user_id")
    assert sends.loc[treated, "group"] == "treatment" and sends.loc[treated, "cost"] > 0
    assert sends.loc[control, "group"] == "control" and sends.loc[control, "cost"] == 0
    assert set(sends.index) == {treated, control}


def test_outbox_exports_are_spreadsheet_safe(shop) -> None:
    layout, flows_dir, writer = shop
    user = users_in("treatment", 1)[0]
    post(writer, [event(1, user, "cart", "p2", 0)])
    run_tick(layout, layout.root / "landing", load_flows(flows_dir), now=T0 + pd.Timedelta(minutes=15))
    csv_file = layout.root / "flows/outbox/exports/cart_reminder/2026-12-03/cart_reminder_2026-12-03.csv"
    text = csv_file.read_text()
    assert "\"'=HYPERLINK(1)\"" in text and ",\"=HYPERLINK" not in text
    assert pd.read_parquet(csv_file.with_suffix(".parquet"))["product_1_title"].iloc[0] == "=HYPERLINK(1)"


def test_exports_hold_only_the_people_to_message_and_the_control_group_is_apart(shop) -> None:
    layout, flows_dir, writer = shop
    treated, control = users_in("treatment", 2), users_in("control", 2)
    post(writer, [event(i, u, "cart", "p1", 0) for i, u in enumerate(treated + control)])
    run_tick(layout, layout.root / "landing", load_flows(flows_dir), now=T0 + pd.Timedelta(minutes=15))
    outbox = Outbox(layout.root)
    day = outbox.exports / "cart_reminder" / "2026-12-03"
    held = outbox.control / "cart_reminder" / "2026-12-03"
    assert sorted(p.name for p in outbox.exports.rglob("*") if p.is_file()) == [
        "cart_reminder_2026-12-03.csv", "cart_reminder_2026-12-03.parquet"]
    assert sorted(p.name for p in outbox.control.rglob("*") if p.is_file()) == [
        "cart_reminder_2026-12-03_control.csv", "cart_reminder_2026-12-03_control.parquet"]
    for frame in (pd.read_csv(day / "cart_reminder_2026-12-03.csv"), pd.read_parquet(day / "cart_reminder_2026-12-03.parquet")):
        assert sorted(frame["user_id"]) == sorted(treated) and set(frame["group"]) == {"treatment"}
    for frame in (pd.read_csv(held / "cart_reminder_2026-12-03_control.csv"),
                  pd.read_parquet(held / "cart_reminder_2026-12-03_control.parquet")):
        assert sorted(frame["user_id"]) == sorted(control) and set(frame["group"]) == {"control"}
    record = outbox.read()  # flow_results measures uplift from the record, both groups
    assert sorted(record["user_id"]) == sorted(treated + control)


def test_exports_written_before_the_split_are_rebuilt_without_control_rows(shop) -> None:
    layout, flows_dir, writer = shop
    users = users_in("treatment", 1) + users_in("control", 1)
    post(writer, [event(i, u, "cart", "p1", 0) for i, u in enumerate(users)])
    run_tick(layout, layout.root / "landing", load_flows(flows_dir), now=T0 + pd.Timedelta(minutes=15))
    outbox = Outbox(layout.root)
    sends = outbox.read()
    legacy = outbox.exports / "cart_reminder" / "2026-12-03" / "cart_reminder_2026-12-03.csv"
    legacy.write_text(legacy.read_text() + f'"x","cart_reminder","t","{users[1]}","control"\n')  # as before the split
    remove_tree(outbox.control)
    later = sends.assign(send_id="later-" + sends["send_id"], send_time=sends["send_time"] + pd.Timedelta(days=1))
    written = outbox.export(pd.concat([sends, later], ignore_index=True), days={"2026-12-04"})
    assert len(written) == 8  # both days, both groups, CSV and Parquet: the old day was rebuilt too
    assert pd.read_csv(legacy)["user_id"].tolist() == users[:1]
    assert not any(users[1] in p.read_text(errors="ignore") for p in outbox.exports.rglob("*.csv"))


def test_the_readme_outbox_example_takes_a_string(shop) -> None:
    layout, flows_dir, writer = shop
    post(writer, [event(1, users_in("treatment", 1)[0], "cart", "p1", 0)])
    run_tick(layout, layout.root / "landing", load_flows(flows_dir), now=T0 + pd.Timedelta(minutes=15))
    root = str(layout.root)
    sends = Outbox(root).read()  # as the README writes it
    assert len(sends) == 1 and sends.equals(Outbox(layout.root).read())
    assert Outbox(root).exports == Outbox(layout.root).exports


def test_a_replayed_tick_writes_no_send_twice(shop) -> None:
    layout, flows_dir, writer = shop
    flows = load_flows(flows_dir)
    user = users_in("treatment", 1)[0]
    post(writer, [event(1, user, "cart", "p1", 0)])
    folder = state_dir(layout.root)
    run_tick(layout, layout.root / "landing", flows, now=T0)
    saved = {p.name: p.read_bytes() for p in folder.iterdir()}
    run_tick(layout, layout.root / "landing", flows, now=T0 + pd.Timedelta(minutes=15))
    for name, data in saved.items():  # as if the tick died after the outbox and before the state
        (folder / name).write_bytes(data)
    replay = run_tick(layout, layout.root / "landing", flows, now=T0 + pd.Timedelta(minutes=15))
    assert replay.due == 1 and len(replay.sends) == 0 and len(Outbox(layout.root).read()) == 1


class _FlakyReceiver(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict]] = []
    fail_first = 2

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append((self.headers["Idempotency-Key"], body))
        self.send_response(503 if len(type(self).calls) <= type(self).fail_first else 200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_webhook_retries_with_one_idempotency_key_and_skips_control(shop) -> None:
    layout, flows_dir, writer = shop
    treated, control = users_in("treatment", 1)[0], users_in("control", 1)[0]
    post(writer, [event(1, treated, "cart", "p1", 0), event(2, control, "cart", "p1", 0)])
    server = HTTPServer(("127.0.0.1", 0), _FlakyReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hook = Webhook(f"http://127.0.0.1:{server.server_port}/sends", backoff_seconds=(0.01, 0.01, 0.01))
        report = run_tick(layout, layout.root / "landing", load_flows(flows_dir),
                          now=T0 + pd.Timedelta(minutes=15), webhook=hook)
        assert report.deliveries["delivered"] == 1
        keys = {key for key, _ in _FlakyReceiver.calls}
        assert len(_FlakyReceiver.calls) == 3 and len(keys) == 1  # two 503s, then 200, one key
        assert _FlakyReceiver.calls[-1][1]["user_id"] == treated
        assert deliver(Outbox(layout.root), Outbox(layout.root).read(), hook)["delivered"] == 0  # not again
    finally:
        server.shutdown()
        server.server_close()


def _flow(tmp_path: Path, name: str, text: str):
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.yaml").write_text(f"name: {name}\nchannels: [email]\nfrequency_cap: {{messages: 9, days: 1}}\n"
                                         f"control_share: 0.1\n{text}")
    return load_flows(folder)


def _apply(flows, rows: list[dict], known: set[str] = frozenset(), state=None):
    from ecomarket_assets.flows import engine
    from ecomarket_assets.flows.state import LiveState

    state = state or LiveState()
    opened = engine.apply_events(state, pd.DataFrame(rows), flows, known)
    return state, opened


def test_browse_abandonment_needs_views_without_a_cart(tmp_path: Path) -> None:
    flows = _flow(tmp_path, "browse", "trigger: {type: browse_abandoned, min_views: 3}\nwait: 1h\n")
    state, opened = _apply(flows, [event(i, "c1", "view", f"p{i}", i) for i in range(1, 4)]
                           + [event(i, "c2", "view", "p1", i) for i in range(4, 6)])
    assert opened == {"browse": 1}
    [entry] = state.waiting()
    assert entry.user_id == "c1" and entry.context_products == ["p3", "p2", "p1"]
    assert entry.due_at == T0 + pd.Timedelta(minutes=3, hours=1)  # an hour after the last view
    _apply(flows, [event(9, "c1", "cart", "p2", 30)], state=state)  # a cart during the wait ends it
    assert not state.waiting() and entry.reason == "cart during the wait"


def test_first_signup_post_purchase_and_rule_triggers(tmp_path: Path) -> None:
    signup = _flow(tmp_path, "welcome", "trigger: {type: first_signup}\nwait: 0s\n")
    state, opened = _apply(signup, [event(1, "old", "view", "p1", 0), event(2, "new", "view", "p1", 1),
                                    event(3, "new", "view", "p2", 2)], known={"old"})
    assert opened == {"welcome": 1} and state.waiting()[0].user_id == "new"
    follow_up = _flow(tmp_path, "after_order", "trigger: {type: post_purchase}\nwait: 3d\nreentry: 1s\n")
    state, opened = _apply(follow_up, [event(1, "c1", "purchase", "p1", 0, order="o1"),
                                       event(2, "c1", "purchase", "p2", 0.5, order="o1")])
    [entry] = state.waiting()
    assert opened == {"after_order": 1} and entry.context_products == ["p1", "p2"]
    assert entry.due_at == T0 + pd.Timedelta(days=3)
    from ecomarket_assets.flows import engine

    big_cart = _flow(tmp_path, "big_cart", "trigger: {type: rule, rule: 'cart_value >= 30 and orders >= 2'}\nwait: 5m\n")
    state, _ = _apply(big_cart, [event(i, u, "cart", f"p{i}", i) for i, u in enumerate(["a", "a", "a", "b", "b", "b"])])
    profiles = pd.DataFrame({"user_id": ["a", "b"], "orders": [3, 1]})
    assert engine.apply_rules(state, big_cart, {"a", "b"}, profiles, T0) == {"big_cart": 1}
    assert [e.user_id for e in state.waiting()] == ["a"]


def test_back_in_stock_after_a_gap_in_sales(tmp_path: Path) -> None:
    from ecomarket_assets.flows import engine
    from ecomarket_assets.flows.state import LiveState

    flows = _flow(tmp_path, "restock", "trigger: {type: back_in_stock, out_days: 14}\nwait: 0s\n")
    state = LiveState()
    engine.seed_last_sold(state, pd.DataFrame({"product_id": ["p1", "p2"],
                                               "last_sold_at": [T0 - pd.Timedelta(days=20), T0 - pd.Timedelta(days=2)]}))
    _apply(flows, [event(1, "fan", "view", "p1", 0), event(2, "fan", "view", "p2", 1)], state=state)
    _, opened = _apply(flows, [event(3, "buyer", "purchase", "p2", 5, order="o1"),  # p2 never ran out
                               event(4, "buyer", "purchase", "p1", 6, order="o1")], state=state)
    assert opened == {"restock": 1}
    [entry] = state.waiting()
    assert (entry.user_id, entry.context_products) == ("fan", ["p1"])


def test_a_send_due_at_night_waits_for_the_window(shop, tmp_path: Path) -> None:
    layout, flows_dir, writer = shop
    (flows_dir / "cart_reminder.yaml").write_text(CART_FLOW + "send_window: {start_hour: 8, end_hour: 20}\n")
    user = users_in("treatment", 1)[0]
    night = T0.normalize() + pd.Timedelta(hours=22)
    post(writer, [dict(event(1, user, "cart", "p1", 0), event_time=night)])
    flows = load_flows(flows_dir)
    late = run_tick(layout, layout.root / "landing", flows, now=night + pd.Timedelta(minutes=15))
    assert late.postponed == 1 and late.treatment == 0
    morning = run_tick(layout, layout.root / "landing", flows, now=night + pd.Timedelta(hours=10, minutes=1))
    assert morning.treatment == 1
    assert morning.sends["due_at"].iloc[0] == night.normalize() + pd.Timedelta(days=1, hours=8)


def test_the_shipped_flows_load() -> None:
    from ecomarket_assets.storage import REPO_ROOT

    flows = load_flows(REPO_ROOT / "flows")
    assert [f.name for f in flows] == ["cart_reminder", "browse_reminder", "post_purchase"]
    assert flows[0].wait_time == pd.Timedelta(hours=1) and flows[0].exits == ("purchase",)


def test_a_purchase_after_the_due_time_but_before_the_tick_still_exits(shop) -> None:
    layout, flows_dir, writer = shop
    user = users_in("treatment", 1)[0]
    post(writer, [event(1, user, "cart", "p1", 0), event(2, user, "purchase", "p1", 10.5, order="o1")])
    report = run_tick(layout, layout.root / "landing", load_flows(flows_dir), now=T0 + pd.Timedelta(minutes=11))
    assert report.due == 0 and report.treatment == 0  # due at 10 min, bought at 10.5, the tick at 11
    entries = load_state(state_dir(layout.root)).entries_frame()
    assert entries["status"].tolist() == ["exited"]
