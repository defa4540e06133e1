"""Shopify admin exports (Orders, Customers, Products CSV) in, canonical tables out; the simulated shop round trip."""

import dataclasses
import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.ingestion import assets, checks
from ecomarket_assets.ingestion.adapters import detect_format, read_shopify
from ecomarket_assets.ingestion.adapters.shopify import pseudonym
from ecomarket_assets.ingestion.sources import staged_landing_file
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.schemas import SchemaError
from ecomarket_assets.simulator.export_shopify import email_of, shop_orders, write_shopify
from ecomarket_assets.simulator.shop import SimConfig, simulate
from ecomarket_assets.source_tables import SourceTables
from ecomarket_assets.storage import DataLayout, read_frame

# The Orders export as Shopify writes it (a subset of its columns, in its order): #1001 has two line items, the
# second row repeating only Name and the line columns; #1002 is refunded (offset -0500 crosses midnight UTC);
# #1003 is partially refunded by the total of its second line; #1004 is cancelled; #1005 a guest without email
# and without SKU; #1006 has a bad quantity on its first line and a good second line.
ORDERS = """\
Name,Email,Financial Status,Paid at,Fulfillment Status,Accepts Marketing,Currency,Subtotal,Total,Created at,\
Lineitem quantity,Lineitem name,Lineitem price,Lineitem compare at price,Lineitem sku,Lineitem requires shipping,\
Billing Name,Billing Country,Cancelled at,Refunded Amount,Id
#1001, Ana@Example.com ,paid,2025-11-03 14:02:15 +0100,fulfilled,yes,EUR,54.00,54.00,2025-11-03 14:02:11 +0100,\
2,Bamboo Toothbrush,12.00,,BT-01,true,Ana B,DE,,0.00,5001
#1001,,,,,,,,,,1,Linen Tote Bag,30.00,,TOTE-1,true,,,,,
#1002,bob@example.com,refunded,,fulfilled,no,EUR,20.00,20.00,2025-11-03 23:30:00 -0500,\
1,Steel Bottle,20.00,,BOT-1,true,Bob C,US,,20.00,5002
#1003,cara@example.com,partially_refunded,,fulfilled,no,EUR,42.00,42.00,2025-11-05 10:00:00 +0000,\
1,Bamboo Toothbrush,12.00,,BT-01,true,Cara D,GB,,30.00,5003
#1003,,,,,,,,,,1,Linen Tote Bag,30.00,,TOTE-1,true,,,,,
#1004,dan@example.com,voided,,,no,EUR,20.00,20.00,2025-11-05 11:00:00 +0000,\
1,Steel Bottle,20.00,,BOT-1,true,Dan E,FR,2025-11-05 12:00:00 +0000,,5004
#1005,,paid,,,no,EUR,13.50,13.50,2025-11-06 08:00:00 +0100,3,Soap Bar,4.50,,,true,,,,,5005
#1006,ana@example.com,paid,,,yes,EUR,32.00,32.00,2025-11-06 09:00:00 +0100,two,Steel Bottle,20.00,,BOT-1,true,,DE,,,5006
#1006,,,,,,,,,,1,Bamboo Toothbrush,12.00,,BT-01,true,,,,,
"""

# The older Customers export (Accepts Marketing, Country Code); the current one is what the writer produces.
CUSTOMERS = """\
First Name,Last Name,Email,Company,Address1,City,Province,Country,Country Code,Zip,Phone,Accepts Marketing,\
Accepts SMS Marketing,Total Spent,Total Orders,Tags,Note,Tax Exempt
Ana,B,ana@example.com,,,Berlin,,Germany,DE,10115,+4915112345678,yes,no,86.00,2,,,no
Bob,C,BOB@example.com ,,,Austin,TX,United States,US,73301,,no,yes,20.00,1,,,no
Phone,Only,,,,,,,GB,,+447700900123,no,yes,0.00,0,,,no
Ana,Again,ana@example.com,,,,,,DE,,,no,no,0.00,0,,,no
"""

# Products: T-shirt has two variants and an image-only row (Title, Body, Vendor, Type blank there).
PRODUCTS = """\
Handle,Title,Body (HTML),Vendor,Product Category,Type,Tags,Published,Option1 Name,Option1 Value,Variant SKU,\
Variant Price,Image Src,Image Position,Status
bamboo-toothbrush,Bamboo Toothbrush,"<p>Soft <strong>bamboo</strong> &amp; charcoal bristles.</p>",\
Greenly,,Bath,,true,Title,Default Title,BT-01,12.00,https://cdn/bt.jpg,1,active
organic-tee,Organic Tee,<ul><li>100% cotton</li></ul>,Greenly,,Clothing,,true,Size,S,TEE-S,25.00,https://cdn/t1.jpg,1,active
organic-tee,,,,,,,,,M,TEE-M,25.00,,,
organic-tee,,,,,,,,,,,,https://cdn/t2.jpg,2,
gift-card,Gift Card,,Greenly,,,,true,Title,Default Title,,abc,,,active
"""

