"""Write the simulated shop as the three Shopify admin exports: orders, customers and products CSV.

    .venv/bin/python -m ecomarket_assets.simulator.export_shopify OUT_DIR [--users 3000 --products 400 --days 180]

`OUT_DIR/orders_export_1.csv`, `customers_export.csv` and `products_export_1.csv`, in the columns and forms
Shopify writes (see ingestion/adapters/shopify.py and docs/connect-shopify.md): one row per line item with the
order-level columns only on an order's first row, `Created at` in the shop's zone with its offset
(Europe/Berlin), `Financial Status` `refunded` when every line of the order was returned, `partially_refunded`
with the `Refunded Amount` of the returned lines otherwise; a product row plus an image-only row per product.
A simulated customer's address is `<user_id>@shop.example`, so `pseudonym(email)` maps the canonical user ids
to the ones the reader gives. Views, carts and reviews have no place in these exports and are left out; so are
the simulated tracker's glitches (a double-fired event, an event naming a delisted product), which the canonical
run quarantines and a shop's order book never holds (`shop_orders`). `ECOMARKET_SOURCE=shopify
ECOMARKET_SOURCE_PATH=OUT_DIR` then runs the graph on the files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
from pathlib import Path

import numpy as np
import pandas as pd

from ecomarket_assets.ingestion.adapters.shopify import CODES
from ecomarket_assets.simulator.shop import SimConfig, simulate
from ecomarket_assets.source_tables import SourceTables

SHOP_ZONE = "Europe/Berlin"
EMAIL_DOMAIN = "shop.example"
ORDER_COLUMNS = (
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at", "Accepts Marketing",
    "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code", "Discount Amount", "Shipping Method",
    "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem compare at price",
    "Lineitem sku", "Lineitem requires shipping", "Lineitem taxable", "Lineitem fulfillment status",
    "Billing Name", "Billing Country", "Shipping Country", "Notes", "Cancelled at", "Payment Method",
    "Refunded Amount", "Vendor", "Id", "Tags", "Source",
)
ORDER_LEVEL = ("Email", "Financial Status", "Paid at", "Fulfillment Status", "Accepts Marketing", "Currency",
               "Subtotal", "Shipping", "Taxes", "Total", "Discount Amount", "Created at", "Billing Country",
               "Shipping Country", "Cancelled at", "Payment Method", "Refunded Amount", "Id", "Source")
CUSTOMER_COLUMNS = (
    "Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing", "Default Address Company",
    "Default Address Address1", "Default Address City", "Default Address Country Code", "Default Address Zip",
    "Phone", "Accepts SMS Marketing", "Total Spent", "Total Orders", "Note", "Tax Exempt", "Tags", "Created at",
)
PRODUCT_COLUMNS = (
    "Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags", "Published", "Option1 Name",
    "Option1 Value", "Variant SKU", "Variant Grams", "Variant Inventory Policy", "Variant Fulfillment Service",
    "Variant Price", "Variant Compare At Price", "Variant Requires Shipping", "Variant Taxable", "Image Src",
    "Image Position", "Status",
)


def email_of(user_ids: pd.Series) -> pd.Series:
    """The address a simulated customer has in the exports (None for a guest)."""
    return (user_ids.str.lower() + "@" + EMAIL_DOMAIN).astype(object).where(user_ids.notna(), None)


def _shop_time(times: pd.Series) -> pd.Series:
    return times.dt.tz_convert(SHOP_ZONE).dt.strftime("%Y-%m-%d %H:%M:%S %z")


def shop_orders(events: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """The purchases and returns the shop booked: the tracker's double-fired and delisted-product events left out."""
    booked = events[events["event_type"].isin(["purchase", "return"])]
    return booked[~booked["event_id"].duplicated() & booked["product_id"].isin(catalog["product_id"])]


