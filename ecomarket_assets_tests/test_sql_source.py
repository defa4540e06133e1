"""The `sql` source against a real PostgreSQL holding the simulated shop in WooCommerce's tables.

One throwaway server (pg_server.py) per module; the shop is written once by simulator/woocommerce.py and read
through the shipped mapping sql/woocommerce.yaml, or a variant of it that breaks one thing.
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.ingestion import assets, checks
from ecomarket_assets.ingestion.adapters.sql import SqlMappingError, load_mapping
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.simulator.shop import SimConfig, simulate
from ecomarket_assets.simulator.woocommerce import customer_ids, write_woocommerce
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets_tests.pg_server import (
    PgServer,
    server_for_tests,
)

pytestmark = pytest.mark.postgres

REPO_ROOT = Path(__file__).resolve().parents[1]
WOOCOMMERCE = REPO_ROOT / "sql" / "woocommerce.yaml"
SIM = SimConfig(n_users=400, n_products=50, n_days=14, start_date=dt.date(2025, 11, 10), seed=3)
DAYS = ("2025-11-17", "2025-11-20")  # first and last day materialized: purchases and returns
ALL_ASSETS = [assets.catalog, assets.customers, assets.reviews, assets.raw_events]
ALL_CHECKS = dg.load_asset_checks_from_modules([checks])


@pytest.fixture(scope="module")
def pg() -> PgServer:
    yield from server_for_tests(dbname="shop")


@pytest.fixture(scope="module")
def shop(pg: PgServer):
    """The simulated shop's canonical tables, and the database URL holding it as WooCommerce tables."""
    tables = simulate(SIM).tables
    url = pg.url.replace("postgresql://", "postgresql+psycopg2://")
    written = write_woocommerce(tables, url)
    assert written["wp_wc_order_product_lookup"] > 0 and written["wp_comments"] >= 0
    return tables, url


def resources(data_dir: Path, url: str, mapping: Path = WOOCOMMERCE) -> dict:
    return {"data_dir": DataDirResource(path=str(data_dir)), "compute": ComputeResource(),
            "source": ShopSourceResource(kind="sql", sql_url=url, sql_mapping=str(mapping))}


