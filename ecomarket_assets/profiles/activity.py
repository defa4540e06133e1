"""Daily per-user aggregates: the incremental building block of user profiles.

Every profile feature is a function of these small per-day tables, so a new
day costs one day's aggregation and profiles over any window combine stored
days instead of rescanning every raw event. Each table is keyed by `date`, so
aggregating days one at a time or all at once gives identical rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

TABLES = ("interactions", "users", "hours")
_TS = pa.timestamp("us", tz="UTC")
SCHEMAS = {
    "interactions": pa.schema([("date", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()),
                               ("views", pa.int64()), ("carts", pa.int64()), ("purchase_units", pa.int64()),
                               ("purchase_value", pa.float64()), ("return_units", pa.int64()), ("return_value", pa.float64())]),
    "users": pa.schema([("date", pa.string()), ("user_id", pa.string()), ("events", pa.int64()), ("sessions", pa.int64()),
                        ("orders", pa.int64()), ("revenue", pa.float64()), ("first_time", _TS), ("last_time", _TS)]),
    "hours": pa.schema([("date", pa.string()), ("user_id", pa.string()), ("hour", pa.int64()), ("events", pa.int64())]),
}


@dataclass
class DailyActivity:
    interactions: pd.DataFrame  # date, user_id, product_id: views, carts, purchase_units, purchase_value, return_units, return_value
    users: pd.DataFrame  # date, user_id: events, sessions, orders, revenue, first_time, last_time
    hours: pd.DataFrame  # date, user_id, hour: events

    def as_dict(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLES}

    @classmethod
    def concat(cls, parts: list[DailyActivity]) -> DailyActivity:
        return cls(*(pd.concat([getattr(p, n) for p in parts], ignore_index=True) for n in TABLES))


def daily_activity(events: pd.DataFrame) -> DailyActivity:
    """Aggregate canonical events (any number of days) by user and UTC day; guests are skipped."""
    ev = events[events["user_id"].notna()]
    date = ev["event_time"].dt.strftime("%Y-%m-%d")
    kind = ev["event_type"]
    units = ev["quantity"].astype("int64")
    value = units * ev["unit_price"].fillna(0.0)
    frame = pd.DataFrame(
        {
            "date": date,
            "user_id": ev["user_id"],
            "product_id": ev["product_id"],
            "views": (kind == "view").astype("int64"),
            "carts": (kind == "cart").astype("int64"),
            "purchase_units": np.where(kind == "purchase", units, 0),
            "purchase_value": np.where(kind == "purchase", value, 0.0),
            "return_units": np.where(kind == "return", units, 0),
            "return_value": np.where(kind == "return", value, 0.0),
        }
    )
    interactions = frame.groupby(["date", "user_id", "product_id"], as_index=False, sort=True).sum()
    orders = ev["order_id"].where(kind == "purchase")
    users = (
        pd.DataFrame({"date": date, "user_id": ev["user_id"], "session_id": ev["session_id"], "order_id": orders,
                      "revenue": np.where(kind == "purchase", value, 0.0), "time": ev["event_time"]})
        .groupby(["date", "user_id"], sort=True)
        .agg(events=("time", "size"), sessions=("session_id", "nunique"), orders=("order_id", "nunique"),
             revenue=("revenue", "sum"), first_time=("time", "min"), last_time=("time", "max"))
        .reset_index()
    )
    hours = (
        pd.DataFrame({"date": date, "user_id": ev["user_id"], "hour": ev["event_time"].dt.hour.astype("int64")})
        .groupby(["date", "user_id", "hour"], sort=True)
        .size()
        .rename("events")
        .reset_index()
    )
    return DailyActivity(interactions, users, hours)


def write_day(activity: DailyActivity, layout, day: str) -> dict[str, int]:
    """Store one day's aggregates (atomically, one file per table)."""
    from ecomarket_assets.storage import write_table

    counts = {}
    for name, frame in activity.as_dict().items():
        part = frame[frame["date"] == day]
        write_table(pa.Table.from_pandas(part, schema=SCHEMAS[name], preserve_index=False), layout.activity_day(name, day))
        counts[name] = len(part)
    return counts


def summarize_day(day: str, layout) -> dict[str, int]:
    """Aggregate one stored raw_events day into its activity files; rows written per table."""
    from ecomarket_assets.storage import read_frame

    return write_day(daily_activity(read_frame(layout.raw_events_day(day))), layout, day)


def day_files(layout, table: str) -> list:
    """Every stored day file of one activity table, oldest first (a Dask engine reads one partition per day)."""
    return sorted((layout.root / "user_daily_activity" / table).glob("date=*/part-0.parquet"))


def read_days(layout, days: list[str] | None = None) -> DailyActivity:
    """All stored days (or the given ones) as one DailyActivity."""
    import pyarrow.dataset as ds

    tables = []
    for name in TABLES:
        folder = layout.root / "user_daily_activity" / name
        paths = [folder] if days is None else [layout.activity_day(name, d) for d in days]
        # remote (fsspec) paths are read through their file system, without the URL scheme
        fs = getattr(folder, "fs", None)
        source = [p.path if fs else str(p) for p in paths]
        source = source[0] if days is None else source
        tables.append(ds.dataset(source, format="parquet", schema=SCHEMAS[name], filesystem=fs).to_table().to_pandas())
    return DailyActivity(*tables)
