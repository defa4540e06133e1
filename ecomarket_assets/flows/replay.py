"""Replay a stream of events through the flows on a simulated clock: hours of a shop in seconds.

Events are written to the landing folder as the collector writes them (MicroBatchWriter), a slice of
`tick_every` at a time, and the flow tick runs at the end of each slice with `now` set to it. Used to measure
flows on the simulator's live stream with a known true response (benchmarks/realtime.py, tests), and by a
shop to try a new flow on yesterday's events (in a throw-away data directory).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ecomarket_assets.collector.writer import MicroBatchWriter
from ecomarket_assets.flows.outbox import Outbox
from ecomarket_assets.flows.specs import FlowSpec
from ecomarket_assets.flows.tick import run_tick
from ecomarket_assets.storage import DataLayout


@dataclass
class Replay:
    sends: pd.DataFrame
    ticks: int
    tick_seconds: list[float] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)


def replay(events: pd.DataFrame, layout: DataLayout, flows: list[FlowSpec], tick_every: pd.Timedelta,
           until: pd.Timestamp | None = None) -> Replay:
    """Feed `events` (canonical, any order) slice by slice and tick after each; then tick on until `until`."""
    events = events.sort_values("event_time", kind="stable").reset_index(drop=True)
    start = events["event_time"].min().floor(tick_every)
    end = max(events["event_time"].max(), until or start)
    writer = MicroBatchWriter(layout.landing, layout.root, rotate_bytes=1 << 30, rotate_seconds=float("inf"))
    writer.start()
    done = Replay(sends=pd.DataFrame(), ticks=0)
    try:
        now = start
        while now <= end + tick_every:
            now = now + tick_every
            part = events[(events["event_time"] >= now - tick_every) & (events["event_time"] < now)]
            if len(part):
                writer.store("replay", part, [])
            report = run_tick(layout, layout.landing, flows, now=now)
            done.ticks += 1
            done.tick_seconds.append(report.seconds)
            for reasons in report.removed.values():
                for reason, n in reasons.items():
                    done.removed[reason] = done.removed.get(reason, 0) + n
    finally:
        writer.close()
    done.sends = Outbox(layout.root).read()
    return done
