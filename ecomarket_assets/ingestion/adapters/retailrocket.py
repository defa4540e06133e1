"""RetailRocket clickstream (`events.csv`) → canonical tables.

The source logs views, add-to-carts and transactions per anonymous visitor,
with epoch-millisecond timestamps and no prices, sessions or titles. Sessions
are rebuilt with a 30-minute inactivity gap; categories come from the optional
`item_properties*.csv` files (property `categoryid`) next to the events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.ingestion.adapters.canonical import (
    UTC_DTYPE,
    conform,
    customers_frame,
    first_reason,
    id_strings,
    make_rejects,
    ragged_rejects,
    reason_counts,
    text_cells,
)
from ecomarket_assets.ingestion.adapters.files import TableRead, read_table
from ecomarket_assets.schemas import CATALOG, EVENTS, SchemaError
from ecomarket_assets.source_tables import SourceTables

COLUMNS = ("timestamp", "visitorid", "event", "itemid", "transactionid")
EVENT_TYPES = {"view": "view", "addtocart": "cart", "transaction": "purchase"}
SESSION_GAP = pd.Timedelta(minutes=30)
MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01: anything later is a corrupt timestamp
UNKNOWN_CATEGORY = "unknown"
PROPERTY_CHUNK_ROWS = 2_000_000


def _events_file(path: Path) -> Path:
    """The events CSV itself, or `events.csv(.gz)` inside the given folder."""
    if path.is_dir():
        for name in ("events.csv", "events.csv.gz"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path}: no events.csv or events.csv.gz")
    return path


def _read_raw(path: Path) -> TableRead:
    """Source rows as strings ('' for empty) and rows with too many fields, or SchemaError naming missing columns."""
    read = read_table(path)
    read.frame = text_cells(read.frame)
    read.frame.columns = [str(c).strip() for c in read.frame.columns]
    missing = [c for c in COLUMNS if c not in read.frame.columns]
    if missing:
        raise SchemaError(f"{path}: not a RetailRocket events file, lacks columns {missing}")
    return read


def _typed(raw: pd.DataFrame) -> pd.DataFrame:
    """Typed columns; unparseable timestamps become NaT (rejected later)."""
    millis = pd.to_numeric(raw["timestamp"].str.strip(), errors="coerce")
    valid = millis.notna() & (millis >= 0) & (millis < MAX_EPOCH_MS) & (millis == np.floor(millis))
    times = pd.to_datetime(millis.where(valid), unit="ms", utc=True).astype(UTC_DTYPE)
    return pd.DataFrame(
        {
            "millis": millis.where(valid).astype("Int64"),
            "event_time": times,
            "visitor": id_strings(raw["visitorid"]),
            "item": id_strings(raw["itemid"]),
            "event": raw["event"].str.strip().str.lower(),
            "transaction": id_strings(raw["transactionid"]),
        },
        index=raw.index,
    )


def _reasons(raw: pd.DataFrame, typed: pd.DataFrame) -> pd.Series:
    """Each row's reject reason (None = keep); the check order is the priority."""
    checks = [
        ("bad_type_event_time", typed["event_time"].isna()),
        ("missing_visitorid", typed["visitor"].isna()),
        ("missing_itemid", typed["item"].isna()),
        ("unknown_event_type", ~typed["event"].isin(list(EVENT_TYPES))),
        ("duplicate_row", raw.duplicated(keep="first")),
    ]
    return first_reason(checks, raw.index)


def sessionize(visitor: pd.Series, times: pd.Series, gap: pd.Timedelta = SESSION_GAP) -> pd.Series:
    """Session ids `"{visitor}-{k}"`, k = 1, 2, … per visitor, split after `gap` of silence.

    Works on integer codes and int64 times (sorting strings is ~10x slower).
    """
    if visitor.empty:
        return visitor.astype(object)
    codes, _ = pd.factorize(visitor)
    nanos = times.astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    order = np.lexsort((np.arange(len(codes)), nanos, codes))
    c, t = codes[order], nanos[order]
    new_visitor = np.r_[True, c[1:] != c[:-1]]
    new_session = new_visitor | np.r_[True, np.diff(t) > gap.value]
    running = np.cumsum(new_session)
    # k = sessions so far minus sessions before this visitor's first row
    k = running - np.maximum.accumulate(np.where(new_visitor, running - 1, 0))
    k_in_input_order = np.empty_like(k)
    k_in_input_order[order] = k
    return visitor + "-" + pd.Series(k_in_input_order, index=visitor.index).astype(str)


