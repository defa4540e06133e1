"""The shop's sales calendar: site-wide sale events known before they happen.

Demand doubles on Black Friday; no lag can see that coming, but the shop has
announced the sale weeks ahead. Events are a known-future feature of the
target day. Sources: the simulator's own plan, a CSV the shop maintains
(`ECOMARKET_SALES_CALENDAR`: name,start,days,discount), and by default for real
shops the Black-Friday-to-Cyber-Monday weekend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.simulator.shop import site_sale_events


@dataclass(frozen=True)
class SaleEvent:
    name: str
    start: pd.Timestamp  # first day (naive UTC date)
    days: int
    discount: float


@dataclass(frozen=True)
class SalesCalendar:
    events: tuple[SaleEvent, ...] = ()

    def on_dates(self, dates: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """(in a sale event, site-wide discount) for each date."""
        day = pd.DatetimeIndex(dates)
        day = (day.tz_localize(None) if day.tz else day).normalize()
        active, discount = np.zeros(len(day)), np.zeros(len(day))
        for event in self.events:
            inside = (day >= event.start) & (day < event.start + pd.Timedelta(days=event.days))
            active[inside] = 1.0
            discount[inside] = np.maximum(discount[inside], event.discount)
        return active, discount

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"name": e.name, "start": e.start.date(), "days": e.days, "discount": e.discount}
                             for e in self.events])


def _years(start: pd.Timestamp, end: pd.Timestamp) -> list[int]:
    return list(range(start.year, end.year + 2))  # +1 year: forecasts reach past the history


def simulator_calendar(start: pd.Timestamp, end: pd.Timestamp) -> SalesCalendar:
    events = [SaleEvent(name, ts.tz_localize(None), days, off)
              for name, ts, days, off, _ in site_sale_events(_years(start, end))]
    return SalesCalendar(tuple(events))


def black_friday_calendar(start: pd.Timestamp, end: pd.Timestamp) -> SalesCalendar:
    events = []
    for year in _years(start, end):
        nov = pd.date_range(f"{year}-11-01", f"{year}-11-30")
        events.append(SaleEvent("black_friday_to_cyber_monday", nov[nov.weekday == 4][3], 4, 0.0))
    return SalesCalendar(tuple(events))


def read_calendar_csv(path: Path) -> SalesCalendar:
    frame = pd.read_csv(path)
    missing = {"name", "start", "days", "discount"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: sales calendar lacks columns {sorted(missing)}")
    return calendar_from_frame(frame)


def calendar_for(source_kind: str, start: pd.Timestamp, end: pd.Timestamp) -> SalesCalendar:
    """The shop's calendar: a configured CSV wins; else the simulator's plan or the Black Friday rule."""
    configured = os.environ.get("ECOMARKET_SALES_CALENDAR", "")
    if configured:
        return read_calendar_csv(Path(configured))
    if source_kind == "simulator":
        return simulator_calendar(start, end)
    return black_friday_calendar(start, end)


def calendar_from_frame(frame: pd.DataFrame) -> SalesCalendar:
    return SalesCalendar(tuple(SaleEvent(str(r.name), pd.Timestamp(r.start), int(r.days), float(r.discount))
                               for r in frame.itertuples()))
