"""Throughput of the `sql` source: a throwaway PostgreSQL (ecomarket_assets_tests/pg_server.py) holding WooCommerce
tables of N order lines spread over D days, read through the shipped mapping sql/woocommerce.yaml (every day's
query, the canonical coercion) and staged as day files, as `raw_events` reads them.

    .venv/bin/python benchmarks/sql_source.py [--lines 1000000] [--days 180]

The tables are filled by the database itself (generate_series), in WooCommerce's shape: two lines an order,
one in 20 refunded. The read runs in its own process so its peak resident memory is its own. Prints a table;
not a timed test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

FILL = """
INSERT INTO wp_wc_customer_lookup (customer_id, user_id, username, email, date_registered, country)
SELECT i, i, 'user' || i, 'user' || i || '@example.com', TIMESTAMP '2024-01-01' + i * INTERVAL '1 minute', 'Germany'
FROM generate_series(1, 20000) AS i;
INSERT INTO wp_posts (id, post_title, post_content, post_name, post_type, post_status)
SELECT 1000 + i, 'Product ' || i, 'A product', 'product-' || i, 'product', 'publish' FROM generate_series(1, 2000) AS i;
INSERT INTO wp_wc_product_meta_lookup (product_id, sku, min_price, max_price)
SELECT 1000 + i, 'P' || lpad(i::text, 5, '0'), 5 + i % 50, 5 + i % 50 FROM generate_series(1, 2000) AS i;
INSERT INTO wp_wc_orders (id, status, type, parent_order_id, customer_id, billing_email, date_created_gmt, total_amount)
SELECT o, 'wc-completed', CASE WHEN o % 20 = 0 THEN 'shop_order_refund' ELSE 'shop_order' END,
       CASE WHEN o % 20 = 0 THEN o - 1 ELSE 0 END, 1 + o % 20000, NULL,
       TIMESTAMP '2025-06-05' + (o::float / :orders) * :days * INTERVAL '1 day', 0
FROM generate_series(1, :orders) AS o;
INSERT INTO wp_wc_order_product_lookup (order_item_id, order_id, product_id, variation_id, customer_id, date_created,
                                        product_qty, product_net_revenue, product_gross_revenue)
SELECT i, 1 + (i - 1) / 2, 1001 + i % 2000, 0, 1 + ((1 + (i - 1) / 2) % 20000),
       TIMESTAMP '2025-06-05', CASE WHEN (1 + (i - 1) / 2) % 20 = 0 THEN -1 ELSE 1 + i % 3 END,
       CASE WHEN (1 + (i - 1) / 2) % 20 = 0 THEN -1 ELSE 1 END * (1 + i % 3) * (5 + i % 50), 0
FROM generate_series(1, :lines) AS i;
"""


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def read_and_stage(url: str, queue: mp.Queue) -> None:
    from ecomarket_assets.ingestion.adapters.sql import load_mapping, read_sql_source
    from ecomarket_assets.ingestion.staging import stage

    start = time.perf_counter()
    tables = read_sql_source(url, load_mapping(REPO_ROOT / "sql" / "woocommerce.yaml"))
    read = time.perf_counter() - start
    folder = Path(tempfile.mkdtemp(prefix="ecomarket-bench-sql-"))
    try:
        staged = stage(tables, folder / "stage")
        queue.put({"events": len(tables.events), "rejects": len(tables.rejects), "days": len(staged.days()),
                   "read_s": read, "seconds": time.perf_counter() - start, "peak_gb": _peak_rss_gb()})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000, help="order lines (events) in the database")
    parser.add_argument("--days", type=int, default=180)
    args = parser.parse_args()

    import sqlalchemy as sa

    from ecomarket_assets.simulator.woocommerce import _metadata
    from ecomarket_assets_tests.pg_server import postgres_server

    with postgres_server(dbname="shop") as pg:
        url = pg.url.replace("postgresql://", "postgresql+psycopg2://")
        engine = sa.create_engine(url)
        start = time.perf_counter()
        with engine.begin() as conn:
            _metadata().create_all(conn)
            params = {"lines": args.lines, "orders": (args.lines + 1) // 2, "days": args.days}
            for statement in FILL.split(";"):
                if statement.strip():
                    conn.execute(sa.text(statement), params)
            conn.execute(sa.text("CREATE INDEX ON wp_wc_orders (date_created_gmt)"))
            conn.execute(sa.text("ANALYZE"))
        engine.dispose()
        filled = time.perf_counter() - start
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=read_and_stage, args=(url, queue))
        proc.start()
        got = queue.get()
        proc.join()
    print(f"filled {args.lines:,} WooCommerce order lines over {args.days} days in {filled:.1f} s")
    print(f"{'case':<34}{'events':>12}{'days':>6}{'read s':>9}{'total s':>9}{'rows/s':>12}{'peak RSS GB':>13}")
    print(f"{'sql (PostgreSQL, woocommerce.yaml)':<34}{got['events'] + got['rejects']:>12,}{got['days']:>6}"
          f"{got['read_s']:>9.1f}{got['seconds']:>9.1f}{(got['events'] + got['rejects']) / got['seconds']:>12,.0f}"
          f"{got['peak_gb']:>13.2f}")


if __name__ == "__main__":
    main()
