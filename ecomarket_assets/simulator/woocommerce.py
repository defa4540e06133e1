"""Write the simulated shop into a database as WooCommerce keeps a shop (the `sql` source's test bed and demo).

The tables are a small, faithful subset of WooCommerce's own (HPOS order tables and the analytics lookup
tables), with the columns the shipped mapping `sql/woocommerce.yaml` reads:

    wp_wc_orders                 id, status, type (shop_order | shop_order_refund), parent_order_id, customer_id,
                                 billing_email, date_created_gmt, total_amount
    wp_wc_order_product_lookup   order_item_id, order_id, product_id, variation_id, customer_id, date_created,
                                 product_qty, product_net_revenue, product_gross_revenue (negative on refunds)
    wp_wc_customer_lookup        customer_id, user_id, username, email, date_registered, country
    wp_posts                     ID (as id: unquoted, it reads the same in MySQL and PostgreSQL), post_title, post_content, post_name, post_type (product), post_status
    wp_wc_product_meta_lookup    product_id, sku, min_price, max_price
    wp_terms, wp_term_taxonomy, wp_term_relationships   product_cat (category) and product_brand (brand)
    wp_comments, wp_commentmeta  product reviews (comment_type review) and their `rating`

Only what a shop's database records is written: purchases (one order per simulated order, one lookup row per
line) and returns (a refund order per returned line, quantities and revenue negative, its parent the purchase's
order). Views and carts live in the site's analytics, not in WooCommerce. Each SKU is the simulated product id;
customer and WordPress user ids are the simulated user number + 1 (`customer_ids`). A double-fired tracker
event is written once; a line of a delisted product keeps a product id no product has (0). Times are UTC
(`*_gmt`; the lookup's `date_created` is kept in UTC too). Consent is not part of WooCommerce: it comes from
consent files.

    python -m ecomarket_assets.simulator.woocommerce postgresql://user:password@host/db --users 3000 --days 180
"""

from __future__ import annotations

import argparse
import datetime as dt
import os

import numpy as np
import pandas as pd

from ecomarket_assets.simulator.shop import DEFAULT_START, SimConfig, simulate
from ecomarket_assets.source_tables import SourceTables

REFUND_ID_BASE = 100_000_000  # refund orders share the order id space; they start here


def customer_ids(user_ids: pd.Series) -> pd.Series:
    """WooCommerce customer (and WordPress user) id of a simulated user id: U0000017 -> 18."""
    return user_ids.str[1:].astype(np.int64) + 1


def _number(ids: pd.Series) -> pd.Series:
    return ids.str[1:].astype(np.int64)


def _naive(times: pd.Series) -> list:
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return [None if pd.isna(v) else v.to_pydatetime() for v in naive]


def _metadata():
    import sqlalchemy as sa

    md = sa.MetaData()
    big, text, stamp, money = sa.BigInteger, sa.Text, sa.DateTime, sa.Numeric(19, 4)
    sa.Table("wp_wc_orders", md, sa.Column("id", big, primary_key=True, autoincrement=False),
             sa.Column("status", sa.String(20)), sa.Column("type", sa.String(20)),
             sa.Column("parent_order_id", big), sa.Column("customer_id", big), sa.Column("billing_email", text),
             sa.Column("date_created_gmt", stamp), sa.Column("total_amount", money))
    sa.Table("wp_wc_order_product_lookup", md,
             sa.Column("order_item_id", big, primary_key=True, autoincrement=False), sa.Column("order_id", big),
             sa.Column("product_id", big), sa.Column("variation_id", big), sa.Column("customer_id", big),
             sa.Column("date_created", stamp), sa.Column("product_qty", sa.Integer),
             sa.Column("product_net_revenue", money), sa.Column("product_gross_revenue", money))
    sa.Table("wp_wc_customer_lookup", md, sa.Column("customer_id", big, primary_key=True, autoincrement=False),
             sa.Column("user_id", big), sa.Column("username", text), sa.Column("email", text),
             sa.Column("date_registered", stamp), sa.Column("country", text))
    sa.Table("wp_posts", md, sa.Column("id", big, primary_key=True, autoincrement=False),
             sa.Column("post_title", text), sa.Column("post_content", text), sa.Column("post_name", text),
             sa.Column("post_type", sa.String(20)), sa.Column("post_status", sa.String(20)))
    sa.Table("wp_wc_product_meta_lookup", md, sa.Column("product_id", big, primary_key=True, autoincrement=False),
             sa.Column("sku", text), sa.Column("min_price", money), sa.Column("max_price", money))
    sa.Table("wp_terms", md, sa.Column("term_id", big, primary_key=True, autoincrement=False),
             sa.Column("name", text), sa.Column("slug", text))
    sa.Table("wp_term_taxonomy", md, sa.Column("term_taxonomy_id", big, primary_key=True, autoincrement=False),
             sa.Column("term_id", big), sa.Column("taxonomy", sa.String(32)))
    sa.Table("wp_term_relationships", md, sa.Column("object_id", big, primary_key=True, autoincrement=False),
             sa.Column("term_taxonomy_id", big, primary_key=True, autoincrement=False))
    sa.Table("wp_comments", md, sa.Column("comment_id", big, primary_key=True, autoincrement=False),
             sa.Column("comment_post_id", big), sa.Column("comment_author_email", text),
             sa.Column("comment_date_gmt", stamp), sa.Column("comment_content", text),
             sa.Column("comment_approved", sa.String(20)), sa.Column("comment_type", sa.String(20)),
             sa.Column("user_id", big))
    sa.Table("wp_commentmeta", md, sa.Column("meta_id", big, primary_key=True, autoincrement=False),
             sa.Column("comment_id", big), sa.Column("meta_key", text), sa.Column("meta_value", text))
    return md


