"""One evaluation of the flows: read new events, update live state, decide due sends, write the outbox.

The flow sensor calls `run_tick` every 30 s; tests and the benchmark call it directly with their own clock.
Order matters for safety: the outbox is written before the state (a crash in between replays the tick and the
send ids it already stored are skipped), and the webhook is called last, from the outbox, so a delivery is
only ever attempted for a send that is on record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ecomarket_assets.campaigns.store import CampaignStore
from ecomarket_assets.flows import engine
from ecomarket_assets.flows.decide import Decisions, SendRules, decide
from ecomarket_assets.flows.feed import read_new
from ecomarket_assets.flows.offers import FlowOffers, last_sales
from ecomarket_assets.flows.outbox import Outbox, Webhook, deliver
from ecomarket_assets.flows.specs import FlowSpec
from ecomarket_assets.flows.state import keep_unchanged, prune, save_state, state_dir, take_state
from ecomarket_assets.storage import DataLayout, read_frame, read_schema


@dataclass
class TickReport:
    now: pd.Timestamp
    events: int = 0
    files_read: int = 0
    opened: dict[str, int] = field(default_factory=dict)
    due: int = 0
    sends: pd.DataFrame | None = None  # stored by this tick
    removed: dict[str, dict[str, int]] = field(default_factory=dict)
    postponed: int = 0
    waiting: dict[str, int] = field(default_factory=dict)
    live_users: int = 0
    deliveries: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def treatment(self) -> int:
        return 0 if self.sends is None else int((self.sends["group"] == "treatment").sum())

    @property
    def control(self) -> int:
        return 0 if self.sends is None else int((self.sends["group"] == "control").sum())

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for per_flow in self.removed.values():
            for reason, n in per_flow.items():
                reasons[reason] = reasons.get(reason, 0) + n
        why = ", ".join(f"{r} {n}" for r, n in reasons.items() if n)
        return (f"{self.events} events from {self.files_read} files; entries opened {sum(self.opened.values())}; "
                f"due {self.due}: {self.treatment} sent, {self.control} held as control, "
                f"{sum(reasons.values())} removed{f' ({why})' if why else ''}, {self.postponed} postponed; "
                f"waiting {sum(self.waiting.values())}; {self.seconds:.2f} s")


def run_tick(layout: DataLayout, landing_dir: Path, flows: list[FlowSpec], now: pd.Timestamp | None = None,
             webhook: Webhook | None = None) -> TickReport:
    started = time.perf_counter()
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    enabled = [f for f in flows if f.enabled]
    folder = state_dir(layout.root)
    state = take_state(folder)
    seeded = state.sales_seeded
    if not state.sales_seeded and any(f.trigger.type == "back_in_stock" for f in enabled):
        days = max(f.trigger.out_days for f in enabled if f.trigger.type == "back_in_stock") + 1
        engine.seed_last_sold(state, last_sales(layout, days))
    feed = read_new(landing_dir, state.offsets)
    report = TickReport(now=now, events=len(feed.events), files_read=feed.files_read)
    customers = _table(layout, "customers")
    rules = any(f.trigger.type == "rule" for f in enabled)  # rules may read any profile column
    profiles = _table(layout, "user_profiles", None if rules else ["user_id", "top_category"])
    known = set(customers.get("user_id", [])) | set(profiles.get("user_id", []))
    report.opened = engine.apply_events(state, feed.events, enabled, known)
    touched = set(feed.events["user_id"])
    for name, count in engine.apply_rules(state, enabled, touched, profiles, now).items():
        report.opened[name] = report.opened.get(name, 0) + count
    outbox = Outbox(layout.root)
    stored = outbox.read()
    due = engine.due_entries(state, now)
    report.due = len(due)
    decisions = _decide(due, flows, layout, customers, profiles, stored, now) if due else None
    if decisions is not None:
        report.sends = outbox.append_sends(decisions.sends, set(stored["send_id"]))
        report.removed, report.postponed = decisions.removed, decisions.postponed
        days = set(pd.to_datetime(report.sends["send_time"], utc=True).dt.date.astype(str))
        every = [f for f in (stored, report.sends) if len(f)]
        outbox.export(pd.concat(every, ignore_index=True) if every else stored, days)
    quiet = not len(feed.events) and not due and feed.offsets == state.offsets and seeded == state.sales_seeded
    if not quiet:  # an idle tick (every 30 s all night) rewrites nothing
        prune(state, now, max((f.reentry_time for f in flows), default=pd.Timedelta(days=7)) + pd.Timedelta(days=1))
        state.offsets = feed.offsets
        state.ticks += 1
        state.last_tick_at = now.isoformat()
        save_state(state, folder)
        outbox.compact()
    else:
        keep_unchanged(folder, state)
    report.waiting, report.live_users = engine.waiting_counts(state), len(state.users)
    if webhook is not None:
        report.deliveries = deliver(outbox, outbox.read(), webhook)
    report.seconds = time.perf_counter() - started
    return report


def _table(layout: DataLayout, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    path = layout.table(name)
    if not path.exists():
        return pd.DataFrame(columns=["user_id"])
    if columns is not None:
        columns = [c for c in columns if c in read_schema(path).names]
    return read_frame(path, columns)


def _decide(due, flows, layout: DataLayout, customers: pd.DataFrame, profiles: pd.DataFrame, stored: pd.DataFrame,
            now: pd.Timestamp) -> Decisions:
    store = CampaignStore(layout)
    suppressed, _ = store.suppressed_users()
    touches: dict[str, list[pd.Timestamp]] = {}
    users = {e.user_id for e in due}
    frames = [stored[["user_id", "send_time"]]]
    if store.lists_path.exists():
        frames.append(read_frame(store.lists_path, columns=["user_id", "send_time"]))
    for frame in (f[f["user_id"].isin(users)] for f in frames):
        for user, t in zip(frame["user_id"], pd.to_datetime(frame["send_time"], utc=True), strict=True):
            touches.setdefault(user, []).append(t)
    top = dict(zip(profiles["user_id"], profiles["top_category"], strict=True)) if "top_category" in profiles else {}
    consent = customers if "email_opt_in" in customers else pd.DataFrame(columns=["user_id"])
    rules = SendRules(suppressed, consent, touches, {k: v for k, v in top.items() if isinstance(v, str)})
    return decide(due, flows, rules, FlowOffers(layout), now)
