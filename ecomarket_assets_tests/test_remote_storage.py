"""A data directory on object storage: the event-heavy assets read and write s3:// through fsspec.

The S3 API is moto's server on 127.0.0.1 (a real HTTP endpoint, started and stopped here); the Dask
workers reach it themselves, as cluster workers reach a bucket, so nothing goes through the test process.
"""

import os

import boto3
import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from ecomarket_assets import storage
from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.forecasting import assets as forecast_assets
from ecomarket_assets.defs.profiles import assets as profile_assets
from ecomarket_assets.defs.recommender import assets as rec_assets
from ecomarket_assets.forecasting.store import ForecastStore
from ecomarket_assets.profiles import activity as act
from ecomarket_assets.recommender.store import RecStore
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets_tests.conftest import SMALL_SIM
from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS, ALL_CHECKS

BUCKET = "ecomarket-test"
RANGE = {"dagster/asset_partition_range_start": SMALL_SIM["sim_start"],
         "dagster/asset_partition_range_end": "2025-11-30"}
EVERYTHING = [*ALL_ASSETS, *ALL_CHECKS, profile_assets.user_daily_activity, profile_assets.user_features,
              forecast_assets.demand_training_set, rec_assets.rec_candidates]
REC_CONFIG = {"ops": {"rec_candidates": {"config": {"window_days": 4, "per_generator": 20}}}}


@pytest.fixture(scope="module")
def s3_endpoint():
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env["AWS_ENDPOINT_URL"]
    server.stop()


def _objects(prefix: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_storage_round_trips_on_s3(s3_endpoint):
    root = storage.data_path(f"s3://{BUCKET}/unit")
    assert storage.is_remote(root) and not storage.is_remote(storage.data_path("/tmp/x"))
    table = pa.table({"user_id": ["a", "b", "c"], "value": [1.0, 2.5, None]})
    path = storage.write_table(table, root / "t" / "t.parquet")
    assert storage.read_arrow(path).equals(table) and storage.parquet_rows(path) == 3
    assert storage.parquet_rows(root / "missing.parquet") == 0
    storage.write_text(root / "notes" / "a.json", '{"ok": true}')
    assert (root / "notes" / "a.json").read_text() == '{"ok": true}'
    build = storage.new_build_dir(root / "folder")
    (build / "sub").mkdir()
    (build / "sub" / "x.txt").write_text("new")
    storage.write_text(root / "folder" / "stale.txt", "old")
    storage.replace_dir(build, root / "folder")
    assert sorted(_objects("unit/folder/")) == ["unit/folder/sub/x.txt"] and not build.exists()


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The same shop materialized on a local folder with the local engine."""
    root = tmp_path_factory.mktemp("local") / "data"
    _materialize(root, ComputeResource())
    return DataLayout(root)


def _materialize(root, compute: ComputeResource) -> dict:
    resources = {"data_dir": DataDirResource(path=str(root)), "source": ShopSourceResource(**SMALL_SIM),
                 "compute": compute}
    results = {}
    for selection, kwargs in ((["catalog", "customers", "reviews"], {}),
                              (["raw_events", "user_daily_activity"], {"tags": RANGE}),
                              (["user_features", "demand_training_set", "rec_candidates"], {"run_config": REC_CONFIG})):
        result = dg.materialize(EVERYTHING, resources=resources, selection=selection, **kwargs)
        assert result.success
        results |= {node: result.asset_materializations_for_node(node)[0].metadata for node in selection}
        results |= {f"check:{c.check_name}": c for c in result.get_asset_check_evaluations()}
    return results


def _outputs(layout: DataLayout) -> dict[str, pd.DataFrame]:
    days = layout.activity_days()
    rec = RecStore(layout)
    forecast = ForecastStore(layout)
    return {
        "catalog": read_frame(layout.table("catalog")),
        "raw_events": pd.concat([read_frame(layout.raw_events_day(d)) for d in days], ignore_index=True),
        "quarantine": pd.concat([read_frame(layout.quarantine_day("raw_events", d)) for d in days], ignore_index=True),
        "interactions": act.read_days(layout).interactions,
        "user_features": read_frame(layout.table("user_features")),
        "demand_panel": read_frame(forecast.panel_path),
        "demand_features": forecast.read_features(),
        "rec_serving": read_frame(rec.candidate_path("serving")),
        "rec_holdout": read_frame(rec.candidate_path("holdout")),
    }


@pytest.mark.slow  # ~90 s: a Dask cluster on an S3 server; make test-slow
def test_event_heavy_assets_on_s3_with_dask_workers(s3_endpoint, local_reference):
    # Its own cluster: workers started now inherit the S3 endpoint, as a cluster's workers get their credentials.
    compute = ComputeResource(engine="dask", workers=2, memory_limit="1536MiB")
    root = f"s3://{BUCKET}/shop"
    results = _materialize(root, compute)
    layout = DataLayout(root)
    assert storage.is_remote(layout.root)
    for asset in ("raw_events", "user_daily_activity", "user_features", "demand_training_set", "rec_candidates"):
        assert results[asset]["engine"].value == "dask", asset
    checks = {k: v for k, v in results.items() if k.startswith("check:")}
    assert len(checks) >= 10 and all(c.passed for c in checks.values())
    keys = _objects("shop/")
    assert any(k.startswith("shop/raw_events/date=") for k in keys)
    assert any(k.startswith("shop/user_daily_activity/interactions/date=") for k in keys)
    assert "shop/user_features/user_features.parquet" in keys
    assert not any(k.startswith(os.sep) for k in keys)
    expected, got = _outputs(local_reference), _outputs(layout)
    for name, frame in expected.items():
        assert len(got[name]) == len(frame) > 0, name
        pd.testing.assert_frame_equal(got[name], frame, check_dtype=False, rtol=1e-9, obj=name)
