"""Ingestion assets materialized on the real UCI Online Retail file (ten months, 2010-12 .. 2011-09)."""

import dagster as dg
import pandas as pd

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS, ALL_CHECKS, checks_by_name


def test_online_retail_week_reconciles_and_passes_checks(online_retail_file, data_dir):
    resources = {"data_dir": DataDirResource(path=str(data_dir)),
                 "source": ShopSourceResource(kind="online_retail", path=str(online_retail_file)),
                 "compute": ComputeResource()}
    layout = DataLayout(data_dir)
    tables = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], resources=resources, selection=["catalog", "customers", "reviews"])
    outcome = checks_by_name(tables)
    assert tables.success and outcome.pop("customers_consent_known") is False  # WARN: the file has no consent
    assert all(outcome.values())
    staged = resources["source"].staged(layout)
    catalog = read_frame(layout.table("catalog"))
    assert 3000 < len(catalog) < 5000  # distinct product stock codes in ten months
    assert (catalog["category"] != "other").mean() > 0.6
    customers = read_frame(layout.table("customers"))
    assert 3000 < len(customers) < 5000 and customers["email_opt_in"].isna().all()  # consent unknown

    tags = partition_range_tags("2010-12-01", "2010-12-07")
    week = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], resources=resources, selection=["raw_events"], tags=tags)
    assert week.success and all(checks_by_name(week).values())
    meta = week.get_asset_materialization_events()[0].materialization.metadata
    manifest_days = staged.manifest["days"]
    week_days = [d for d in manifest_days if "2010-12-01" <= d <= "2010-12-07"]
    read_expected = sum(manifest_days[d]["events"] + manifest_days[d]["rejects"] for d in week_days)
    assert meta["rows_read"].value == read_expected == meta["rows_kept"].value + meta["rows_quarantined"].value

    kept = pd.concat([read_frame(layout.raw_events_day(d)) for d in week_days])
    quarantined = pd.concat([read_frame(layout.quarantine_day("raw_events", d)) for d in week_days])
    reasons = set(quarantined["quarantine_reason"])
    assert {"non_product_line", "duplicate_row"} <= reasons
    assert {"purchase", "return"} <= set(kept["event_type"])
    assert kept["user_id"].isna().any()  # guest checkouts are kept, without a user
    assert kept["event_time"].dt.tz is not None
    # 2010-12-01 08:26 London (GMT in winter) is 08:26 UTC
    assert kept["event_time"].min() == pd.Timestamp("2010-12-01 08:26", tz="UTC")
    # 2010-12-05 is a Sunday: the shop sold then, and Saturdays are absent in this data
    assert "2010-12-04" not in week_days