def woocommerce_rows(tables: SourceTables) -> dict[str, pd.DataFrame]:
    """The WooCommerce tables of a simulated shop, as frames (see the module docstring)."""
    events = tables.events.drop_duplicates("event_id", keep="first")
    catalog = tables.catalog.reset_index(drop=True)
    post_id = pd.Series(np.arange(1, len(catalog) + 1, dtype=np.int64) + 1000, index=catalog["product_id"])
    customers = tables.customers
    cust = customer_ids(customers["user_id"])
    email = customers["user_id"].str.lower() + "@example.com"

    purchases = events[events["event_type"] == "purchase"].reset_index(drop=True)
    returns = events[events["event_type"] == "return"].reset_index(drop=True)
    purchase_order = _number(purchases["order_id"]) + 1
    refund_order = pd.Series(np.arange(len(returns), dtype=np.int64) + REFUND_ID_BASE)
    parent = _number(returns["order_id"]) + 1

    def product_ids(frame: pd.DataFrame) -> np.ndarray:
        return frame["product_id"].map(post_id).fillna(0).astype(np.int64).to_numpy()

    lines = pd.concat([
        pd.DataFrame({"order_id": purchase_order, "product_id": product_ids(purchases),
                      "customer_id": customer_ids(purchases["user_id"]), "date_created": purchases["event_time"],
                      "product_qty": purchases["quantity"].astype(np.int64),
                      "product_net_revenue": (purchases["quantity"] * purchases["unit_price"]).round(4)}),
        pd.DataFrame({"order_id": refund_order, "product_id": product_ids(returns),
                      "customer_id": customer_ids(returns["user_id"]), "date_created": returns["event_time"],
                      "product_qty": -returns["quantity"].astype(np.int64),
                      "product_net_revenue": -(returns["quantity"] * returns["unit_price"]).round(4)}),
    ], ignore_index=True)
    lines.insert(0, "order_item_id", np.arange(1, len(lines) + 1, dtype=np.int64))
    lines.insert(3, "variation_id", 0)
    lines["product_gross_revenue"] = lines["product_net_revenue"]
    by_order = lines.groupby("order_id", sort=True).agg(
        customer_id=("customer_id", "first"), date_created_gmt=("date_created", "min"),
        total_amount=("product_net_revenue", "sum")).reset_index().rename(columns={"order_id": "id"})
    is_refund = by_order["id"] >= REFUND_ID_BASE
    by_order["type"] = np.where(is_refund, "shop_order_refund", "shop_order")
    by_order["status"] = "wc-completed"
    refund_parent = pd.Series(parent.to_numpy(), index=refund_order.to_numpy())
    by_order["parent_order_id"] = by_order["id"].map(refund_parent).fillna(0).astype(np.int64)
    mail = pd.Series(email.to_numpy(), index=cust.to_numpy())
    by_order["billing_email"] = by_order["customer_id"].map(mail)
    orders = by_order[["id", "status", "type", "parent_order_id", "customer_id", "billing_email",
                       "date_created_gmt", "total_amount"]]

    customer_rows = pd.DataFrame({"customer_id": cust, "user_id": cust, "username": customers["user_id"].str.lower(),
                                  "email": email, "date_registered": customers["signup_time"],
                                  "country": customers["country"]})
    posts = pd.DataFrame({"id": post_id.to_numpy(), "post_title": catalog["title"],
                          "post_content": catalog["description"],
                          "post_name": catalog["product_id"].str.lower(), "post_type": "product",
                          "post_status": "publish"})
    meta = pd.DataFrame({"product_id": post_id.to_numpy(), "sku": catalog["product_id"],
                         "min_price": catalog["price"], "max_price": catalog["price"]})
    term_rows, relations = [], []
    for taxonomy, column in (("product_cat", "category"), ("product_brand", "brand")):
        names = sorted(catalog[column].dropna().unique())
        ids = {name: len(term_rows) + i + 1 for i, name in enumerate(names)}
        term_rows += [(tid, name, taxonomy) for name, tid in ids.items()]
        known = catalog[column].notna()
        relations.append(pd.DataFrame({"object_id": post_id.to_numpy()[known.to_numpy()],
                                       "term_taxonomy_id": catalog.loc[known, column].map(ids).to_numpy()}))
    terms = pd.DataFrame(term_rows, columns=["term_id", "name", "taxonomy"])
    reviews = tables.reviews.reset_index(drop=True)
    comment_id = np.arange(1, len(reviews) + 1, dtype=np.int64)
    comments = pd.DataFrame({"comment_id": comment_id, "comment_post_id": reviews["product_id"].map(post_id)
                             .fillna(0).astype(np.int64), "comment_author_email":
                             reviews["user_id"].str.lower() + "@example.com", "comment_date_gmt":
                             reviews["review_time"], "comment_content": reviews["text"], "comment_approved": "1",
                             "comment_type": "review", "user_id": customer_ids(reviews["user_id"])})
    return {
        "wp_wc_orders": orders,
        "wp_wc_order_product_lookup": lines,
        "wp_wc_customer_lookup": customer_rows,
        "wp_posts": posts,
        "wp_wc_product_meta_lookup": meta,
        "wp_terms": pd.DataFrame({"term_id": terms["term_id"], "name": terms["name"],
                                  "slug": terms["name"].str.lower().str.replace(" ", "-")}),
        "wp_term_taxonomy": pd.DataFrame({"term_taxonomy_id": terms["term_id"], "term_id": terms["term_id"],
                                          "taxonomy": terms["taxonomy"]}),
        "wp_term_relationships": pd.concat(relations, ignore_index=True),
        "wp_comments": comments,
        "wp_commentmeta": pd.DataFrame({"meta_id": comment_id, "comment_id": comment_id, "meta_key": "rating",
                                        "meta_value": reviews["rating"].astype(str)}),
    }


