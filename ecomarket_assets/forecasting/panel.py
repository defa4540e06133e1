"""The product x day sales panel that every forecaster reads.

Units sold per product and UTC day as a dense matrix: a product's row starts on
the first day it appears in the events (any event type), and every day after
that is a number, zeros included, so a zero-sales day is a real zero and never
a missing row. Days before a product's first appearance are NaN: the product
did not exist yet, which is different from selling nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecomarket_assets.compute import Engine, group_reduce
from ecomarket_assets.forecasting.calendar import SalesCalendar
from ecomarket_assets.storage import DataLayout, read_frame

EVENT_COLUMNS = ["event_time", "event_type", "product_id", "quantity", "unit_price"]


@dataclass
class SalesPanel:
    product_ids: np.ndarray  # (P,) source product ids
    days: pd.DatetimeIndex  # (T,) consecutive UTC days
    units: np.ndarray  # (P, T) purchased units; NaN before the product's first day
    views: np.ndarray  # (P, T) view events (0 where the source has none)
    price: np.ndarray  # (P, T) observed unit price, carried forward; catalog price before any
    list_price: np.ndarray  # (P,) catalog price (median observed price when the catalog has none)
    category: np.ndarray  # (P,) category name ("unknown" when not in the catalog)
    calendar: SalesCalendar = SalesCalendar()  # site-wide sale events, known ahead

    @property
    def first_day(self) -> np.ndarray:
        """Index of each product's first day (T when it never appears)."""
        observed = ~np.isnan(self.units)
        return np.where(observed.any(axis=1), observed.argmax(axis=1), self.units.shape[1])

    def date_of(self, index: np.ndarray | int) -> pd.DatetimeIndex:
        """Dates of day indexes, also past the panel's end (for forecast days)."""
        return self.days[0] + pd.to_timedelta(np.asarray(index), unit="D")

    def truncated(self, last_day: int) -> SalesPanel:
        """The panel as it was known at the end of day index `last_day` (inclusive)."""
        keep = self.first_day <= last_day
        end = last_day + 1
        return SalesPanel(
            self.product_ids[keep], self.days[:end], self.units[keep, :end], self.views[keep, :end],
            self.price[keep, :end], self.list_price[keep], self.category[keep], self.calendar,
        )

    def long(self) -> pd.DataFrame:
        """One row per product and day from its first day on: the stored training-set table."""
        p_idx, t_idx = np.nonzero(~np.isnan(self.units))
        return pd.DataFrame({
            "product_id": self.product_ids[p_idx],
            "date": self.days[t_idx].date,
            "category": self.category[p_idx],
            "units": self.units[p_idx, t_idx],
            "views": self.views[p_idx, t_idx],
            "price": self.price[p_idx, t_idx],
            "relative_price": self.price[p_idx, t_idx] / self.list_price[p_idx],
        })


def event_days(layout: DataLayout) -> list[str]:
    """The days (YYYY-MM-DD) that have a stored `raw_events` file, oldest first."""
    folder = layout.root / "raw_events"
    return sorted(p.name.removeprefix("date=") for p in folder.glob("date=*") if (p / "part-0.parquet").exists())


def event_day_paths(layout: DataLayout, days: list[str] | None = None) -> list:
    """The stored `raw_events` day files (all, or those of `days`)."""
    available = event_days(layout)
    wanted = available if days is None else [d for d in available if d in set(days)]
    if not wanted:
        raise FileNotFoundError(f"no raw_events partitions under {layout.root / 'raw_events'}: "
                                "materialize raw_events first")
    return [layout.raw_events_day(d) for d in wanted]