SMALL = SimConfig(n_users=300, n_products=60, n_days=21, start_date=dt.date(2025, 11, 10), seed=3, glitch_share=0.0)
# 60 days: about a hundred returns, some of them in orders that are only partly refunded.
ROUND_TRIP = SimConfig(n_users=800, n_products=80, n_days=60, start_date=dt.date(2025, 10, 1), seed=11, glitch_share=0.0)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def user_ids(staged) -> set[str]:
    return {u for day in staged.days() for u in staged.events(day)["user_id"].dropna()}


def events_of(tables, kind: str) -> pd.DataFrame:
    return tables.events[tables.events["event_type"] == kind]


def test_orders_export_lines_carry_order_columns_down_and_refunds_become_returns(tmp_path: Path) -> None:
    tables = read_shopify(write(tmp_path / "orders_export_1.csv", ORDERS))
    purchases, returns = events_of(tables, "purchase"), events_of(tables, "return")
    ana = pseudonym("ana@example.com")
    tote = purchases[purchases["event_id"] == "#1001:TOTE-1:0"].iloc[0]
    assert tote["user_id"] == ana and tote["order_id"] == "#1001"  # carried down from the order's first row
    assert tote["event_time"] == pd.Timestamp("2025-11-03 13:02:11", tz="UTC")
    bob = purchases[purchases["order_id"] == "#1002"].iloc[0]
    assert bob["event_time"] == pd.Timestamp("2025-11-04 04:30:00", tz="UTC")  # -0500 is the next day in UTC
    assert sorted(returns["event_id"]) == ["#1002:BOT-1:0:return", "#1003:TOTE-1:0:return"]
    guest = purchases[purchases["order_id"] == "#1005"].iloc[0]
    assert guest["user_id"] is None and guest["product_id"] == "Soap Bar" and guest["quantity"] == 3
    assert set(purchases["order_id"]) == {"#1001", "#1002", "#1003", "#1005", "#1006"}
    assert len(purchases) == 7 and int(purchases["quantity"].sum()) == 10
    assert "ana@example.com" not in tables.events.to_csv()  # never the clear address
    reasons = tables.rejects["quarantine_reason"].tolist()
    assert sorted(reasons) == ["bad_type_quantity", "cancelled_order"]
    assert json.loads(tables.rejects.iloc[reasons.index("bad_type_quantity")]["source_record"])["Lineitem quantity"] == "two"
    counts = tables.notes["files"]["orders_export_1.csv"]
    assert counts["rows"] == 9 == counts["kept"] + counts["quarantined"] == len(purchases) + len(tables.rejects)
    assert counts["guest_lines"] == 1 and counts["returns"] == 2
    # one Orders file: catalog from the line items, customers from the emails (consent unknown)
    assert set(tables.catalog["product_id"]) == {"BT-01", "TOTE-1", "BOT-1", "Soap Bar"}
    assert len(tables.customers) == 3 and tables.customers["email_opt_in"].isna().all()
    assert tables.customers.set_index("user_id").loc[ana, "country"] == "Germany"


def test_a_partial_refund_no_lines_add_up_to_keeps_the_purchases_and_is_counted(tmp_path: Path) -> None:
    text = ORDERS.replace(",30.00,5003", ",7.50,5003")
    tables = read_shopify(write(tmp_path / "orders.csv", text))
    assert len(events_of(tables, "return")) == 1  # only the fully refunded order
    assert tables.notes["files"]["orders.csv"]["partial_refunds_unallocated"] == 1


def test_an_order_split_over_two_orders_files_keeps_its_order_columns(tmp_path: Path) -> None:
    header, *rows = ORDERS.splitlines()
    write(tmp_path / "shop" / "orders_export_1.csv", "\n".join([header, *rows[:1]]) + "\n")
    write(tmp_path / "shop" / "orders_export_2.csv", "\n".join([header, *rows[1:]]) + "\n")  # #1001's 2nd line
    tables = read_shopify(tmp_path / "shop")
    both = read_shopify(write(tmp_path / "one" / "orders.csv", ORDERS))
    pd.testing.assert_frame_equal(tables.events, both.events)
    files = tables.notes["files"]
    assert (files["orders_export_1.csv"]["rows"], files["orders_export_2.csv"]["rows"]) == (1, 8)
    assert files["orders_export_2.csv"]["rejects_by_reason"] == {"cancelled_order": 1, "bad_type_quantity": 1}
    assert sum(f["kept"] + f["quarantined"] for f in files.values()) == 9


