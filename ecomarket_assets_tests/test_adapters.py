"""Source adapters on tiny hand-made inputs with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.ingestion.adapters import (
    detect_format,
    read_canonical,
    read_online_retail,
    read_retailrocket,
)
from ecomarket_assets.ingestion.adapters.categories import CATEGORIES, OTHER, categorize
from ecomarket_assets.schemas import (
    CATALOG,
    CUSTOMERS,
    EVENTS,
    QUARANTINE_REASON,
    REVIEWS,
    SchemaError,
)
from ecomarket_assets.source_tables import SOURCE_RECORD, SourceTables


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def assert_canonical(tables: SourceTables, rows_in_file: int) -> None:
    """Exact columns and dtypes, Arrow-convertible, and nothing lost."""
    assert list(tables.events.columns) == EVENTS.names
    assert tables.events.dtypes.equals(EVENTS.empty().dtypes)
    for schema, frame in (
        (EVENTS, tables.events),
        (CATALOG, tables.catalog),
        (CUSTOMERS, tables.customers),
        (REVIEWS, tables.reviews),
    ):
        assert list(frame.columns) == schema.names
        schema.to_arrow(frame)  # raises if a type does not fit
    assert list(tables.rejects.columns) == ["event_time", SOURCE_RECORD, QUARANTINE_REASON]
    assert str(tables.rejects["event_time"].dtype) == "datetime64[us, UTC]"
    assert len(tables.events) + len(tables.rejects) == rows_in_file
    assert tables.events["event_id"].is_unique


def by_id(events: pd.DataFrame) -> pd.DataFrame:
    return events.set_index("event_id")


# --------------------------------------------------------------------------- Online Retail

ONLINE_RETAIL_CSV = """
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom
536366,85123a, WHITE HANGING HEART T-LIGHT HOLDER ,2,2011-06-01 12:00:00,2.95,,United Kingdom
C536379,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-1,2011-06-02 09:00:00,2.55,17850,United Kingdom
536370,POST,POSTAGE,3,2010-12-01 08:45:00,18.00,12583,France
536589,21777,,-10,2010-12-01 16:50:00,0.0,,United Kingdom
536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,2,2010-12-01 08:26:00,2.55,17850,United Kingdom
536400,85123A,CREAM HANGING HEART T-LIGHT HOLDER,1,2011-03-27 01:30:00,2.40,12583,France
536401,22139,RETROSPOT TEA SET CERAMIC 11 PC,3,2011-10-30 01:30:00,4.95,12583,France
A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,11062.06,,United Kingdom
536402,DCGSSGIRL,GIRLS PARTY BAG,5,2011-03-07 17:22:00,3.29,,United Kingdom
536403,22139,RETROSPOT TEA SET CERAMIC 11 PC,1,not a date,4.95,,United Kingdom
"""
ONLINE_RETAIL_ROWS = 14


@pytest.fixture
def online_retail(tmp_path: Path) -> SourceTables:
    return read_online_retail(write(tmp_path / "retail.csv", ONLINE_RETAIL_CSV))


def test_online_retail_keeps_or_rejects_every_row(online_retail: SourceTables) -> None:
    assert_canonical(online_retail, ONLINE_RETAIL_ROWS)
    assert len(online_retail.events) == 8
    assert online_retail.notes["rejects_by_reason"] == {
        "duplicate_row": 1,
        "non_product_line": 2,
        "stock_adjustment": 1,
        "bad_price": 1,
        "bad_type_event_time": 1,
    }


def test_online_retail_reject_records_round_trip(online_retail: SourceTables) -> None:
    rejects = online_retail.rejects
    records = [json.loads(r) for r in rejects[SOURCE_RECORD]]
    reason_of = {
        (r["InvoiceNo"], r["StockCode"]): why
        for r, why in zip(records, rejects[QUARANTINE_REASON], strict=True)
    }
    assert reason_of == {
        ("536365", "85123A"): "duplicate_row",
        ("536370", "POST"): "non_product_line",
        ("A563185", "B"): "non_product_line",
        ("536589", "21777"): "stock_adjustment",
        ("536414", "22139"): "bad_price",
        ("536403", "22139"): "bad_type_event_time",
    }
    post = records[list(rejects[QUARANTINE_REASON]).index("non_product_line")]
    assert post == {
        "InvoiceNo": "536370",
        "StockCode": "POST",
        "Description": "POSTAGE",
        "Quantity": "3",
        "InvoiceDate": "2010-12-01 08:45:00",
        "UnitPrice": "18.00",
        "CustomerID": "12583",
        "Country": "France",
    }
    times = rejects.set_index(QUARANTINE_REASON)["event_time"]
    assert pd.isna(times["bad_type_event_time"])
    assert times["stock_adjustment"] == utc("2010-12-01 16:50")


def test_online_retail_event_mapping(online_retail: SourceTables) -> None:
    events = by_id(online_retail.events)
    assert set(events.index) == {
        "536365:85123A:0",
        "536365:71053:0",
        "536365:85123A:1",
        "536366:85123A:0",
        "C536379:85123A:0",
        "536400:85123A:0",
        "536401:22139:0",
        "536402:DCGSSGIRL:0",
    }
    first = events.loc["536365:85123A:0"]
    assert first["event_type"] == "purchase"
    assert first["session_id"] == first["order_id"] == "536365"
    assert first["user_id"] == "17850"
    assert first["quantity"] == 6 and first["unit_price"] == 2.55
    assert first["channel"] is None
    assert events.loc["536365:85123A:1", "quantity"] == 2
    assert events.loc["536365:71053:0", "user_id"] == "17850"  # "17850.0" in the file

    ret = events.loc["C536379:85123A:0"]
    assert (ret["event_type"], ret["quantity"], ret["order_id"]) == ("return", 1, "C536379")

    guest = events.loc["536366:85123A:0"]  # lower-case code, no customer
    assert guest["product_id"] == "85123A" and guest["user_id"] is None


def test_online_retail_times_are_london_local_converted_to_utc(online_retail: SourceTables) -> None:
    times = by_id(online_retail.events)["event_time"]
    assert times["536365:85123A:0"] == utc("2010-12-01 08:26")  # GMT = UTC
    assert times["536366:85123A:0"] == utc("2011-06-01 11:00")  # BST = UTC+1
    assert times["536400:85123A:0"] == utc("2011-03-27 01:00")  # skipped hour → 02:00 BST
    assert times["536401:22139:0"] == utc("2011-10-30 00:30")  # repeated hour → read as BST
    assert online_retail.notes["dst_adjusted_rows"] == 2


def test_online_retail_catalog(online_retail: SourceTables) -> None:
    catalog = online_retail.catalog.set_index("product_id")
    assert set(catalog.index) == {"85123A", "71053", "22139", "DCGSSGIRL"}
    heart = catalog.loc["85123A"]
    assert heart["title"] == "WHITE HANGING HEART T-LIGHT HOLDER"  # 4 of 5 lines say so
    assert heart["category"] == "candles & lighting"
    assert heart["price"] == pytest.approx(
        2.55
    )  # median of 2.40, 2.55, 2.55, 2.95; return excluded
    assert catalog.loc["22139", "category"] == "kitchen & dining"
    assert catalog["brand"].isna().all()


def test_online_retail_customers(online_retail: SourceTables) -> None:
    customers = online_retail.customers.set_index("user_id")
    assert list(customers.index) == ["12583", "17850"]  # guests are not customers
    assert customers.loc["17850", "signup_time"] == utc("2010-12-01 08:26")
    assert customers.loc["12583", "signup_time"] == utc("2011-03-27 01:00")
    assert customers.loc["12583", "country"] == "France"
    assert customers[["email_opt_in", "sms_opt_in", "push_opt_in"]].isna().all().all()
    assert online_retail.reviews.empty
    assert online_retail.notes["guest_rows"] == 2


def test_online_retail_is_deterministic(tmp_path: Path) -> None:
    path = write(tmp_path / "retail.csv", ONLINE_RETAIL_CSV)
    first, second = read_online_retail(path), read_online_retail(path)
    pd.testing.assert_frame_equal(first.events, second.events)
    pd.testing.assert_frame_equal(first.rejects, second.rejects)


def test_online_retail_ii_workbook(tmp_path: Path) -> None:
    """Online Retail II: other column names, float customer ids, two sheets."""
    sheet_1 = pd.DataFrame(
        {
            "Invoice": ["489434", "489434"],
            "StockCode": ["85048", "79323P"],
            "Description": ["15CM CHRISTMAS GLASS BALL 20 LIGHTS", "PINK CHERRY LIGHTS"],
            "Quantity": [12, 12],
            "InvoiceDate": pd.to_datetime(["2009-12-01 07:45", "2009-12-01 07:45"]),
            "Price": [6.95, 6.75],
            "Customer ID": [13085.0, 13085.0],
            "Country": ["United Kingdom", "United Kingdom"],
        }
    )
    sheet_2 = sheet_1.iloc[:1].assign(Invoice="C536379", Quantity=-2, **{"Customer ID": np.nan})
    path = tmp_path / "online_retail_II.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        sheet_1.to_excel(writer, sheet_name="Year 2009-2010", index=False)
        sheet_2.to_excel(writer, sheet_name="Year 2010-2011", index=False)
    assert detect_format(path) == "online_retail"
    tables = read_online_retail(path)
    assert_canonical(tables, 3)
    events = by_id(tables.events)
    assert events.loc["489434:85048:0", "user_id"] == "13085"
    assert events.loc["489434:85048:0", "event_time"] == utc("2009-12-01 07:45")
    assert events.loc["C536379:85048:0", "event_type"] == "return"
    assert events.loc["C536379:85048:0", "user_id"] is None
    assert tables.catalog.set_index("product_id").loc["85048", "category"] == "christmas"


def test_online_retail_missing_columns_raise(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "InvoiceNo,StockCode,Quantity\n1,2,3")
    with pytest.raises(SchemaError, match="InvoiceDate"):
        read_online_retail(path)


# --------------------------------------------------------------------------- categories


@pytest.mark.parametrize(
    ("title", "category"),
    [
        ("JUMBO BAG RED RETROSPOT", "bags"),
        ("WHITE HANGING HEART T-LIGHT HOLDER", "candles & lighting"),
        ("PACK OF 72 RETROSPOT CAKE CASES", "kitchen & dining"),
        ("PAPER CHAIN KIT 50'S CHRISTMAS", "christmas"),
        ("CHOCOLATE HOT WATER BOTTLE", "textiles"),
        ("GLASS BEADS BRACELET", "jewellery & accessories"),
        ("BLUE DINER WALL CLOCK", "home decor"),
        ("SPACEBOY BIRTHDAY CARD", "party"),
        ("woodland charlotte bag", "bags"),
        ("FLY SWAT", OTHER),
        (None, OTHER),
    ],
)
def test_categorize(title: str | None, category: str) -> None:
    assert categorize(pd.Series([title])).iloc[0] == category
    assert category in CATEGORIES


# --------------------------------------------------------------------------- RetailRocket

RETAILROCKET_CSV = """
timestamp,visitorid,event,itemid,transactionid
1433221332117,257597,view,355908,
1433221332117,257597,view,355908,
1433221400000,257597,addtocart,355908,
1433223332117,257597,transaction,355908,4000
1433221500000,100,view,5,
1433221500000,100,click,5,
abc,100,view,5,
1433221600000,,view,5,
1433221700000,100,transaction,6,17.0
1433221700000,100,transaction,6,18
"""

ITEM_PROPERTIES_CSV = """
timestamp,itemid,property,value
1431226800000,355908,categoryid,1173
1433041200000,355908,categoryid,1200
1433041200000,355908,available,1
1431226800000,6,categoryid,42
"""


@pytest.fixture
def retailrocket(tmp_path: Path) -> SourceTables:
    write(tmp_path / "events.csv", RETAILROCKET_CSV)
    write(tmp_path / "item_properties_part1.csv", ITEM_PROPERTIES_CSV)
    return read_retailrocket(tmp_path / "events.csv")


def test_retailrocket_mapping(retailrocket: SourceTables) -> None:
    assert_canonical(retailrocket, 10)
    events = by_id(retailrocket.events)
    first = events.loc["1433221332117-257597-355908-view"]
    assert first["event_time"] == pd.Timestamp(1433221332117, unit="ms", tz="UTC")
    assert (first["user_id"], first["product_id"], first["event_type"]) == (
        "257597",
        "355908",
        "view",
    )
    assert first["quantity"] == 1 and np.isnan(first["unit_price"]) and first["order_id"] is None
    assert events.loc["1433221400000-257597-355908-addtocart", "event_type"] == "cart"
    purchase = events.loc["1433223332117-257597-355908-transaction"]
    assert (purchase["event_type"], purchase["order_id"]) == ("purchase", "4000")
    assert events.loc["1433221700000-100-6-transaction", "order_id"] == "17"
    # same key, other transaction: not a duplicate row, so numbered rather than rejected
    assert events.loc["1433221700000-100-6-transaction-1", "order_id"] == "18"


def test_retailrocket_sessions_split_after_30_minutes(retailrocket: SourceTables) -> None:
    sessions = by_id(retailrocket.events)["session_id"]
    assert sessions["1433221332117-257597-355908-view"] == "257597-1"
    assert sessions["1433221400000-257597-355908-addtocart"] == "257597-1"
    assert sessions["1433223332117-257597-355908-transaction"] == "257597-2"  # 32 min later
    assert sessions["1433221500000-100-5-view"] == sessions["1433221700000-100-6-transaction"]
    assert sessions["1433221500000-100-5-view"] == "100-1"


def test_retailrocket_rejects(retailrocket: SourceTables) -> None:
    assert retailrocket.notes["rejects_by_reason"] == {
        "duplicate_row": 1,
        "unknown_event_type": 1,
        "bad_type_event_time": 1,
        "missing_visitorid": 1,
    }
    records = [json.loads(r) for r in retailrocket.rejects[SOURCE_RECORD]]
    assert {r["event"] for r in records} == {"view", "click"}


def test_retailrocket_catalog_and_customers(retailrocket: SourceTables) -> None:
    catalog = retailrocket.catalog.set_index("product_id")
    assert catalog.loc["355908", "category"] == "category 1200"  # latest categoryid wins
    assert catalog.loc["6", "category"] == "category 42"
    assert catalog.loc["5", "category"] == "unknown"
    assert catalog.loc["5", "title"] == "item 5"
    customers = retailrocket.customers.set_index("user_id")
    assert list(customers.index) == ["257597", "100"]  # order of first appearance
    assert customers.loc["257597", "signup_time"] == pd.Timestamp(
        1433221332117, unit="ms", tz="UTC"
    )


def test_retailrocket_without_properties_has_unknown_categories(tmp_path: Path) -> None:
    tables = read_retailrocket(write(tmp_path / "events.csv", RETAILROCKET_CSV))
    assert set(tables.catalog["category"]) == {"unknown"}


# --------------------------------------------------------------------------- canonical

CANONICAL_HEADER = ",".join(EVENTS.names)
CANONICAL_CSV = f"""
{CANONICAL_HEADER}
e1,2024-03-01 10:00:00,u1,s1,view,p1,1,,,web
e2,2024-03-01T12:00:00+02:00,u1,s1,purchase,p1,2,9.5,o1,web
e3,yesterday,u2,s2,view,p2,1,,,app
e4,2024-03-01 10:05:00,u2,s2,cart,p2,two,3.0,,app
e5,2024-03-01 10:06:00,u2,s2,cart,p2,,3.0,,app
e6,2024-03-01 10:07:00,u2,s2,purchase,p2,1,n/a,o2,app
e7,2024-03-01 10:08:00,,s3,purchase,p2,1,4.0,o3,
e8,2024-03-01 10:09:00,u2,s2,purchase,p1,1.5,9.5,o4,app
e9,today,u2,s2,view,p1,1,,,app
"""


def test_canonical_single_file(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", CANONICAL_CSV)
    assert detect_format(path) == "canonical"
    tables = read_canonical(path)
    assert_canonical(tables, 9)
    events = by_id(tables.events)
    assert set(events.index) == {"e1", "e2", "e7"}
    assert events.loc["e1", "event_time"] == utc("2024-03-01 10:00")  # naive = UTC
    assert events.loc["e2", "event_time"] == utc("2024-03-01 10:00")  # +02:00 converted
    # naive after zoned: the +02:00 above must not leak into this row (a pandas pitfall)
    assert events.loc["e7", "event_time"] == utc("2024-03-01 10:08")
    assert events.loc["e7", "user_id"] is None and events.loc["e7", "channel"] is None
    assert np.isnan(events.loc["e1", "unit_price"])
    reasons = dict(
        zip(
            [json.loads(r)["event_id"] for r in tables.rejects[SOURCE_RECORD]],
            tables.rejects[QUARANTINE_REASON],
            strict=True,
        )
    )
    assert reasons == {
        "e3": "bad_type_event_time",
        "e4": "bad_type_quantity",
        "e5": "bad_type_quantity",
        "e6": "bad_type_unit_price",
        "e8": "bad_type_quantity",
        "e9": "bad_type_event_time",  # pandas would read "today" as the current time
    }
    # no side tables given: derived, and said so
    catalog = tables.catalog.set_index("product_id")
    assert catalog.loc["p1", "title"] == "product p1" and catalog.loc["p1", "price"] == 9.5
    assert catalog.loc["p1", "category"] == "unknown"
    assert list(tables.customers["user_id"]) == ["u1"]
    assert "derived" in str(tables.notes["catalog"]) and "derived" in str(tables.notes["customers"])


def test_canonical_folder_with_side_tables(tmp_path: Path) -> None:
    events = pd.DataFrame(
        {
            "event_id": ["a", "b"],
            "event_time": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 09:30"]),  # naive
            "user_id": ["u1", None],
            "session_id": ["s1", "s2"],
            "event_type": ["view", "purchase"],
            "product_id": [1, 2],  # ints in the file: become "1", "2"
            "quantity": [1, 3],
            "unit_price": [None, 5.0],
            "order_id": [None, "o1"],
            "channel": ["web", None],
        }
    )
    folder = tmp_path / "drop"
    (folder / "events").mkdir(parents=True)
    events.iloc[:1].to_parquet(folder / "events" / "part-0.parquet")
    events.iloc[1:].to_parquet(folder / "events" / "part-1.parquet")
    write(
        folder / "catalog.csv",
        "product_id,title,description,category,brand,price\n"
        "1,Mug,,kitchen,Acme,4.5\n2,Bag,A bag,bags,,cheap",
    )
    write(
        folder / "customers.csv",
        "user_id,signup_time,country,email_opt_in,sms_opt_in,push_opt_in\n"
        "u1,2023-12-01T00:00:00Z,DE,true,no,",
    )
    assert detect_format(folder) == "canonical"
    tables = read_canonical(folder)
    assert_canonical(tables, 2)
    assert list(tables.events["product_id"]) == ["1", "2"]
    assert tables.events["event_time"].iloc[0] == utc("2024-01-01 09:00")
    catalog = tables.catalog.set_index("product_id")
    assert catalog.loc["1", "brand"] == "Acme" and np.isnan(catalog.loc["2", "price"])
    assert tables.notes["catalog_values_set_null"] == {"bad_type_price": 1}
    customer = tables.customers.iloc[0]
    assert (customer["email_opt_in"], customer["sms_opt_in"]) == (True, False)
    assert pd.isna(customer["push_opt_in"])
    assert customer["signup_time"] == utc("2023-12-01")
    assert "catalog" not in tables.notes or "derived" not in str(tables.notes["catalog"])


def test_canonical_missing_columns_name_file_and_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "event_id,event_time,product_id\ne1,2024-01-01,p1")
    with pytest.raises(SchemaError, match=r"events\.csv.*'event_type'"):
        read_canonical(path)


def test_canonical_gzip_and_empty_folder(tmp_path: Path) -> None:
    plain = write(tmp_path / "plain.csv", CANONICAL_CSV)
    pd.read_csv(plain, dtype=str, keep_default_na=False).to_csv(
        tmp_path / "events.csv.gz", index=False
    )
    assert len(read_canonical(tmp_path / "events.csv.gz").events) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SchemaError, match="no events"):
        read_canonical(empty)


# --------------------------------------------------------------------------- detect_format


def test_detect_format(tmp_path: Path) -> None:
    assert detect_format(write(tmp_path / "retail.csv", ONLINE_RETAIL_CSV)) == "online_retail"
    rr = tmp_path / "rr"
    rr.mkdir()
    write(rr / "events.csv", RETAILROCKET_CSV)
    assert detect_format(rr) == "retailrocket"  # folder: its events.csv decides
    assert detect_format(rr / "events.csv") == "retailrocket"
    with pytest.raises(ValueError, match="unrecognised columns"):
        detect_format(write(tmp_path / "other.csv", "a,b,c\n1,2,3"))
    with pytest.raises(ValueError, match="no such file"):
        detect_format(tmp_path / "missing.csv")
