"""Fold new events into the live state and open, move or close flow entries.

Events are applied in time order. Per event: exits first (a purchase during a cart flow's wait closes the
entry unsent), then the user's live state, then triggers. One open entry per (flow, customer): a later trigger
event updates it (cart and browse abandonment restart their wait: abandoned means quiet for `wait`), so a
customer who adds five items gets one reminder. A customer enters a flow again only after its `reentry`
period counted from their last send (or hold, for the control group).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection
from types import SimpleNamespace

import pandas as pd

from ecomarket_assets.campaigns.rules import parse_rule
from ecomarket_assets.flows.specs import LIVE_FIELDS, FlowSpec, duration
from ecomarket_assets.flows.state import (
    RECENT_VIEWS,
    SESSION_GAP,
    WAITING,
    Entry,
    LiveState,
    UserLive,
)

DECIDED = ("sent", "control")  # statuses that count for re-entry


def entry_id(flow: str, user: str, key: str, triggered_at: pd.Timestamp) -> str:
    text = f"{flow}\x1f{user}\x1f{key}\x1f{triggered_at.isoformat()}"
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


class _Index:
    """Open entries by customer and the last decision per (flow, customer): a tick touches each entry once."""

    def __init__(self, state: LiveState) -> None:
        self.open: dict[str, list[Entry]] = {}
        self.decided: dict[tuple[str, str], pd.Timestamp] = {}
        for entry in state.entries.values():
            if entry.status == WAITING:
                self.open.setdefault(entry.user_id, []).append(entry)
            elif entry.status in DECIDED and entry.closed_at is not None:
                key = (entry.flow, entry.user_id)
                self.decided[key] = max(self.decided.get(key, entry.closed_at), entry.closed_at)


def apply_events(state: LiveState, events: pd.DataFrame, flows: list[FlowSpec], known: Collection[str]) -> dict[str, int]:
    """Update `state` with `events`; returns counts of entries opened per flow."""
    opened = dict.fromkeys((f.name for f in flows), 0)
    index = _Index(state)
    by_name = {f.name: f for f in flows}
    ordered = events.sort_values("event_time", kind="stable")
    for event in ordered.itertuples(index=False):
        if not isinstance(event.user_id, str) or not event.user_id:
            continue  # a guest: nobody to message
        user = state.users.get(event.user_id)
        is_new = user is None and event.user_id not in known
        _close_on_exit(index, by_name, event)
        user = _update_user(state, user, event)
        if event.event_type == "purchase" and isinstance(event.product_id, str):
            _restock(state, index, flows, event, opened)
        for flow in flows:
            key = _trigger_key(flow, user, event, is_new)
            if key is not None:
                opened[flow.name] += _open_or_update(state, index, flow, event, key, _context(flow, user, event))
    return opened


def _close_on_exit(index: _Index, by_name: dict[str, FlowSpec], event) -> None:
    entries = index.open.get(event.user_id, [])
    for entry in list(entries):
        flow = by_name.get(entry.flow)
        # after the trigger, before the send: a purchase between the due time and the tick that would send also
        # counts (the entry is still waiting), so nobody is reminded of a cart they have just bought
        if flow is not None and event.event_type in flow.exits and entry.triggered_at <= event.event_time:
            entry.status, entry.reason, entry.closed_at = "exited", f"{event.event_type} during the wait", event.event_time
            entries.remove(entry)


def _update_user(state: LiveState, user: UserLive | None, event) -> UserLive:
    t = event.event_time
    if user is None:
        user = state.users[event.user_id] = UserLive(event.user_id, t, t)
    session = event.session_id if isinstance(event.session_id, str) else ""
    if session != user.session_id or (user.session_started_at is not None and t - user.last_event_at > SESSION_GAP):
        user.session_id, user.session_started_at = session, t
        user.session_views = user.session_carts = user.session_purchases = 0
    user.last_event_at = max(user.last_event_at, t)
    user.live_events += 1
    product = event.product_id if isinstance(event.product_id, str) else None
    if event.event_type == "view" and product:
        user.session_views += 1
        user.recent_views = [product, *[p for p in user.recent_views if p != product]][:RECENT_VIEWS]
    elif event.event_type == "cart" and product:
        user.session_carts += 1
        if product not in user.cart_items:
            user.cart_items = [*user.cart_items, product]
        user.cart_value += _value(event)
    elif event.event_type == "purchase":
        user.session_purchases += 1
        user.live_purchases += 1
        user.cart_items, user.cart_value = [], 0.0  # the cart was checked out
    return user


def _value(event) -> float:
    quantity, price = event.quantity, event.unit_price
    if pd.isna(quantity) or pd.isna(price):
        return 0.0
    return float(quantity) * float(price)


def _trigger_key(flow: FlowSpec, user: UserLive, event, is_new: bool) -> str | None:
    """The entry key when this event triggers the flow, else None (rule and back_in_stock are handled apart)."""
    kind, etype = flow.trigger.type, event.event_type
    if kind == "cart_abandoned" and etype == "cart":
        return f"session:{user.session_id}"
    if (kind == "browse_abandoned" and etype == "view" and user.session_views >= flow.trigger.min_views
            and user.session_carts == 0 and user.session_purchases == 0):
        return f"session:{user.session_id}"
    if kind == "first_signup" and is_new:
        return "signup"
    if kind == "post_purchase" and etype == "purchase":
        return f"order:{event.order_id}"
    return None


def _context(flow: FlowSpec, user: UserLive, event) -> list[str]:
    kind = flow.trigger.type
    if kind == "cart_abandoned":
        return list(user.cart_items)
    if kind == "browse_abandoned":
        return list(user.recent_views[: flow.products.count])
    if kind == "post_purchase" and isinstance(event.product_id, str):
        return [event.product_id]
    return []


def _open_or_update(state: LiveState, index: _Index, flow: FlowSpec, event, key: str, products: list[str]) -> int:
    """1 when a new entry opened; an open entry of the flow and customer is moved instead."""
    t = event.event_time
    open_entry = next((e for e in index.open.get(event.user_id, []) if e.flow == flow.name), None)
    if open_entry is not None:
        if flow.trigger.type in ("cart_abandoned", "browse_abandoned"):
            open_entry.last_trigger_at, open_entry.due_at = t, t + flow.wait_time
            open_entry.context_products = products or open_entry.context_products
        else:
            open_entry.context_products = list(dict.fromkeys([*open_entry.context_products, *products]))
        return 0
    last = index.decided.get((flow.name, event.user_id))
    if last is not None and last > t - flow.reentry_time:
        return 0
    new = Entry(entry_id(flow.name, event.user_id, key, t), flow.name, event.user_id, key, str(event.event_id),
                event.session_id if isinstance(event.session_id, str) else "", t, t, t + flow.wait_time, products)
    if new.entry_id in state.entries:  # the same trigger seen again (a replayed tick)
        return 0
    state.entries[new.entry_id] = new
    index.open.setdefault(new.user_id, []).append(new)
    return 1


def _restock(state: LiveState, index: _Index, flows: list[FlowSpec], event, opened: dict[str, int]) -> None:
    """A sale of a product unsold for `out_days`: customers who viewed or carted it lately enter back_in_stock.
    Without sales history (`sales_seeded` false) a product never seen sold is not taken as out of stock."""
    product, t = event.product_id, event.event_time
    last = state.last_sold.get(product)
    state.last_sold[product] = t if last is None else max(last, t)
    for flow in (f for f in flows if f.trigger.type == "back_in_stock"):
        out_of_stock = (t - last >= pd.Timedelta(days=flow.trigger.out_days)) if last is not None else state.sales_seeded
        if not out_of_stock:
            continue
        since = t - duration(flow.trigger.lookback)
        for user in list(state.users.values()):
            interested = product in user.recent_views or product in user.cart_items
            if user.user_id != event.user_id and interested and user.last_event_at >= since:
                moved = event._replace(user_id=user.user_id, session_id=user.session_id)
                opened[flow.name] += _open_or_update(state, index, flow, moved, f"product:{product}", [product])


def apply_rules(state: LiveState, flows: list[FlowSpec], touched: Collection[str], profiles: pd.DataFrame,
                now: pd.Timestamp) -> dict[str, int]:
    """Rule flows: customers with new events this tick whose rule (live fields + profile columns) is true."""
    opened: dict[str, int] = {}
    index = _Index(state)
    rule_flows = [f for f in flows if f.trigger.type == "rule"]
    if not rule_flows or not touched:
        return opened
    frame = live_fields(state, list(touched), profiles, now)
    for flow in rule_flows:
        hit = frame.loc[parse_rule(flow.trigger.rule).evaluate(frame).to_numpy(), "user_id"]
        opened[flow.name] = 0
        for user in hit:
            live = state.users[user]
            event = SimpleNamespace(user_id=user, event_time=live.last_event_at, session_id=live.session_id,
                                    event_id=f"rule@{live.last_event_at.isoformat()}")
            opened[flow.name] += _open_or_update(state, index, flow, event, f"rule:{live.session_id}", [])
    return opened


def live_fields(state: LiveState, users: list[str], profiles: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """LIVE_FIELDS (and the profile columns) of the given customers: what rule triggers read."""
    rows = []
    for user in users:
        live = state.users[user]
        rows.append({"user_id": user, "session_views": live.session_views, "session_carts": live.session_carts,
                     "cart_items": len(live.cart_items), "cart_value": live.cart_value,
                     "live_purchases": live.live_purchases, "live_events": live.live_events,
                     "minutes_since_last_event": (now - live.last_event_at) / pd.Timedelta(minutes=1)})
    frame = pd.DataFrame(rows, columns=["user_id", *[c for c in LIVE_FIELDS if c != "known_customer"]])
    frame["known_customer"] = frame["user_id"].isin(profiles["user_id"]) if "user_id" in profiles else False
    if len(profiles):
        frame = frame.merge(profiles.drop(columns=[c for c in LIVE_FIELDS if c in profiles]), on="user_id", how="left")
    return frame


def seed_last_sold(state: LiveState, sales: pd.DataFrame) -> None:
    """Last sale per product from stored history (product_id, last_sold_at); marks the state as seeded."""
    for product, t in zip(sales["product_id"], pd.to_datetime(sales["last_sold_at"], utc=True), strict=True):
        current = state.last_sold.get(product)
        state.last_sold[product] = t if current is None else max(current, t)
    state.sales_seeded = True


def due_entries(state: LiveState, now: pd.Timestamp) -> list[Entry]:
    return sorted((e for e in state.waiting() if e.due_at <= now), key=lambda e: (e.due_at, e.entry_id))


def waiting_counts(state: LiveState) -> dict[str, int]:
    return dict(sorted(Counter(e.flow for e in state.waiting()).items()))