def test_a_folder_of_the_three_exports(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    write(folder / "orders_export_1.csv", ORDERS)
    write(folder / "customers_export.csv", CUSTOMERS)
    write(folder / "products_export_1.csv", PRODUCTS)
    tables = read_shopify(folder)
    customers = tables.customers.set_index("user_id")
    ana, bob = pseudonym("ana@example.com"), pseudonym("bob@example.com")
    assert bool(customers.loc[ana, "email_opt_in"]) and not bool(customers.loc[ana, "sms_opt_in"])
    assert not bool(customers.loc[bob, "email_opt_in"]) and bool(customers.loc[bob, "sms_opt_in"])
    assert customers.loc[bob, "country"] == "United States"
    assert customers.loc[ana, "signup_time"] == pd.Timestamp("2025-11-03 13:02:11", tz="UTC")  # first order
    assert pseudonym("cara@example.com") in customers.index  # a buyer missing from the Customers export
    refused = tables.notes["table_rejects"]
    assert sorted(refused["customers"]["quarantine_reason"]) == ["duplicate_customer", "missing_email"]
    assert sorted(refused["catalog"]["quarantine_reason"]) == ["bad_type_price"]
    files = tables.notes["files"]
    assert files["customers_export.csv"]["rows"] == 4 == files["customers_export.csv"]["kept"] + 2
    products = files["products_export_1.csv"]
    assert products["rows"] == 5 == products["kept"] + products["image_rows"] + products["quarantined"]
    catalog = tables.catalog.set_index("product_id")
    assert catalog.loc["TEE-M", "title"] == "Organic Tee" and catalog.loc["TEE-M", "category"] == "clothing"
    assert catalog.loc["BT-01", "description"] == "Soft bamboo & charcoal bristles."
    assert catalog.loc["BT-01", "brand"] == "Greenly"
    assert {"TOTE-1", "BOT-1", "Soap Bar"} <= set(catalog.index)  # ordered but not in the Products export
    assert tables.notes["catalog_items_from_orders"] == 3


def test_an_export_with_renamed_columns_names_what_it_lacks(tmp_path: Path) -> None:
    renamed = ORDERS.replace("Lineitem quantity", "Quantity").replace("Financial Status", "Payment status", 1)
    with pytest.raises(SchemaError, match=r"lacks columns \['Financial Status', 'Lineitem quantity'\]"):
        read_shopify(write(tmp_path / "orders.csv", renamed))
    folder = tmp_path / "shop"
    write(folder / "orders.csv", ORDERS)
    write(folder / "products.csv", PRODUCTS.replace("Variant SKU", "SKU"))
    tables = read_shopify(folder)  # a bad side file is set aside for the file quarantine; the orders still count
    [unreadable] = tables.notes["unreadable_files"]
    assert "lacks columns ['Variant SKU']" in str(unreadable["error"])
    assert tables.notes["catalog"].startswith("derived")


def test_format_detection_and_a_landed_orders_file(tmp_path: Path) -> None:
    orders = write(tmp_path / "landing" / "orders_export_1.csv", ORDERS)
    assert detect_format(orders) == "shopify"
    assert detect_format(orders.parent) == "shopify"
    with pytest.raises(SchemaError, match="closest to Shopify Orders, which lacks \\['Lineitem sku'\\]"):
        detect_format(write(tmp_path / "other.csv", ORDERS.replace("Lineitem sku", "SKU")))
    staged = staged_landing_file(orders, tmp_path / "data")
    assert sum(d["events"] for d in staged.manifest["days"].values()) == 9  # 7 purchases, 2 returns


def test_the_pseudonym_key_is_a_setting_of_the_source_and_of_landed_files(tmp_path: Path) -> None:
    orders = write(tmp_path / "shop" / "orders_export_1.csv", ORDERS)
    layout = DataLayout(tmp_path / "data")
    keyed = ShopSourceResource(kind="shopify", path=str(orders.parent), pseudonym_key="our-secret")
    users = user_ids(keyed.staged(layout))
    assert users == {pseudonym(e, "our-secret") for e in ("ana@example.com", "bob@example.com", "cara@example.com")}
    default_users = user_ids(ShopSourceResource(kind="shopify", path=str(orders.parent)).staged(layout))
    assert pseudonym("ana@example.com") in default_users and not users & default_users
    landed = staged_landing_file(orders, tmp_path / "data", pseudonym_key="our-secret")
    assert user_ids(landed) == users


def test_the_simulated_shop_written_as_shopify_exports_reads_back_the_same(tmp_path: Path) -> None:
    canonical = simulate(ROUND_TRIP).tables
    paths = write_shopify(canonical, tmp_path / "shop")
    assert "partially_refunded" in set(pd.read_csv(paths["orders"])["Financial Status"])
    read = read_shopify(tmp_path / "shop")
    assert read.rejects.empty
    users = canonical.customers["user_id"]
    ids = dict(zip(users, email_of(users).map(pseudonym), strict=True))

    def summary(tables, rename) -> dict:
        out = {}
        for kind in ("purchase", "return"):
            e = events_of(tables, kind)
            lines = zip(e["user_id"].map(rename), e["product_id"], e["quantity"], e["order_id"].str.lstrip("#"),
                        strict=True)
            out[kind] = (len(e), int(e["quantity"].sum()), sorted(lines))
        bought = events_of(tables, "purchase")
        out["revenue"] = round(float((bought["quantity"] * bought["unit_price"]).sum()), 2)
        # Not the returns' value: a Shopify refund gives back what was paid, while the simulator prices a return
        # at its day's price; the reader's returns carry the purchase price.
        c = tables.customers
        out["customers"] = (len(c), int(c["email_opt_in"].sum()), int(c["sms_opt_in"].sum()),
                            sorted(zip(c["user_id"].map(rename), c["country"], strict=True)))
        out["catalog"] = sorted(zip(tables.catalog["product_id"], tables.catalog["title"], tables.catalog["price"],
                                    tables.catalog["category"], strict=True))
        return out

    assert summary(read, lambda u: u) == summary(canonical, ids.get)
    assert len(events_of(read, "return")) > 0
    # with the tracker's glitches (double-fired events, delisted products): the orders the shop booked
    glitchy = simulate(dataclasses.replace(ROUND_TRIP, glitch_share=0.002)).tables
    write_shopify(glitchy, tmp_path / "glitchy")
    booked = shop_orders(glitchy.events, glitchy.catalog)
    assert len(booked) < len(events_of(glitchy, "purchase")) + len(events_of(glitchy, "return"))
    again = read_shopify(tmp_path / "glitchy")
    assert summary(again, lambda u: u)["purchase"] == summary(SourceTables(booked), ids.get)["purchase"]


def test_raw_events_materialize_from_the_shopify_exports(tmp_path: Path) -> None:
    write_shopify(simulate(SMALL).tables, tmp_path / "shop")
    data_dir = tmp_path / "data"
    resources = {"data_dir": DataDirResource(path=str(data_dir)),
                 "source": ShopSourceResource(kind="shopify", path=str(tmp_path / "shop")),
                 "compute": ComputeResource()}
    defs = [assets.catalog, assets.customers, assets.reviews, assets.raw_events,
            *dg.load_asset_checks_from_modules([checks])]
    assert dg.materialize(defs, resources=resources, selection=["catalog", "customers", "reviews"]).success
    result = dg.materialize(defs, resources=resources, selection=["raw_events"],
                            tags=partition_range_tags("2025-11-10", "2025-11-12"))
    assert result.success
    layout = DataLayout(data_dir)
    staged = resources["source"].staged(layout)
    for day in ("2025-11-10", "2025-11-11", "2025-11-12"):
        stored = read_frame(layout.raw_events_day(day))
        assert len(stored) == staged.manifest["days"][day]["events"] > 0
        assert stored["user_id"].str.startswith("shop_").all()
    assert len(read_frame(layout.table("catalog"))) == SMALL.n_products
    # a later re-export of the first order, refunded since, lands under a name of its own
    orders = pd.read_csv(tmp_path / "shop" / "orders_export_1.csv", dtype=str, keep_default_na=False)
    first = orders[orders["Name"] == orders["Name"].iloc[0]].copy()
    first.loc[first.index[0], ["Financial Status", "Refunded Amount"]] = ["refunded", first["Total"].iloc[0]]
    layout.landing.mkdir(parents=True, exist_ok=True)
    first.to_csv(layout.landing / "orders_refunds_2025-11-20.csv", index=False)
    assert dg.materialize(defs, resources=resources, selection=["raw_events"], partition_key="2025-11-10").success
    kept = read_frame(layout.raw_events_day("2025-11-10"))
    quarantined = read_frame(layout.quarantine_day("raw_events", "2025-11-10"))
    name = first["Name"].iloc[0]
    assert (kept[kept["order_id"] == name]["event_type"].value_counts().to_dict()
            == {"purchase": len(first), "return": len(first)})  # each purchase once, and now its return
    assert quarantined["quarantine_reason"].tolist() == ["duplicate_event_id"] * len(first)