def _records(frame: pd.DataFrame) -> list[dict]:
    out = {}
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[column] = _naive(values)
        elif pd.api.types.is_integer_dtype(values):
            out[column] = [int(v) for v in values]
        elif pd.api.types.is_float_dtype(values):
            out[column] = [None if np.isnan(v) else float(v) for v in values]
        else:
            out[column] = [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]
    return [dict(zip(out, row, strict=True)) for row in zip(*out.values(), strict=True)]


def write_woocommerce(tables: SourceTables, url: str) -> dict[str, int]:
    """Drop and re-create the WooCommerce tables at `url`, filled with the shop; rows written per table."""
    import sqlalchemy as sa

    md = _metadata()
    rows = woocommerce_rows(tables)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            md.drop_all(conn)
            md.create_all(conn)
            for name, frame in rows.items():
                if len(frame):
                    conn.execute(md.tables[name].insert(), _records(frame))
    finally:
        engine.dispose()
    return {name: len(frame) for name, frame in rows.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the simulated shop as WooCommerce tables.")
    parser.add_argument("url", nargs="?", default=os.environ.get("ECOMARKET_SQL_URL", ""),
                        help="SQLAlchemy URL (default: $ECOMARKET_SQL_URL)")
    parser.add_argument("--users", type=int, default=SimConfig.n_users)
    parser.add_argument("--products", type=int, default=SimConfig.n_products)
    parser.add_argument("--days", type=int, default=SimConfig.n_days)
    parser.add_argument("--start", default=DEFAULT_START.isoformat())
    parser.add_argument("--seed", type=int, default=SimConfig.seed)
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give the database URL (or set ECOMARKET_SQL_URL)")
    cfg = SimConfig(n_users=args.users, n_products=args.products, n_days=args.days,
                    start_date=dt.date.fromisoformat(args.start), seed=args.seed)
    written = write_woocommerce(simulate(cfg).tables, args.url)
    print(", ".join(f"{name}: {n}" for name, n in written.items()))


if __name__ == "__main__":
    main()
