"""The nightly refresh of the demand training set: fold in new raw_events days, append their feature rows.

Stored under the training folder (ForecastStore):
- `daily/date=D.parquet`: `product_day_aggregates` of the raw_events file of day D. Only days whose file
  is new or changed (size and modification time, or the object's ETag) are aggregated, together in one
  pass on the engine (pandas or Dask); the panel is then built from these product-days, not the events.
- `rows/date=D.parquet`: the feature rows whose target day is D, without the product columns and
  embeddings (joined when read: `ForecastStore.read_training_set`). A row reads only days up to its
  cutoff and has a horizon fixed by (product, date, seed), so rows of old days stay valid as days are
  added, and only the new target days are computed.
- `refresh_state.json`: the file signature and units bought of every folded day, the rows per target
  day, each product's list price and category, and a digest of the sales calendar over the stored days.
  Written last, so a run that fails part-way is redone from the same state by the next one.

What forces more than the new days:
- a changed, added-earlier or removed raw_events day D at or before the last stored day: that day is
  aggregated again and the rows of target days >= D are recomputed (older rows read only days < D);
- a stored product's list price or category changed, or the sales calendar on stored days changed: all
  rows are recomputed (from the stored per-day aggregates; no event is read again);
- no state, another state version or seed, or `full_rebuild`: everything is rebuilt from the events.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets.compute import Engine
from ecomarket_assets.forecasting.calendar import SalesCalendar
from ecomarket_assets.forecasting.features import PanelSums, row_features, training_rows
from ecomarket_assets.forecasting.panel import (
    EVENT_COLUMNS,
    SalesPanel,
    calendar_to_frame,
    category_rollup,
    event_days,
    panel_to_long,
    panel_with_calendar,
    product_day_aggregates,
)
from ecomarket_assets.forecasting.store import ROW_KEYS, TARGET, ForecastStore
from ecomarket_assets.storage import (
    DataLayout,
    is_remote,
    read_frame,
    remove_tree,
    write_frame,
    write_table,
    write_text,
)

STATE_VERSION = 1


@dataclass
class RefreshReport:
    """What one refresh did, and the panel it left."""

    refresh: str  # "incremental" or "full"
    reason: str
    panel: SalesPanel
    days_aggregated: int
    days_removed: int
    rows_from: str | None  # first target day whose rows were computed (None: no new rows)
    feature_rows_appended: int
    feature_rows: int  # stored after the refresh
    appended: pd.DataFrame  # the rows computed in this refresh
    rollup: pd.DataFrame  # daily units per category and in total
    seconds: dict[str, float] = field(default_factory=dict)

    def metadata(self) -> dict:
        return {"refresh": self.refresh, "reason": self.reason, "days_aggregated": self.days_aggregated,
                "days_removed": self.days_removed, "rows_from": self.rows_from or "",
                "feature_rows_appended": self.feature_rows_appended,
                **{f"{part}_seconds": round(s, 3) for part, s in self.seconds.items()}}


def file_signature(path) -> str:
    """Size and modification time of a day file (the ETag on object storage): changes when it is rewritten."""
    if is_remote(path):
        info = path.fs.info(path.path)
        return f"{info.get('size')}:{info.get('ETag') or info.get('LastModified') or info.get('mtime')}"
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def aggregate_event_days(days: list[str], layout: DataLayout, engine: Engine) -> dict[str, dict]:
    """Aggregate these raw_events day files in one pass on the engine into one `daily/date=D.parquet` each.

    A day file holds only events of its own UTC day (ingestion quarantines the others as
    `outside_partition`), so the product-day rows split by date are exactly each file's. Signatures are
    taken before the read: a file replaced meanwhile looks changed to the next refresh.
    """
    if not days:
        return {}
    store = ForecastStore(layout)
    signatures = {d: file_signature(layout.raw_events_day(d)) for d in days}
    events = engine.read_parquet([layout.raw_events_day(d) for d in days], EVENT_COLUMNS)
    aggregates = product_day_aggregates(events, engine)
    day_of = _day_strings(aggregates["date"])
    strays = sorted(set(day_of) - set(days))
    if strays:
        raise ValueError(f"raw_events day files hold events of other days ({strays[:3]}): re-ingest those days")
    counts = write_per_day(aggregates, day_of, store.daily_path, days)
    units = aggregates.groupby(day_of)["units"].sum()
    return {day: {"signature": signatures[day], "product_days": counts[day],
                  "purchased_units": float(units.get(day, 0.0))} for day in days}


def _day_strings(dates: pd.Series) -> np.ndarray:
    """YYYY-MM-DD of each row, each distinct day formatted once (strftime per row is slow)."""
    codes, unique = pd.factorize(pd.to_datetime(dates))
    return pd.DatetimeIndex(unique).strftime("%Y-%m-%d").to_numpy()[codes]


def write_per_day(frame: pd.DataFrame, day_of: np.ndarray, path_of: Callable[[str], object],
                  days: list[str] | None = None) -> dict[str, int]:
    """Rows of each day to `path_of(day)` (and an empty file for each of `days` without rows); rows per day.

    The frame is converted to Arrow once and sliced, not converted again per day.
    """
    order = np.argsort(day_of, kind="stable")
    ordered = day_of[order]
    table = pa.Table.from_pandas(frame.iloc[order], preserve_index=False)
    names, starts = np.unique(ordered, return_index=True)
    ends = np.append(starts[1:], len(ordered))[: len(starts)]  # none when the frame is empty
    counts = {str(day): 0 for day in days or []}
    for day, start, end in zip(names, starts, ends, strict=True):
        counts[str(day)] = int(end - start)
    for day, n in counts.items():
        offset = int(starts[np.searchsorted(names, day)]) if n else 0
        write_table(table.slice(offset, n), path_of(day))
    return counts


def _product_attributes(panel: SalesPanel) -> dict[str, list]:
    return {str(p): [float(price), str(category)]
            for p, price, category in zip(panel.product_ids, panel.list_price, panel.category, strict=True)}


def _calendar_digest(calendar: SalesCalendar, days: pd.DatetimeIndex) -> str:
    active, discount = calendar.on_dates(days)
    return hashlib.sha256(np.concatenate([active, discount]).tobytes()).hexdigest()


def _rows_from(state: dict, panel: SalesPanel, changed: list[str]) -> tuple[pd.Timestamp, str]:
    """The first target day whose stored rows can no longer be kept, and why."""
    last = pd.Timestamp(state["last_day"])
    attributes = _product_attributes(panel)
    moved = [p for p, value in state["products"].items() if p in attributes and attributes[p] != value]
    past = [d for d in changed if pd.Timestamp(d) <= last]
    causes = []
    if moved:
        causes.append((panel.days[0], f"list price or category changed for {len(moved)} stored products"))
    if _calendar_digest(panel.calendar, pd.date_range(state["first_day"], last)) != state["calendar"]:
        causes.append((panel.days[0], "sales calendar changed on stored days"))
    if past:
        causes.append((pd.Timestamp(past[0]), f"{len(past)} stored raw_events days changed"))
    if causes:
        first = min(day for day, _ in causes)
        return first, f"{'; '.join(why for _, why in causes)}: rows from {first.date()} recomputed"
    new = int((panel.days > last).sum())
    return last + pd.Timedelta(days=1), f"{new} new days" if new else "no new raw_events days"


def stale_days(layout: DataLayout, folded: dict, days: list[str]) -> list[str]:
    """The raw_events days not folded in, or whose file changed since."""
    return [d for d in days if d not in folded or folded[d]["signature"] != file_signature(layout.raw_events_day(d))]


def refresh_demand_state(layout: DataLayout, sales_calendar: Callable[[pd.Timestamp, pd.Timestamp], SalesCalendar],
                         engine: Engine | None = None, full_rebuild: bool = False, seed: int = 0) -> RefreshReport:
    """Bring the stored per-day aggregates, panel, roll-up and feature rows up to the stored raw_events days.

    Incremental unless `full_rebuild` or the stored state cannot be used (see the module docstring); either
    way the result equals a full rebuild. The embedding basis is not part of it (joined when rows are read).
    """
    engine = engine or Engine("local")
    store = ForecastStore(layout)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    state = None if full_rebuild else store.read_state()
    full_reason = ("full_rebuild requested" if full_rebuild else "no stored refresh state" if state is None
                   else "stored state has another version or seed"
                   if (state.get("version"), state.get("seed")) != (STATE_VERSION, seed) else None)
    if full_reason:
        store.state_path.unlink(missing_ok=True)  # first: a rebuild that fails part-way is a rebuild again
        remove_tree(store.training / "daily")
        remove_tree(store.training / "rows")
        (store.training / "features.parquet").unlink(missing_ok=True)  # the whole-history table of old versions
        state = {"days": {}, "rows": {}}

    days = event_days(layout)
    if not days:
        raise FileNotFoundError(f"no raw_events partitions under {layout.root / 'raw_events'}: "
                                "materialize raw_events first")
    folded = state["days"]
    stale = stale_days(layout, folded, days)
    removed = [d for d in folded if d not in set(days)]
    aggregated = aggregate_event_days(stale, layout, engine)
    for day in removed:
        store.daily_path(day).unlink(missing_ok=True)
    folded = {d: aggregated.get(d) or folded[d] for d in days}
    seconds["aggregate"] = time.perf_counter() - start

    start = time.perf_counter()
    aggregates = pd.concat([read_frame(store.daily_path(d)) for d in days], ignore_index=True)
    panel = panel_with_calendar(aggregates, layout, sales_calendar)
    seconds["panel"] = time.perf_counter() - start

    start = time.perf_counter()
    if full_reason:
        rows_from, reason = panel.days[0], full_reason
    else:
        rows_from, reason = _rows_from(state, panel, sorted([*stale, *removed]))
    kept = {d: n for d, n in state["rows"].items() if pd.Timestamp(d) < rows_from}
    for day in store.stored_days("rows"):
        if day not in kept:
            store.rows_path(day).unlink(missing_ok=True)
    appended = new_feature_rows(panel, rows_from, seed)
    seconds["features"] = time.perf_counter() - start

    start = time.perf_counter()
    kept |= write_per_day(appended, appended["target_date"].to_numpy(dtype=str), store.rows_path)
    write_frame(panel_to_long(panel), store.panel_path)
    write_frame(calendar_to_frame(panel.calendar), store.calendar_path)
    rollup = category_rollup(panel)
    write_frame(rollup, store.training / "rollup.parquet")
    last = panel.days[-1]
    write_text(store.state_path, json.dumps({
        "version": STATE_VERSION, "seed": seed, "first_day": str(panel.days[0].date()), "last_day": str(last.date()),
        "days": folded, "rows": kept,
        "products": _product_attributes(panel), "calendar": _calendar_digest(panel.calendar, panel.days),
    }))
    seconds["write"] = time.perf_counter() - start
    return RefreshReport("full" if full_reason else "incremental", reason, panel, len(stale), len(removed),
                         str(rows_from.date()) if len(appended) else None, len(appended), sum(kept.values()),
                         appended, rollup, seconds)


def new_feature_rows(panel: SalesPanel, first_target: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """The stored form of the feature rows whose target day is `first_target` or later."""
    first_index = max(int((first_target - panel.days[0]).days), 0)
    p, d, h = training_rows(panel, len(panel.days) - 1, seed=seed, first_target_day=first_index)
    rows = row_features(panel, p, d, h, PanelSums(panel))
    rows.insert(0, ROW_KEYS[0], panel.product_ids[p])
    rows.insert(1, ROW_KEYS[1], panel.date_of(d).date.astype(str))
    rows[TARGET] = panel.units[p, d]
    return rows
