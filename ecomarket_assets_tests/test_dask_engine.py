"""The `dask` engine gives the same rows and values as `local`, on a LocalCluster with 2 worker processes."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from ecomarket_assets.compute import ComputeResource, Engine
from ecomarket_assets.defs.forecasting import assets as forecast_assets
from ecomarket_assets.defs.profiles import assets as profile_assets
from ecomarket_assets.forecasting.panel import (
    EVENT_COLUMNS,
    event_day_paths,
    product_day_aggregates,
)
from ecomarket_assets.forecasting.store import ForecastStore
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets_tests.conftest import SMALL_SIM
from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS

FLOAT_TOLERANCE = 1e-9  # sums and medians of the same floats; only the summation order may differ
RANGE = {ASSET_PARTITION_RANGE_START_TAG: SMALL_SIM["sim_start"], ASSET_PARTITION_RANGE_END_TAG: "2025-11-30"}


@pytest.fixture(scope="module")
def cluster():
    with ComputeResource(engine="dask", workers=2).session() as engine:
        yield engine


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    from ecomarket_assets.resources import DataDirResource, ShopSourceResource

    root = tmp_path_factory.mktemp("dask") / "data"
    resources = {"data_dir": DataDirResource(path=str(root)), "source": ShopSourceResource(**SMALL_SIM)}
    assert dg.materialize(ALL_ASSETS, resources=resources, selection=["catalog", "customers", "reviews"]).success
    assert dg.materialize(ALL_ASSETS, resources=resources, selection=["raw_events"], tags=RANGE).success
    activity = [profile_assets.user_daily_activity]
    assert dg.materialize([*ALL_ASSETS, *activity], resources=resources, selection=["user_daily_activity"],
                          tags=RANGE).success
    return resources, DataLayout(root)


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.astype({k: "object" for k in keys if frame[k].dtype != "datetime64[us, UTC]"}).sort_values(
        keys, ignore_index=True)


def test_product_day_aggregates_agree(ingested, cluster):
    _, layout = ingested
    paths = event_day_paths(layout)
    local = Engine("local")
    expected = _sorted(local.compute(product_day_aggregates(local.read_parquet(paths, EVENT_COLUMNS))),
                       ["product_id", "date"])
    events = cluster.read_parquet(paths, EVENT_COLUMNS)
    assert 1 <= events.npartitions <= len(paths)  # small day files are read together into larger partitions
    got = _sorted(cluster.compute(product_day_aggregates(events)), ["product_id", "date"])
    assert len(got) == len(expected) > 100
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=FLOAT_TOLERANCE)
    events_local = local.read_parquet(paths, EVENT_COLUMNS)
    bought = events_local.loc[events_local["event_type"] == "purchase", "quantity"].sum()
    assert got["units"].sum() == bought and got["events"].sum() == len(events_local)


def test_demand_training_set_is_the_same_on_both_engines(ingested, cluster):
    resources, layout = ingested
    store = ForecastStore(layout)
    outputs, metadata = {}, {}
    for name, compute in (("local", ComputeResource()), ("dask", ComputeResource(engine="dask", workers=2))):
        result = dg.materialize([forecast_assets.demand_training_set], resources={**resources, "compute": compute},
                                selection=["demand_training_set"])
        assert result.success
        metadata[name] = result.asset_materializations_for_node("demand_training_set")[0].metadata
        outputs[name] = (read_frame(store.panel_path), read_frame(store.training / "features.parquet"))
    for local, dask in zip(outputs["local"], outputs["dask"], strict=True):
        assert local.shape == dask.shape
        pd.testing.assert_frame_equal(local, dask, check_dtype=False, rtol=FLOAT_TOLERANCE)
    assert metadata["local"]["engine"].value == "local"
    assert metadata["dask"]["engine"].value == "dask" and metadata["dask"]["dask_workers"].value == 2
    assert metadata["dask"]["dask_dashboard"].value.startswith("http://127.0.0.1:")
    assert np.nansum(outputs["dask"][0]["units"]) > 0


def test_user_features_are_the_same_on_both_engines(ingested):
    resources, layout = ingested
    outputs, metadata = {}, {}
    for name, compute in (("local", ComputeResource()), ("dask", ComputeResource(engine="dask", workers=2))):
        result = dg.materialize([profile_assets.user_features, *ALL_ASSETS, profile_assets.user_daily_activity],
                                resources={**resources, "compute": compute}, selection=["user_features"])
        assert result.success
        metadata[name] = result.asset_materializations_for_node("user_features")[0].metadata
        outputs[name] = read_frame(layout.table("user_features"))
    local, dask = outputs["local"], outputs["dask"]
    assert list(local.columns) == list(dask.columns) and len(local) == len(dask) > 100
    pd.testing.assert_frame_equal(local, dask, check_dtype=False, rtol=FLOAT_TOLERANCE)
    assert local["orders"].sum() > 0 and local["top_category"].notna().sum() > 0
    assert metadata["dask"]["engine"].value == "dask" and metadata["dask"]["dask_workers"].value == 2


def test_dask_trained_demand_model_scores_within_two_percent_of_the_local_one(small_shop, cluster):
    """Same training rows and tuned settings; data-parallel LightGBM differs only in how histograms are summed."""
    from ecomarket_assets.forecasting import metrics
    from ecomarket_assets.forecasting import model as dm
    from ecomarket_assets.forecasting import training as tr
    from ecomarket_assets.forecasting.panel import build_panel

    panel = build_panel(small_shop.tables.events, small_shop.tables.catalog)
    origin, horizon = len(panel.days) - 1 - 14, 14
    train = tr.make_training_set(panel, None)
    x, y = train.until(origin)
    fold = tr.fold_data(panel, origin, None, horizon=horizon)
    wape = {}
    for name, trainer in (("local", None), ("dask", dm.dask_trainer(cluster.client, cluster.workers))):
        model = dm.fit(x, y, {"num_leaves": 15, "min_data_in_leaf": 20}, 120, trainer=trainer)
        forecast = model.predict(fold.features)["forecast"].to_numpy().reshape(fold.actual.shape)
        wape[name] = metrics.wape(fold.actual, forecast)
        assert model.mean.num_trees() == 120 and len(model.quantiles) == 3
    assert 0.1 < wape["local"] < 2.0
    assert abs(wape["dask"] - wape["local"]) / wape["local"] < 0.02, wape
