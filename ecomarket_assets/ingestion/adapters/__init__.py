"""Source adapters: map each supported source into the canonical tables.

Every reader returns `SourceTables`; `detect_format` tells which reader a
file or folder needs from its header, so a drop folder can be ingested
without being told what it holds.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ecomarket_assets.ingestion.adapters.canonical import find_table, read_canonical
from ecomarket_assets.ingestion.adapters.files import read_header
from ecomarket_assets.ingestion.adapters.ga4 import REQUIRED as GA4_COLUMNS
from ecomarket_assets.ingestion.adapters.ga4 import first_record_keys, is_json_text, read_ga4
from ecomarket_assets.ingestion.adapters.online_retail import read_online_retail
from ecomarket_assets.ingestion.adapters.retailrocket import COLUMNS as RETAILROCKET_COLUMNS
from ecomarket_assets.ingestion.adapters.retailrocket import read_retailrocket
from ecomarket_assets.ingestion.adapters.shopify import ORDERS_KEYS as SHOPIFY_COLUMNS
from ecomarket_assets.ingestion.adapters.shopify import read_shopify
from ecomarket_assets.schemas import EVENTS, SchemaError

__all__ = ["FORMATS", "detect_format", "read_canonical", "read_online_retail", "read_retailrocket", "read_shopify",
           "read_ga4"]

FORMATS = ("online_retail", "retailrocket", "canonical", "shopify", "ga4")
_ONLINE_RETAIL_KEYS = ({"InvoiceNo", "Invoice"}, {"StockCode"}, {"Quantity"}, {"InvoiceDate"})


def header(path: Path) -> list[str]:
    """Column names of a table file (by its content: CSV, CSV.GZ, Parquet or XLSX) or a folder of Parquet parts."""
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        if not parts:
            raise ValueError(f"{path}: folder holds no .parquet files")
        return list(pq.read_schema(parts[0]).names)
    return read_header(path)


def format_of_columns(columns: list[str]) -> str | None:
    """Which source format a header belongs to, or None."""
    names = {c.strip() for c in columns}
    if set(GA4_COLUMNS) <= names:
        return "ga4"
    if all(names & keys for keys in _ONLINE_RETAIL_KEYS):
        return "online_retail"
    if set(RETAILROCKET_COLUMNS) - {"transactionid"} <= names:
        return "retailrocket"
    if set(SHOPIFY_COLUMNS) <= names:
        return "shopify"
    if set(EVENTS.names) <= names:
        return "canonical"
    return None


def _table_to_inspect(path: Path) -> Path:
    """The file whose header decides: the path itself, or a folder's events table."""
    if not path.is_dir():
        return path
    orders = sorted(path.glob("orders*.csv")) + sorted(path.glob("orders*.csv.gz"))  # a Shopify export folder
    if orders and find_table(path, "events") is None:
        return orders[0]
    events = find_table(path, "events")
    if events is not None:
        return events
    raise ValueError(f"{path}: folder has no events table (events.csv/.csv.gz/.parquet or events/)")


def detect_format(path: str | Path) -> str:
    """Which reader a file or folder needs, decided by its table's columns.

    Returns "online_retail", "retailrocket" or "canonical"; raises ValueError
    (naming the columns found) for anything else.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    table = _table_to_inspect(path)
    if table.is_file() and is_json_text(table):  # JSON lines: only a GA4 export is read as JSON
        keys = first_record_keys(table) or []
        if format_of_columns(keys) == "ga4":
            return "ga4"
        from ecomarket_assets.ingestion.file_errors import UnsupportedFile

        raise UnsupportedFile(f"unsupported JSON (keys {keys[:10]}): only a GA4 BigQuery export, JSON lines "
                              f"with {', '.join(GA4_COLUMNS)}, is read as JSON")
    columns = header(table)
    found = format_of_columns(columns)
    if found is None:
        raise SchemaError(
            f"{table}: unrecognised columns {columns}{_nearest_format(columns)}; expected Online Retail "
            "(InvoiceNo/Invoice, StockCode, Quantity, InvoiceDate, …), RetailRocket "
            f"({', '.join(RETAILROCKET_COLUMNS)}) or canonical events ({', '.join(EVENTS.names)})"
        )
    return found


def _nearest_format(columns: list[str]) -> str:
    """', closest to <format>, which lacks [...]' when a header misses some columns of one format."""
    names = {c.strip() for c in columns}
    lacking = {
        "canonical events": ([c for c in EVENTS.names if c not in names], len(EVENTS.names)),
        "RetailRocket": ([c for c in RETAILROCKET_COLUMNS[:-1] if c not in names], len(RETAILROCKET_COLUMNS) - 1),
        "Online Retail": (["/".join(sorted(k)) for k in _ONLINE_RETAIL_KEYS if not names & k], len(_ONLINE_RETAIL_KEYS)),
        "Shopify Orders": ([c for c in SHOPIFY_COLUMNS if c not in names], len(SHOPIFY_COLUMNS)),
    }
    fmt, (missing, total) = min(lacking.items(), key=lambda item: len(item[1][0]) / item[1][1])
    return f" (closest to {fmt}, which lacks {missing})" if len(missing) < total else ""