def materialize(res: dict, selection: list[str], **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([*ALL_ASSETS, *ALL_CHECKS], resources=res, selection=selection, **kwargs)


def failure(result: dg.ExecuteInProcessResult) -> str:
    return " ".join(str(e.event_specific_data.error) for e in result.get_step_failure_events())


def variant(tmp_path: Path, old: str, new: str, *more: str) -> Path:
    """The shipped mapping with texts replaced (pairs: old, new, old, new, ...)."""
    text = WOOCOMMERCE.read_text()
    pairs = [old, new, *more]
    for was, now in zip(pairs[::2], pairs[1::2], strict=True):
        assert text.count(was) == 1, was
        text = text.replace(was, now)
    path = tmp_path / "variant.yaml"
    path.write_text(text)
    return path


def canonical_orders(tables, day: str) -> pd.DataFrame:
    """The shop's purchases and returns of `day` as the database records them: once each, listed products."""
    events = tables.events.drop_duplicates("event_id")
    events = events[events["event_type"].isin(["purchase", "return"])
                    & events["product_id"].isin(tables.catalog["product_id"])
                    & events["event_time"].dt.strftime("%Y-%m-%d").eq(day)]
    return events.assign(user_id=customer_ids(events["user_id"]).astype(str))


def order_lines(frame: pd.DataFrame) -> list[tuple]:
    return sorted(zip(frame["event_type"], frame["user_id"], frame["product_id"], frame["quantity"].astype(int),
                      np.round(frame["unit_price"].astype(float), 2), strict=True))


def test_raw_events_from_woocommerce_equal_the_shops_purchases_and_returns(shop, tmp_path) -> None:
    tables, url = shop
    data_dir = tmp_path / "data"
    res = resources(data_dir, url)
    assert materialize(res, ["catalog", "customers", "reviews"]).success
    result = materialize(res, ["raw_events"], tags=partition_range_tags(*DAYS))
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    layout = DataLayout(data_dir)
    compared, returns = 0, 0
    for day in ("2025-11-17", "2025-11-18", "2025-11-19", "2025-11-20"):
        stored, expected = read_frame(layout.raw_events_day(day)), canonical_orders(tables, day)
        assert order_lines(stored) == order_lines(expected), day
        assert stored["quantity"].sum() == expected["quantity"].sum()
        revenue = (stored["quantity"] * stored["unit_price"]).sum()
        assert revenue == pytest.approx((expected["quantity"] * expected["unit_price"]).sum(), abs=0.01)
        compared, returns = compared + len(stored), returns + int(stored["event_type"].eq("return").sum())
    assert compared > 50 and returns >= 2
    customers = read_frame(layout.table("customers"))
    assert sorted(customers["user_id"]) == sorted(customer_ids(tables.customers["user_id"]).astype(str))
    catalog = read_frame(layout.table("catalog"))
    assert catalog.set_index("product_id")[["title", "category", "brand", "price"]].sort_index().equals(
        tables.catalog.set_index("product_id")[["title", "category", "brand", "price"]].sort_index())
    assert len(read_frame(layout.table("reviews"))) == len(tables.reviews)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["rows_read"].value == meta["rows_kept"].value + meta["rows_quarantined"].value


def test_an_unreachable_database_fails_the_run_naming_the_source_without_the_password(shop, tmp_path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg2://shopuser:Sup3r-s3cret@127.0.0.1:{port}/shop"
    result = materialize(resources(tmp_path / "data", url), ["catalog"], raise_on_error=False)
    assert not result.success
    message = failure(result)
    assert "sql source 'woocommerce'" in message and f"127.0.0.1:{port}" in message
    assert "cannot reach the database" in message
    assert "Connection refused" in message or "connection to server" in message  # the database's own words
    assert "Sup3r-s3cret" not in message and "***" in message


def test_a_failing_query_fails_the_run_and_writes_no_partial_day(shop, tmp_path) -> None:
    _, url = shop
    # Fails at run time from the fourth day on: the first days read fine, then the whole read is dropped.
    broken = variant(tmp_path, "quantity: ABS(product_qty)",
                     "quantity: CASE WHEN date_created_gmt >= '2025-11-13' THEN 1 / (product_qty - product_qty) "
                     "ELSE ABS(product_qty) END")
    data_dir = tmp_path / "data"
    res = resources(data_dir, url, broken)
    result = materialize(res, ["catalog"], raise_on_error=False)
    assert not result.success
    message = failure(result)
    assert "sql source 'woocommerce'" in message and "reading events of 2025-11-13 failed" in message
    assert "division by zero" in message
    staging = data_dir / "staging"
    assert not staging.exists() or not list(staging.glob("*/manifest.json"))  # nothing staged, no day of it
    assert not list(data_dir.rglob("*.parquet"))


def test_a_row_with_a_bad_value_is_quarantined_and_the_counts_add_up(shop, tmp_path) -> None:
    tables, url = shop
    day = "2025-11-12"
    first = tables.events[tables.events["event_time"].dt.strftime("%Y-%m-%d").eq(day)
                          & tables.events["event_type"].eq("purchase")].iloc[0]
    order = int(first["order_id"][1:]) + 1
    broken = variant(tmp_path, "quantity: ABS(product_qty)",
                     f"quantity: CASE WHEN order_id = {order} THEN 'lots' ELSE CAST(ABS(product_qty) AS TEXT) END",
                     "  # constants:\n  #   channel: web", "  constants:\n    channel: web")
    data_dir = tmp_path / "data"
    res = resources(data_dir, url, broken)
    assert materialize(res, ["catalog"]).success
    result = materialize(res, ["raw_events"], partition_key=day)
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    quarantine = read_frame(DataLayout(data_dir).quarantine_day("raw_events", day))
    bad = quarantine[quarantine["quarantine_reason"] == "bad_type_quantity"]
    assert len(bad) >= 1 and bad["source_record"].str.contains('"lots"').all()
    stored = read_frame(DataLayout(data_dir).raw_events_day(day))
    assert len(stored) and stored["channel"].eq("web").all()  # a constant of the mapping
    assert meta["rows_read"].value == meta["rows_kept"].value + meta["rows_quarantined"].value
    assert meta["rows_read"].value == len(canonical_orders(tables, day)) + _delisted(tables, day)


def _delisted(tables, day: str) -> int:
    events = tables.events.drop_duplicates("event_id")
    return int((events["event_type"].isin(["purchase", "return"]) & ~events["product_id"].isin(
        tables.catalog["product_id"]) & events["event_time"].dt.strftime("%Y-%m-%d").eq(day)).sum())


def test_a_mapping_with_an_unknown_key_is_refused_naming_the_file_and_field(tmp_path) -> None:
    typo = variant(tmp_path, "  columns:\n    event_id:", "  colums:\n    event_id:")
    with pytest.raises(SqlMappingError, match=r"variant\.yaml: events\.colums: unknown field"):
        load_mapping(typo)
    top = tmp_path / "top.yaml"
    top.write_text(WOOCOMMERCE.read_text() + "\norders:\n  table: wp_wc_orders\n")
    with pytest.raises(SqlMappingError, match=r"top\.yaml: orders: unknown field"):
        load_mapping(top)
    odd = variant(tmp_path, "    product_id: sku\n    quantity", "    product: sku\n    quantity")
    with pytest.raises(SqlMappingError, match=r"events\.columns\.product: not a column of the canonical events"):
        load_mapping(odd)
    assert load_mapping(WOOCOMMERCE).name == "woocommerce"


def test_new_orders_in_the_database_are_staged_anew_and_the_url_password_is_never_stored(shop, pg, tmp_path) -> None:
    _, url = shop
    layout = DataLayout(tmp_path / "data")
    source = ShopSourceResource(kind="sql", sql_url=url, sql_mapping=str(WOOCOMMERCE))
    before = source.staged(layout)
    assert source.staged(layout).root == before.root  # unchanged database: the same stage, not read again
    assert pg.password not in (before.root / "manifest.json").read_text()
    assert "***" in before.manifest["description"]
    late = dt.datetime(2025, 11, 30, 12, 0)  # a day after the simulated ones
    conn = pg.connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO wp_wc_orders VALUES (999999, 'wc-completed', 'shop_order', 0, 1, NULL, %s, 10)",
                        (late,))
            cur.execute("INSERT INTO wp_wc_order_product_lookup VALUES (999999, 999999, 1001, 0, 1, %s, 2, 10, 10)",
                        (late,))
        after = source.staged(layout)
        assert after.root != before.root and after.days()[-1] == "2025-11-30" not in before.days()
        assert after.events("2025-11-30")["quantity"].tolist() == [2]
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM wp_wc_order_product_lookup WHERE order_item_id = 999999")
            cur.execute("DELETE FROM wp_wc_orders WHERE id = 999999")
        conn.close()
