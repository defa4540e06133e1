"""UCI Online Retail / Online Retail II → canonical tables.

The dataset is a UK gift wholesaler's invoice lines. It is real, so it is
messy: guest checkouts, cancellations, warehouse stock adjustments booked as
negative sales, postage/fee/discount lines, exact duplicate lines, free items
and local (Europe/London) timestamps. Each of these is either mapped or
rejected with a named reason here; generic range checks are left to ingestion.
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
    text_or_none,
)
from ecomarket_assets.ingestion.adapters.categories import OTHER, categorize
from ecomarket_assets.ingestion.adapters.dates import (
    DateOrderError,
    is_numeric_date,
    parse_numeric_dates,
)
from ecomarket_assets.ingestion.adapters.files import TableRead, read_table
from ecomarket_assets.schemas import CATALOG, EVENTS, SchemaError
from ecomarket_assets.source_tables import SourceTables

SOURCE_TZ = "Europe/London"

# Both namings (Online Retail, Online Retail II) → internal names.
COLUMN_ALIASES = {
    "InvoiceNo": "invoice",
    "Invoice": "invoice",
    "StockCode": "stock_code",
    "Description": "description",
    "Quantity": "quantity",
    "InvoiceDate": "invoice_date",
    "UnitPrice": "price",
    "Price": "price",
    "CustomerID": "customer_id",
    "Customer ID": "customer_id",
    "Country": "country",
}
REQUIRED = (
    "invoice",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "price",
    "customer_id",
    "country",
)

# Real products: 5 digits plus an optional variant suffix (85123A), and the
# DCGS… codes, which are ordinary goods (party bags, dog collars) sold without
# a customer id. Everything else is postage, fees, discounts, manual
# adjustments, samples, vouchers: not demand for a product.
PRODUCT_CODE = r"^(?:\d{5}[A-Z]*|DCGS[0-9A-Z]+)$"
SALES_INVOICE = r"^C?\d+$"  # "A…" invoices are bad-debt adjustments

# ISO date formats (the one that parses most rows wins); numeric d/m dates go through dates.py.
ISO_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
UNKNOWN_COUNTRIES = ("Unspecified",)


# --------------------------------------------------------------------------- reading


def _read_raw(path: Path) -> TableRead:
    """All cells as strings ('' for empty), every sheet of a workbook stacked; rows with too many fields apart."""
    try:
        read = read_table(path)
    except UnicodeDecodeError:  # the UCI exports circulate in Latin-1 too
        read = read_table(path, encoding="latin-1")
    read.frame = text_cells(read.frame)
    read.frame.columns = [str(c).strip() for c in read.frame.columns]
    return read


def _rename(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Internal column names, or SchemaError naming what is missing."""
    renamed = raw.rename(columns={k: v for k, v in COLUMN_ALIASES.items() if k in raw.columns})
    missing = [name for name in REQUIRED if name not in renamed.columns]
    if missing:
        wanted = {v: k for k, v in COLUMN_ALIASES.items()}
        raise SchemaError(
            f"{path}: not an Online Retail file, lacks {[wanted[m] for m in missing]}"
        )
    return renamed[list(REQUIRED)]


def parse_local_times(text: pd.Series, date_format: str | None = None) -> tuple[pd.Series, dict[str, int]]:
    """Parse UK wall-clock invoice dates and convert to UTC.

    Nonexistent times (the skipped spring-forward hour) are shifted forward and
    ambiguous ones (the repeated autumn hour) read as summer time (BST), so the
    mapping is deterministic. Returns the UTC times and how many rows needed it.
    """
    naive = _parse_with_best_format(text, date_format)
    local = naive.dt.tz_localize(SOURCE_TZ, ambiguous="NaT", nonexistent="NaT")
    fixed = naive.dt.tz_localize(
        SOURCE_TZ, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="shift_forward"
    )
    adjusted = int((local.isna() & naive.notna()).sum())
    return fixed.dt.tz_convert("UTC").astype(UTC_DTYPE), {"dst_adjusted_rows": adjusted}