def orders_csv(events: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """Purchases as Orders export rows; the returns decide each order's financial status."""
    events = shop_orders(events, catalog)
    lines = events[events["event_type"] == "purchase"].sort_values(["event_time", "order_id"], kind="stable")
    lines = lines.reset_index(drop=True)
    returns = events[events["event_type"] == "return"]
    returned = pd.MultiIndex.from_frame(returns[["order_id", "product_id"]])
    is_returned = pd.MultiIndex.from_frame(lines[["order_id", "product_id"]]).isin(returned)
    total = (lines["quantity"] * lines["unit_price"]).round(2)
    by_order = lines.assign(total=total, back=np.where(is_returned, total, 0.0), n_back=is_returned).groupby(
        "order_id", sort=False)
    back = by_order["back"].transform("sum").round(2)
    all_back = by_order["n_back"].transform("sum") == by_order["n_back"].transform("size")
    status = np.select([all_back, back > 0], ["refunded", "partially_refunded"], "paid")
    created = _shop_time(lines["event_time"])
    out = pd.DataFrame({c: "" for c in ORDER_COLUMNS}, index=lines.index)
    out["Name"] = "#" + lines["order_id"]
    out["Email"] = email_of(lines["user_id"]).fillna("")
    out["Financial Status"] = status
    out["Paid at"] = created
    out["Fulfillment Status"] = "fulfilled"
    out["Accepts Marketing"] = "no"
    out["Currency"] = "EUR"
    out["Subtotal"] = out["Total"] = by_order["total"].transform("sum").map("{:.2f}".format)
    out["Shipping"] = out["Taxes"] = out["Discount Amount"] = "0.00"
    out["Created at"] = created
    out["Lineitem quantity"] = lines["quantity"].astype(str)
    out["Lineitem name"] = lines["product_id"].map(catalog.set_index("product_id")["title"]).fillna(lines["product_id"])
    out["Lineitem price"] = lines["unit_price"].map("{:.2f}".format)
    out["Lineitem sku"] = lines["product_id"]
    out["Lineitem requires shipping"] = out["Lineitem taxable"] = "true"
    out["Lineitem fulfillment status"] = "fulfilled"
    out["Payment Method"] = "Shopify Payments"
    out["Refunded Amount"] = back.map("{:.2f}".format)
    out["Id"] = lines["order_id"].str.lstrip("O")
    out["Source"] = lines["channel"].fillna("web")
    extra = lines["order_id"].duplicated()
    out.loc[extra, list(ORDER_LEVEL)] = ""
    return out


def customers_csv(customers: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({c: "" for c in CUSTOMER_COLUMNS}, index=customers.index)
    out["Customer ID"] = customers["user_id"].str.lstrip("U")
    out["Email"] = email_of(customers["user_id"])
    out["Accepts Email Marketing"] = customers["email_opt_in"].map({True: "yes", False: "no"}).fillna("")
    out["Accepts SMS Marketing"] = customers["sms_opt_in"].map({True: "yes", False: "no"}).fillna("")
    out["Default Address Country Code"] = customers["country"].map(CODES).fillna(customers["country"]).fillna("")
    out["Tax Exempt"] = "no"
    out["Created at"] = _shop_time(customers["signup_time"])
    return out


def products_csv(catalog: pd.DataFrame) -> pd.DataFrame:
    """A product row (its only variant) and an image-only row per product."""
    handle = catalog["product_id"].str.lower()
    rows = pd.DataFrame({c: "" for c in PRODUCT_COLUMNS}, index=catalog.index)
    rows["Handle"] = handle
    rows["Title"] = catalog["title"]
    rows["Body (HTML)"] = catalog["description"].map(lambda d: f"<p>{html.escape(d)}</p>" if isinstance(d, str) else "")
    rows["Vendor"] = catalog["brand"].fillna("")
    rows["Type"] = catalog["category"]
    rows["Published"] = "true"
    rows["Option1 Name"], rows["Option1 Value"] = "Title", "Default Title"
    rows["Variant SKU"] = catalog["product_id"]
    rows["Variant Inventory Policy"], rows["Variant Fulfillment Service"] = "deny", "manual"
    rows["Variant Price"] = catalog["price"].map(lambda p: f"{p:.2f}" if pd.notna(p) else "")
    rows["Variant Requires Shipping"] = rows["Variant Taxable"] = "true"
    rows["Image Src"] = "https://cdn.shop.example/" + handle + "-1.jpg"
    rows["Image Position"] = "1"
    rows["Status"] = "active"
    images = pd.DataFrame({c: "" for c in PRODUCT_COLUMNS}, index=catalog.index)
    images["Handle"] = handle
    images["Image Src"] = "https://cdn.shop.example/" + handle + "-2.jpg"
    images["Image Position"] = "2"
    both = pd.concat([rows.assign(_n=0), images.assign(_n=1)]).sort_index(kind="stable")
    return both.sort_values(["Handle", "_n"], kind="stable").drop(columns="_n")


def write_shopify(tables: SourceTables, out_dir: str | Path) -> dict[str, Path]:
    """The three exports of `tables` in `out_dir` (created); returns their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"orders": out / "orders_export_1.csv", "customers": out / "customers_export.csv",
             "products": out / "products_export_1.csv"}
    orders_csv(tables.events, tables.catalog).to_csv(paths["orders"], index=False)
    customers_csv(tables.customers).to_csv(paths["customers"], index=False)
    products_csv(tables.catalog).to_csv(paths["products"], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--users", type=int, default=SimConfig.n_users)
    parser.add_argument("--products", type=int, default=SimConfig.n_products)
    parser.add_argument("--days", type=int, default=SimConfig.n_days)
    parser.add_argument("--start", default=SimConfig.start_date.isoformat())
    parser.add_argument("--seed", type=int, default=SimConfig.seed)
    args = parser.parse_args()
    cfg = SimConfig(n_users=args.users, n_products=args.products, n_days=args.days,
                    start_date=dt.date.fromisoformat(args.start), seed=args.seed)
    for kind, path in write_shopify(simulate(cfg).tables, args.out_dir).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
