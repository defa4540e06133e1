"""`read_online_retail` on the real UCI Online Retail file (Dec 2010 – Sep 2011)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from ecomarket_assets.ingestion.adapters import detect_format, read_online_retail
from ecomarket_assets.ingestion.adapters.categories import CATEGORIES
from ecomarket_assets.ingestion.adapters.online_retail import PRODUCT_CODE
from ecomarket_assets.schemas import CATALOG, CUSTOMERS, EVENTS, QUARANTINE_REASON, REVIEWS
from ecomarket_assets.source_tables import SOURCE_RECORD, SourceTables

DATA_FILE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "datasets"
    / "online_retail"
    / "online_retail_2010-12_to_2011-09.csv.gz"
)
REASONS = {"duplicate_row", "non_product_line", "stock_adjustment", "bad_price"}

pytestmark = pytest.mark.skipif(
    not DATA_FILE.is_file(), reason=f"real Online Retail file not found at {DATA_FILE}"
)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def tables() -> SourceTables:
    started = time.perf_counter()
    result = read_online_retail(DATA_FILE)
    result.notes["test_seconds"] = round(time.perf_counter() - started, 2)
    return result


def test_detected_as_online_retail() -> None:
    assert detect_format(DATA_FILE) == "online_retail"


def test_every_row_is_an_event_or_a_reject(raw: pd.DataFrame, tables: SourceTables) -> None:
    assert len(tables.events) + len(tables.rejects) == len(raw) == tables.notes["rows_read"]
    assert set(tables.rejects[QUARANTINE_REASON]) == REASONS
    assert sum(tables.notes["rejects_by_reason"].values()) == len(tables.rejects)


def test_reject_counts_match_independent_counts(raw: pd.DataFrame, tables: SourceTables) -> None:
    quantity = pd.to_numeric(raw["Quantity"])
    cancel = raw["InvoiceNo"].str.startswith("C")
    counts = tables.notes["rejects_by_reason"]
    assert counts["stock_adjustment"] == int((~cancel & (quantity < 0)).sum())  # 1023
    # every duplicate row is either a kept-line duplicate or rejected for its own reason
    assert counts["duplicate_row"] <= int(raw.duplicated().sum())
    assert counts["non_product_line"] >= int((raw["StockCode"] == "POST").sum())


def test_reject_records_are_the_original_rows(raw: pd.DataFrame, tables: SourceTables) -> None:
    record = json.loads(tables.rejects[SOURCE_RECORD].iloc[0])
    assert list(record) == list(raw.columns)
    assert tables.rejects["event_time"].notna().all()  # every date in the file parses


def test_schema_and_dtypes(tables: SourceTables) -> None:
    assert tables.events.dtypes.equals(EVENTS.empty().dtypes)
    for schema, frame in (
        (EVENTS, tables.events),
        (CATALOG, tables.catalog),
        (CUSTOMERS, tables.customers),
        (REVIEWS, tables.reviews),
    ):
        schema.to_arrow(frame)


def test_events_are_plausible(tables: SourceTables) -> None:
    events = tables.events
    assert events["event_id"].is_unique
    assert set(events["event_type"]) == {"purchase", "return"}
    assert (events["quantity"] > 0).all()
    purchases = events[events["event_type"] == "purchase"]
    assert (purchases["unit_price"] > 0).all()
    assert events["product_id"].str.match(PRODUCT_CODE).all()
    returns = events[events["event_type"] == "return"]
    assert returns["order_id"].str.startswith("C").all()
    # local dates before 2011-10-01 only (the rest is held back), converted to UTC
    assert events["event_time"].min() == pd.Timestamp("2010-12-01 08:26", tz="UTC")
    assert events["event_time"].max() < pd.Timestamp("2011-10-01", tz="UTC")


def test_guests_are_kept_but_are_not_customers(tables: SourceTables) -> None:
    events, customers = tables.events, tables.customers
    assert 0.2 < tables.notes["guest_share"] < 0.3  # "about a quarter" per the README
    assert customers["user_id"].is_unique
    assert not customers["user_id"].str.contains(r"\.").any()  # no "17850.0"
    assert set(events["user_id"].dropna()) == set(customers["user_id"])
    assert customers["signup_time"].notna().all()


def test_catalog_covers_events_and_is_categorised(tables: SourceTables) -> None:
    catalog = tables.catalog
    assert catalog["product_id"].is_unique
    assert set(catalog["product_id"]) == set(tables.events["product_id"])
    assert set(catalog["category"]) <= set(CATEGORIES)
    assert catalog["title"].notna().all()
    heart = catalog.set_index("product_id").loc["85123A"]
    assert heart["title"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert heart["category"] == "candles & lighting"
    assert tables.notes["category_coverage_purchase_lines"] >= 0.75
    assert tables.notes["category_coverage_items"] >= 0.75


def test_maps_in_a_few_seconds(tables: SourceTables) -> None:
    assert tables.notes["test_seconds"] < 30  # ~2.5 s on the dev box; generous for CI
