"""Resources for every asset, configured from the environment (see README)."""

import dagster as dg

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.text.model import EmbeddingModelResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "data_dir": DataDirResource(),
            "source": ShopSourceResource.from_env(),
            "embedding_model": EmbeddingModelResource.from_env(),
            "mlflow_tracking": MlflowResource(),
            "compute": ComputeResource.from_env(),
        },
    )