def _parse_with_best_format(text: pd.Series, date_format: str | None = None) -> pd.Series:
    """Naive times in one format for the whole file, so 01/02/2011 can never mean January in one row
    and February in the next.

    ISO dates need no order. Numeric dates use the declared order (`date_format`), else the only order
    the file's values allow; a file whose every date reads both ways is refused (`DateOrderError`).
    """
    stripped = text.str.strip()
    if date_format and "%" in date_format:
        return pd.to_datetime(stripped, format=date_format, errors="coerce")
    best = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    for fmt in ISO_FORMATS:
        parsed = pd.to_datetime(stripped, format=fmt, errors="coerce")
        if parsed.notna().sum() > best.notna().sum():
            best = parsed
    numeric = best.isna() & is_numeric_date(stripped)
    if numeric.any():
        best[numeric] = parse_numeric_dates(stripped[numeric], date_format)
    return best


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    """Typed columns next to the source strings (which stay for the JSON record)."""
    return pd.DataFrame(
        {
            "invoice": rows["invoice"].str.strip(),
            "product_id": rows["stock_code"].str.strip().str.upper(),
            "description": text_or_none(rows["description"]),
            "quantity": pd.to_numeric(rows["quantity"], errors="coerce"),
            "price": pd.to_numeric(rows["price"], errors="coerce"),
            "customer_id": id_strings(rows["customer_id"]),
            "country": text_or_none(rows["country"]),
        },
        index=rows.index,
    )


# --------------------------------------------------------------------------- rules


def _reasons(raw: pd.DataFrame, typed: pd.DataFrame) -> pd.Series:
    """Each row's reject reason (None = keep); the check order is the priority.

    Row-intrinsic problems come before `duplicate_row`, so an exact duplicate of
    a rejected line carries the same reason as its first copy.
    """
    q, price = typed["quantity"], typed["price"]
    cancel = typed["invoice"].str.startswith("C")
    int32_max = np.iinfo(np.int32).max
    checks = [
        ("missing_invoice_or_stock_code", (typed["invoice"] == "") | (typed["product_id"] == "")),
        ("bad_type_event_time", typed["event_time"].isna()),
        ("bad_type_quantity", q.isna() | (q != np.floor(q)) | (q.abs() > int32_max)),
        ("bad_type_unit_price", price.isna()),
        ("non_product_line", ~typed["product_id"].str.match(PRODUCT_CODE)),
        ("non_sales_invoice", ~typed["invoice"].str.match(SALES_INVOICE)),
        ("stock_adjustment", ~cancel & (q < 0)),
        ("cancellation_without_negative_quantity", cancel & (q >= 0)),
        ("bad_price", ~cancel & (price <= 0)),
        ("duplicate_row", raw.duplicated(keep="first")),
    ]
    return first_reason(checks, raw.index)


# --------------------------------------------------------------------------- tables


def _events(kept: pd.DataFrame) -> pd.DataFrame:
    """Purchase/return events; event_id = invoice:stock_code:n (n = repeat in invoice)."""
    is_return = kept["invoice"].str.startswith("C")
    repeat = kept.groupby(["invoice", "product_id"], sort=False).cumcount().astype(str)
    frame = pd.DataFrame(
        {
            "event_id": kept["invoice"] + ":" + kept["product_id"] + ":" + repeat,
            "event_time": kept["event_time"],
            "user_id": kept["customer_id"],
            "session_id": kept["invoice"],
            "event_type": np.where(is_return, "return", "purchase"),
            "product_id": kept["product_id"],
            "quantity": kept["quantity"].abs(),
            "unit_price": kept["price"],
            "order_id": kept["invoice"],
            "channel": None,
        }
    )
    return conform(frame, EVENTS)


