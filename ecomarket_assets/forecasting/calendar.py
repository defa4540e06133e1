"""The shop's sales calendar: site-wide sale events known before they happen.

Demand doubles on Black Friday; no lag can see that coming, but the shop has
announced the sale weeks ahead. Events are a known-future feature of the
target day. Sources, first that applies: a CSV the shop maintains
(name,start,days,discount; the source resource's `sales_calendar` setting), the
plan a source announces itself (the built-in simulated shop has one), and the
Black-Friday-to-Cyber-Monday weekend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# A source's own sale plan: the years a calendar must cover -> (name, first day, days, discount) per event.
SalePlan = Callable[[list[int]], list[tuple[str, pd.Timestamp, int, float]]]


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


def planned_calendar(plan: SalePlan, start: pd.Timestamp, end: pd.Timestamp) -> SalesCalendar:
    return SalesCalendar(tuple(SaleEvent(name, pd.Timestamp(first), days, discount)
                               for name, first, days, discount in plan(_years(start, end))))


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


def calendar_for(start: pd.Timestamp, end: pd.Timestamp, configured: Path | None = None,
                 plan: SalePlan | None = None) -> SalesCalendar:
    """The shop's calendar: a configured CSV wins; else the source's own plan; else the Black Friday rule."""
    if configured is not None:
        return read_calendar_csv(configured)
    if plan is not None:
        return planned_calendar(plan, start, end)
    return black_friday_calendar(start, end)


def calendar_from_frame(frame: pd.DataFrame) -> SalesCalendar:
    return SalesCalendar(tuple(SaleEvent(str(r.name), pd.Timestamp(r.start), int(r.days), float(r.discount))
                               for r in frame.itertuples()))