def product_day_aggregates(events, engine: Engine | None = None) -> pd.DataFrame:
    """Units bought, views, events and the median positive unit price per (product, UTC day).

    `events` is a pandas or a Dask frame: the same expressions run on either engine. The median is
    taken from a per product-day price histogram (a product has a handful of prices a day), so on Dask
    both parts are sums combined by a tree reduction: no shuffle of events between workers.
    """
    engine = engine or Engine("local")
    price = events["unit_price"]
    frame = events.assign(
        date=events["event_time"].dt.floor("D"),
        purchased=events["quantity"].astype("float64").where(events["event_type"] == "purchase", 0.0),
        viewed=(events["event_type"] == "view").astype("float64"),
        events=1,
    )
    keys = ["product_id", "date"]
    counts = group_reduce(frame, keys, units=("purchased", "sum"), views=("viewed", "sum"), events=("events", "sum"))
    priced = frame.assign(price=price)[(price > 0) & (price < float("inf"))]
    histogram = group_reduce(priced, [*keys, "price"], "events")
    parts = engine.compute_many({"counts": counts, "histogram": histogram})
    median = histogram_median(parts["histogram"]).rename("price")
    return parts["counts"].join(median).reset_index()


def histogram_median(counts: pd.Series) -> pd.Series:
    """Median of the values in the last index level, weighted by `counts`, per group of the other levels.

    Exactly what a median over the raw values gives: the middle value, or the mean of the two middle
    values when the group's total count is even.
    """
    counts = counts[counts > 0].sort_index()
    groups = list(range(counts.index.nlevels - 1))
    value = counts.index.get_level_values(-1).to_numpy(dtype=float)
    upto = counts.groupby(level=groups).cumsum().to_numpy()
    total = counts.groupby(level=groups).transform("sum").to_numpy()
    before = upto - counts.to_numpy()
    group_index = counts.index.droplevel(-1)
    middle = []
    for rank in ((total - 1) // 2, total // 2):
        holds = (before <= rank) & (rank < upto)
        middle.append(pd.Series(value[holds], index=group_index[holds]))
    return (middle[0] + middle[1]) / 2


def build_panel(events: pd.DataFrame, catalog: pd.DataFrame, end: pd.Timestamp | None = None,
                calendar: SalesCalendar | None = None) -> SalesPanel:
    """Aggregate canonical events into the panel; `end` extends it with trailing zero days."""
    return panel_from_aggregates(product_day_aggregates(events), catalog, end, calendar)


def panel_from_aggregates(aggregates: pd.DataFrame, catalog: pd.DataFrame, end: pd.Timestamp | None = None,
                          calendar: SalesCalendar | None = None) -> SalesPanel:
    """The panel from `product_day_aggregates` output; days before a product's first event are NaN units."""
    day = pd.to_datetime(aggregates["date"])
    day = (day.dt.tz_convert("UTC").dt.tz_localize(None) if day.dt.tz is not None else day).dt.normalize()
    start = day.min()
    last = max(day.max(), pd.Timestamp(end)) if end is not None else day.max()
    days = pd.date_range(start, last, freq="D")
    products = np.array(sorted(aggregates["product_id"].unique()), dtype=object)
    p_idx = pd.Index(products).get_indexer(aggregates["product_id"])
    t_idx = (day - start).dt.days.to_numpy()
    shape = (len(products), len(days))
    units, views = np.zeros(shape), np.zeros(shape)
    units[p_idx, t_idx] = aggregates["units"].to_numpy(dtype=float)
    views[p_idx, t_idx] = aggregates["views"].to_numpy(dtype=float)
    seen = np.zeros(shape, dtype=bool)
    seen[p_idx, t_idx] = True
    first = np.where(seen.any(axis=1), seen.argmax(axis=1), shape[1])
    units[np.arange(shape[1])[None, :] < first[:, None]] = np.nan
    observed_price = np.full(shape, np.nan)
    observed_price[p_idx, t_idx] = aggregates["price"].to_numpy(dtype=float)

    info = catalog.set_index("product_id").reindex(products)
    median_observed = np.nanmedian(observed_price, axis=1) if shape[1] else np.full(len(products), np.nan)
    list_price = info["price"].to_numpy(dtype=float) if "price" in info else np.full(len(products), np.nan)
    list_price = np.where(np.isfinite(list_price) & (list_price > 0), list_price, median_observed)
    list_price = np.where(np.isfinite(list_price) & (list_price > 0), list_price, 1.0)
    price = _carry_forward(observed_price, list_price)
    category = info["category"].fillna("unknown").to_numpy(dtype=object) if "category" in info else np.full(
        len(products), "unknown", dtype=object)
    return SalesPanel(products, days, units, views, price, list_price, category, calendar or SalesCalendar())


def _carry_forward(observed: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Last observed price on or before each day; the list price before the first observation."""
    filled = pd.DataFrame(observed.T).ffill().to_numpy().T
    return np.where(np.isnan(filled), initial[:, None], filled)


def category_rollup(panel: SalesPanel) -> pd.DataFrame:
    """Daily units per category and in total (long format: level, key, date, units)."""
    units = np.nan_to_num(panel.units)
    frames = []
    for name in sorted(set(panel.category)):
        frames.append(pd.DataFrame({"level": "category", "key": name, "date": panel.days.date,
                                    "units": units[panel.category == name].sum(axis=0)}))
    frames.append(pd.DataFrame({"level": "total", "key": "all", "date": panel.days.date, "units": units.sum(axis=0)}))
    return pd.concat(frames, ignore_index=True)


def panel_from_layout(layout: DataLayout, sales_calendar: Callable[[pd.Timestamp, pd.Timestamp], SalesCalendar],
                      engine: Engine | None = None) -> SalesPanel:
    """The panel of everything ingested so far, aggregated on `engine`, with the shop's sales calendar over its
    days (`sales_calendar(first, last)`: the source knows its calendar, see ShopSourceResource.sales_calendar)."""
    engine = engine or Engine("local")
    events = engine.read_parquet(event_day_paths(layout), EVENT_COLUMNS)
    return panel_with_calendar(product_day_aggregates(events, engine), layout, sales_calendar)


def panel_with_calendar(aggregates: pd.DataFrame, layout: DataLayout,
                        sales_calendar: Callable[[pd.Timestamp, pd.Timestamp], SalesCalendar]) -> SalesPanel:
    """The panel of `product_day_aggregates` rows with the stored catalog and the calendar over their days."""
    dates = pd.to_datetime(aggregates["date"]).dt.tz_localize(None)
    calendar = sales_calendar(dates.min(), dates.max())
    return panel_from_aggregates(aggregates, read_frame(layout.table("catalog")), calendar=calendar)


def panel_to_long(panel: SalesPanel) -> pd.DataFrame:
    """The stored form: one row per product-day from its first day, plus the product's list price."""
    frame = panel.long()
    frame["list_price"] = panel.list_price[pd.Index(panel.product_ids).get_indexer(frame["product_id"])]
    return frame


def panel_from_long(frame: pd.DataFrame, calendar: SalesCalendar | None = None) -> SalesPanel:
    """Inverse of `panel_to_long` (days before a product's first row become NaN again)."""
    dates = pd.to_datetime(frame["date"])
    days = pd.date_range(dates.min(), dates.max(), freq="D")
    products = np.array(sorted(frame["product_id"].unique()), dtype=object)
    p = pd.Index(products).get_indexer(frame["product_id"])
    t = (dates - days[0]).dt.days.to_numpy()
    shape = (len(products), len(days))
    units, views, price = np.full(shape, np.nan), np.zeros(shape), np.full(shape, np.nan)
    units[p, t] = frame["units"].to_numpy(dtype=float)
    views[p, t] = frame["views"].to_numpy(dtype=float)
    price[p, t] = frame["price"].to_numpy(dtype=float)
    first = frame.groupby(p)[["list_price", "category"]].first().sort_index()
    list_price = first["list_price"].to_numpy(dtype=float)
    price = np.where(np.isnan(price), list_price[:, None], price)
    return SalesPanel(products, days, units, views, price, list_price, first["category"].to_numpy(dtype=object),
                      calendar or SalesCalendar())


def calendar_to_frame(calendar: SalesCalendar) -> pd.DataFrame:
    return calendar.table() if calendar.events else pd.DataFrame(columns=["name", "start", "days", "discount"])