def _event_ids(kept: pd.DataFrame) -> pd.Series:
    """`{ms}-{visitor}-{item}-{event}`, plus `-{n}` for the rare same-key rows
    that differ only in transaction id (exact duplicates are rejected earlier)."""
    base = (
        kept["millis"].astype(str)
        + "-"
        + kept["visitor"]
        + "-"
        + kept["item"]
        + "-"
        + kept["event"]
    )
    clash = base.duplicated(keep=False)
    if not clash.any():  # the usual case; numbering 2.7M unique keys would cost seconds
        return base
    repeat = base[clash].groupby(base[clash].to_numpy(), sort=False).cumcount()
    numbered = base[clash].where(repeat == 0, base[clash] + "-" + repeat.astype(str))
    return base.where(~clash, numbered.reindex(base.index))


def _events(kept: pd.DataFrame) -> pd.DataFrame:
    """Canonical events: quantity 1, no price or channel, order id only for purchases."""
    event_type = kept["event"].map(EVENT_TYPES)
    frame = pd.DataFrame(
        {
            "event_id": _event_ids(kept),
            "event_time": kept["event_time"],
            "user_id": kept["visitor"],
            "session_id": sessionize(kept["visitor"], kept["event_time"]),
            "event_type": event_type,
            "product_id": kept["item"],
            "quantity": 1,
            "unit_price": np.nan,
            "order_id": kept["transaction"].where(event_type == "purchase", None),
            "channel": None,
        },
        index=kept.index,
    )
    return conform(frame, EVENTS)


def _property_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("item_properties*.csv*") if p.is_file())


def read_item_categories(files: list[Path]) -> pd.Series:
    """Latest `categoryid` per item (by timestamp, then file order), as "category {id}".

    The real property files hold ~20M rows, so they are streamed in chunks and
    only `categoryid` rows are kept.
    """
    parts = []
    for file in files:
        for chunk in pd.read_csv(
            file,
            dtype=str,
            keep_default_na=False,
            usecols=["timestamp", "itemid", "property", "value"],
            chunksize=PROPERTY_CHUNK_ROWS,
        ):
            parts.append(chunk[chunk["property"].str.strip() == "categoryid"])
    if not parts:
        return pd.Series(dtype=object)
    props = pd.concat(parts, ignore_index=True)
    props["millis"] = pd.to_numeric(props["timestamp"], errors="coerce")
    props["item"] = id_strings(props["itemid"])
    props["value"] = id_strings(props["value"])
    props = props.dropna(subset=["millis", "item", "value"])
    latest = props.sort_values("millis", kind="stable").drop_duplicates("item", keep="last")
    return ("category " + latest["value"]).set_axis(latest["item"].to_numpy())


def _catalog(events: pd.DataFrame, categories: pd.Series) -> pd.DataFrame:
    """One row per item seen: placeholder title, category if the properties know it."""
    items = pd.Series(sorted(events["product_id"].unique()), dtype=object)
    frame = pd.DataFrame(
        {
            "product_id": items,
            "title": "item " + items,
            "description": None,
            "category": items.map(categories).fillna(UNKNOWN_CATEGORY),
            "brand": None,
            "price": np.nan,
        }
    )
    return conform(frame, CATALOG)


def _customers(events: pd.DataFrame) -> pd.DataFrame:
    """One row per visitor (in order of first appearance), first event as sign-up.

    Not sorted by id: sorting 1.4M id strings costs more than the whole grouping.
    """
    first = events.groupby("user_id", sort=False)["event_time"].min().rename("signup_time")
    return customers_frame(first.reset_index())


def read_retailrocket(path: str | Path) -> SourceTables:
    """Map a RetailRocket `events.csv` (or its folder) into canonical tables."""
    events_file = _events_file(Path(path))
    read = _read_raw(events_file)
    raw = read.frame
    typed = _typed(raw)
    reason = _reasons(raw, typed)
    bad = reason.notna()
    events = _events(typed[~bad])
    property_files = _property_files(events_file.parent)
    catalog = _catalog(events, read_item_categories(property_files))
    customers = _customers(events)
    rejects = make_rejects(raw[bad], typed.loc[bad, "event_time"], reason[bad])
    if read.ragged:
        rejects = pd.concat([rejects, ragged_rejects(read.ragged)], ignore_index=True)
    known = catalog["category"] != UNKNOWN_CATEGORY
    notes: dict[str, object] = {
        "format": "retailrocket",
        "rows_read": read.rows_read,
        **read.notes("events"),
        "events": len(events),
        "events_by_type": events["event_type"].value_counts().to_dict(),
        "rejects": len(rejects),
        "rejects_by_reason": reason_counts(rejects["quarantine_reason"]),
        "visitors": len(customers),
        "sessions": int(events["session_id"].nunique()),
        "items": len(catalog),
        "item_property_files": [p.name for p in property_files],
        "category_coverage_items": round(float(known.mean()), 4) if len(catalog) else 0.0,
        "purchases_without_transactionid": int(
            ((events["event_type"] == "purchase") & events["order_id"].isna()).sum()
        ),
    }
    return SourceTables(
        events=events, catalog=catalog, customers=customers, rejects=rejects, notes=notes
    )
