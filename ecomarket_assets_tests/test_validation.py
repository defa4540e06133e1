"""One test per kind of bad row: each lands in quarantine with its reason, counts reconcile."""

import pandas as pd
import pytest

from ecomarket_assets.ingestion import validation
from ecomarket_assets.schemas import CATALOG, EVENTS, QUARANTINE_REASON, REVIEWS, SchemaError
from ecomarket_assets.source_tables import SOURCE_RECORD

DAY = "2025-11-10"
START, END = pd.Timestamp(DAY, tz="UTC"), pd.Timestamp(DAY, tz="UTC") + pd.Timedelta(days=1)
PRODUCTS = pd.Index(["P1", "P2"])


def good_events(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "event_time": pd.date_range(START + pd.Timedelta(hours=1), periods=n, freq="h").astype("datetime64[us, UTC]"),
            "user_id": ["u1"] * n,
            "session_id": ["s1"] * n,
            "event_type": ["view", "cart", "purchase", "return", "review"][:n] + ["view"] * max(0, n - 5),
            "product_id": ["P1"] * n,
            "quantity": pd.Series([1] * n, dtype="int32"),
            "unit_price": [10.0, 10.0, 10.0, 10.0, None][:n] + [10.0] * max(0, n - 5),
            "order_id": [None, None, "o1", "o1", None][:n] + [None] * max(0, n - 5),
            "channel": ["web"] * n,
        }
    )


def quarantine_one(column: str, value, row: int = 2) -> validation.Validated:
    events = good_events()
    events[column] = events[column].astype(object)
    events.at[row, column] = value
    result = validation.validate_events(events, START, END, PRODUCTS)
    assert len(result.kept) + len(result.quarantined) == len(events)
    return result


def test_clean_day_keeps_everything():
    result = validation.validate_events(good_events(), START, END, PRODUCTS)
    assert len(result.kept) == 5 and result.quarantined.empty


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("event_id", None, "missing_required_field"),
        ("product_id", None, "missing_required_field"),
        ("event_type", "wishlist", "unknown_event_type"),
        ("event_time", pd.Timestamp("2025-11-11 00:00", tz="UTC"), "outside_partition"),
        ("event_time", pd.Timestamp("2025-11-09 23:59:59", tz="UTC"), "outside_partition"),
        ("quantity", -3, "bad_quantity"),
        ("quantity", 0, "bad_quantity"),
        ("quantity", 50_000, "bad_quantity"),
        ("unit_price", -1.0, "bad_price"),
        ("unit_price", 0.0, "bad_price"),
        ("unit_price", 1e7, "bad_price"),
        ("unit_price", None, "missing_price"),
        ("product_id", "P404", "unknown_product"),
    ],
)
def test_each_bad_row_is_quarantined_with_its_reason(column, value, reason):
    result = quarantine_one(column, value)
    assert len(result.kept) == 4
    assert result.quarantined[QUARANTINE_REASON].tolist() == [reason]
    assert result.reasons == {reason: 1}


def test_duplicate_event_id_keeps_the_first_valid_copy():
    events = pd.concat([good_events(), good_events().iloc[[2]]], ignore_index=True)
    result = validation.validate_events(events, START, END, PRODUCTS)
    assert result.reasons == {"duplicate_event_id": 1}
    assert result.kept["event_id"].is_unique and len(result.kept) == 5


def test_a_bad_first_copy_does_not_evict_a_good_second_copy():
    bad_first = good_events().iloc[[2]].assign(quantity=-1)
    events = pd.concat([bad_first, good_events()], ignore_index=True)
    result = validation.validate_events(events, START, END, PRODUCTS)
    assert result.reasons == {"bad_quantity": 1}
    assert "e2" in set(result.kept["event_id"])


def test_first_broken_rule_wins_so_reasons_add_up():
    events = good_events()
    events.at[1, "quantity"] = -1
    events.at[1, "product_id"] = "P404"  # also unknown, but bad_quantity comes first
    events.at[3, "unit_price"] = -5.0
    result = validation.validate_events(events, START, END, PRODUCTS)
    assert result.reasons == {"bad_quantity": 1, "bad_price": 1}
    assert sum(result.reasons.values()) == len(result.quarantined) == 2


def test_missing_column_is_a_clear_error():
    with pytest.raises(SchemaError, match="unit_price"):
        validation.validate_events(good_events().drop(columns="unit_price"), START, END, PRODUCTS)


def test_sources_without_prices_may_omit_them():
    events = good_events().assign(unit_price=None)  # e.g. RetailRocket has no prices at all
    result = validation.validate_events(events, START, END, PRODUCTS)
    assert result.quarantined.empty


def test_adapter_rejects_become_quarantine_rows():
    rejects = pd.DataFrame({"event_time": [START], SOURCE_RECORD: ['{"StockCode": "POST"}'],
                            QUARANTINE_REASON: ["non_product_line"]})
    rows = validation.rejects_as_quarantine(rejects, EVENTS)
    assert rows.columns.tolist() == [*EVENTS.names, SOURCE_RECORD, QUARANTINE_REASON]
    table = validation.quarantine_table(rows)
    assert table.num_rows == 1 and table.schema.field("event_id").type == "string"


def test_catalog_rules():
    catalog = pd.DataFrame({"product_id": ["P1", "P1", "P2", None], "title": ["a", "b", "c", "d"], "description": None,
                            "category": ["x", "x", "x", "x"], "brand": None, "price": [5.0, 5.0, -2.0, 1.0]})
    result = validation.validate_catalog(catalog)
    assert result.reasons == {"bad_price": 1, "duplicate_product_id": 1, "missing_required_field": 1}
    assert result.kept["product_id"].tolist() == ["P1"]
    assert CATALOG.to_arrow(result.kept).num_rows == 1


def test_review_rules():
    reviews = pd.DataFrame({"review_id": ["r1", "r2", "r3", "r4"], "review_time": pd.Timestamp(DAY, tz="UTC"),
                            "user_id": "u1", "product_id": ["P1", "P1", "P9", "P2"], "rating": [5, 9, 4, 3],
                            "text": ["great", "ok", "fine", "  "]})
    result = validation.validate_reviews(reviews, PRODUCTS)
    assert result.reasons == {"bad_rating": 1, "empty_text": 1, "unknown_product": 1}
    assert REVIEWS.to_arrow(result.kept.astype({"rating": "int8"})).num_rows == 1
