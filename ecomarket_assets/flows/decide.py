"""Due entries to sends, under the same rules as the batch campaigns.

For each entry whose wait is over, in flow priority order, the first rule that stops it is its reason:
`stale` (due long before this tick: a backlog replayed, not a live moment), `suppressed`, `no_consent` (no
channel of the flow the customer opted into; unknown customers have no consent), `no_product`,
`frequency_cap` (touches in the cap's window, counted across batch campaigns, earlier flow sends and this
tick's sends; control-group holds count as touches, as in the planner; campaign sends planned for the next
24 hours count too, so a flow send never pushes an already planned campaign send over the cap). Otherwise the customer's group is the
stable hash of (flow, customer), exactly as for a campaign, and the send is written to the outbox: a treatment
send is delivered, a control one is held and only measured. A send due outside the flow's send window waits
for the window to open.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from ecomarket_assets.campaigns.consent import Consent
from ecomarket_assets.campaigns.planner import assign_group
from ecomarket_assets.flows.offers import FlowOffers
from ecomarket_assets.flows.specs import FlowSpec
from ecomarket_assets.flows.state import Entry

STALE_AFTER = pd.Timedelta(hours=6)
PLANNED_AHEAD = pd.Timedelta(days=1)  # campaign sends already planned this soon count against a flow's cap
REMOVAL_REASONS = ("stale", "suppressed", "no_consent", "no_product", "frequency_cap")
OUTBOX_COLUMNS = ["send_id", "flow", "objective", "trigger", "user_id", "group", "channel", "cost", "subject",
                  "product_ids", "product_titles", "product_reasons", "triggered_at", "due_at", "send_time",
                  "trigger_event_id", "session_id", "measurement_days", "model_version"]


@dataclass
class SendRules:
    suppressed: set[str]  # the suppression folder, read at this tick
    consent: pd.DataFrame  # the newest customers table, read at this tick: user_id + the *_opt_in columns
    touches: dict[str, list[pd.Timestamp]]  # user -> times of campaign and flow touches
    top_category: dict[str, str] = field(default_factory=dict)

    def consent_of(self) -> dict[str, dict[str, bool]]:
        """channel -> user -> consented, read as campaigns read it (campaigns/consent.py: unknown is no)."""
        return Consent.of(self.consent, self.suppressed).by_channel()


@dataclass
class Decisions:
    sends: pd.DataFrame  # OUTBOX_COLUMNS
    removed: dict[str, dict[str, int]]  # flow -> reason -> entries
    postponed: int


def send_id(entry: Entry) -> str:
    return hashlib.blake2b(f"send\x1f{entry.entry_id}".encode(), digest_size=10).hexdigest()


def decide(due: list[Entry], flows: list[FlowSpec], rules: SendRules, offers: FlowOffers, now: pd.Timestamp) -> Decisions:
    """Sends for the due entries; updates each entry's status, reason and closed_at in place."""
    by_name = {f.name: f for f in flows}
    consent = rules.consent_of()
    touches = defaultdict(list, {u: list(t) for u, t in rules.touches.items()})
    removed: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(REMOVAL_REASONS, 0))
    rows, postponed = [], 0
    order = sorted(due, key=lambda e: (by_name[e.flow].priority if e.flow in by_name else 1 << 30, e.due_at, e.entry_id))
    for entry in order:
        flow = by_name.get(entry.flow)
        if flow is None or not flow.enabled:
            entry.status, entry.reason, entry.closed_at = "removed", "flow disabled or deleted", now
            continue
        opens = _window_opens(flow, now)
        if opens is not None:
            entry.due_at, postponed = opens, postponed + 1
            continue
        reason, channel, products = _first_stop(entry, flow, rules, consent, touches, offers, now)
        if reason:
            entry.status, entry.reason, entry.closed_at = "removed", reason, now
            removed[flow.name][reason] += 1
            continue
        group = str(assign_group(flow.name, pd.Series([entry.user_id]), flow.control_share)[0])
        touches[entry.user_id].append(now)
        entry.status = "sent" if group == "treatment" else "control"
        entry.closed_at = now
        rows.append(_send_row(entry, flow, group, channel, products, rules, offers, now))
    sends = pd.DataFrame(rows, columns=OUTBOX_COLUMNS)
    return Decisions(sends, {k: dict(v) for k, v in removed.items()}, postponed)


def _window_opens(flow: FlowSpec, now: pd.Timestamp) -> pd.Timestamp | None:
    """None when `now` is inside the flow's send window, else when the window next opens."""
    window = flow.send_window
    if window.start_hour <= now.hour < window.end_hour:
        return None
    opens = now.normalize() + pd.Timedelta(hours=window.start_hour)
    return opens if opens > now else opens + pd.Timedelta(days=1)


def _first_stop(entry: Entry, flow: FlowSpec, rules: SendRules, consent: dict[str, dict[str, bool]],
                touches: dict[str, list[pd.Timestamp]], offers: FlowOffers, now: pd.Timestamp):
    if now - entry.due_at > STALE_AFTER:
        return "stale", None, None
    if entry.user_id in rules.suppressed:
        return "suppressed", None, None
    channel = next((c for c in flow.channels if consent.get(c, {}).get(entry.user_id, False)), None)
    if channel is None:
        return "no_consent", None, None
    products = offers.products(entry.user_id, flow, entry.context_products)
    if not products:
        return "no_product", None, None
    since, planned = now - pd.Timedelta(days=flow.frequency_cap.days), now + PLANNED_AHEAD
    if sum(since < t <= planned for t in touches.get(entry.user_id, ())) >= flow.frequency_cap.messages:
        return "frequency_cap", None, None
    return "", channel, products


def _send_row(entry: Entry, flow: FlowSpec, group: str, channel: str, products: list[dict], rules: SendRules,
              offers: FlowOffers, now: pd.Timestamp) -> dict:
    titles = [p["title"] for p in products]
    return {
        "send_id": send_id(entry), "flow": flow.name, "objective": flow.objective, "trigger": flow.trigger.type,
        "user_id": entry.user_id, "group": group, "channel": channel,
        "cost": float(flow.cost_per_message[channel]) if group == "treatment" else 0.0,
        "subject": flow.render(titles[0], rules.top_category.get(entry.user_id) or "favourites"),
        "product_ids": [p["product_id"] for p in products], "product_titles": titles,
        "product_reasons": [p["reason"] for p in products], "triggered_at": entry.triggered_at,
        "due_at": entry.due_at, "send_time": now, "trigger_event_id": entry.trigger_event_id,
        "session_id": entry.session_id, "measurement_days": flow.measurement_days,
        "model_version": offers.model_version,
    }