def most_frequent(frame: pd.DataFrame, key: str, value: str) -> pd.Series:
    """Per key, its most frequent non-null value (ties: alphabetically first)."""
    counts = frame.dropna(subset=[value]).groupby([key, value]).size().rename("n").reset_index()
    counts = counts.sort_values([key, "n", value], ascending=[True, False, True])
    return counts.drop_duplicates(key).set_index(key)[value]


def _catalog(kept: pd.DataFrame) -> pd.DataFrame:
    """One row per stock code: commonest description as title, median purchase price."""
    codes = pd.Index(sorted(kept["product_id"].unique()), name="product_id")
    titles = most_frequent(kept, "product_id", "description").reindex(codes)
    titles = titles.fillna("product " + codes.to_series())
    purchases = kept[~kept["invoice"].str.startswith("C")]
    price = purchases.groupby("product_id")["price"].median().reindex(codes)
    frame = pd.DataFrame(
        {
            "product_id": codes,
            "title": titles.to_numpy(),
            "description": None,
            "category": categorize(titles).to_numpy(),
            "brand": None,
            "price": price.to_numpy(),
        }
    )
    return conform(frame, CATALOG)


def _customers(kept: pd.DataFrame) -> pd.DataFrame:
    """Identified buyers only: first invoice as sign-up, their commonest country."""
    known = kept.dropna(subset=["customer_id"]).copy()
    known["country"] = known["country"].where(~known["country"].isin(UNKNOWN_COUNTRIES), None)
    first = known.groupby("customer_id")["event_time"].min().rename("signup_time")
    frame = first.to_frame().join(most_frequent(known, "customer_id", "country"))
    frame = frame.rename_axis("user_id").reset_index().sort_values("user_id")
    return customers_frame(frame)


def _coverage(catalog: pd.DataFrame, events: pd.DataFrame) -> dict[str, object]:
    """Share of catalog items and of purchase lines with a category other than `other`."""
    purchases = events[events["event_type"] == "purchase"]
    category = purchases["product_id"].map(catalog.set_index("product_id")["category"])
    return {
        "category_coverage_items": round(float((catalog["category"] != OTHER).mean()), 4),
        "category_coverage_purchase_lines": round(float((category != OTHER).mean()), 4),
        "catalog_items_by_category": catalog["category"].value_counts().to_dict(),
    }


def read_online_retail(path: str | Path, date_format: str | None = None) -> SourceTables:
    """Map an Online Retail (I or II) CSV/CSV.GZ/XLSX export into canonical tables."""
    path = Path(path)
    read = _read_raw(path)
    raw = read.frame
    renamed = _rename(raw, path)
    typed = _typed(renamed)
    try:
        typed["event_time"], dst_notes = parse_local_times(renamed["invoice_date"], date_format)
    except DateOrderError as error:
        raise DateOrderError(f"{path}: column InvoiceDate: {error}") from None
    reason = _reasons(raw, typed)
    bad = reason.notna()
    kept = typed[~bad]
    events = _events(kept)
    catalog = _catalog(kept)
    customers = _customers(kept)
    rejects = make_rejects(raw[bad], typed.loc[bad, "event_time"], reason[bad])
    if read.ragged:
        rejects = pd.concat([rejects, ragged_rejects(read.ragged)], ignore_index=True)
    guests = int(events["user_id"].isna().sum())
    notes: dict[str, object] = {
        "format": "online_retail",
        "rows_read": read.rows_read,
        **read.notes("events"),
        "events": len(events),
        "purchases": int((events["event_type"] == "purchase").sum()),
        "returns": int((events["event_type"] == "return").sum()),
        "rejects": len(rejects),
        "rejects_by_reason": reason_counts(rejects["quarantine_reason"]),
        "guest_rows": guests,
        "guest_share": round(guests / max(len(events), 1), 4),
        "customers": len(customers),
        "catalog_items": len(catalog),
        "first_event": str(events["event_time"].min()),
        "last_event": str(events["event_time"].max()),
        **dst_notes,
        **_coverage(catalog, events),
    }
    return SourceTables(
        events=events, catalog=catalog, customers=customers, rejects=rejects, notes=notes
    )
