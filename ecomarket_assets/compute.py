"""The compute engine: `local` (pandas in the run's process, the default) or `dask` (a Dask cluster).

One switch, `ECOMARKET_ENGINE` (or the resource's `engine`): with `dask`, `ECOMARKET_DASK_SCHEDULER=tcp://host:8786`
joins an existing cluster; without it an in-process `distributed.LocalCluster` is started for the run (tests, the
demo and the benchmark). Event-heavy aggregations take a pandas or a Dask frame, so each is written once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

ENGINES = ("local", "dask")


@dataclass
class Engine:
    """What an asset computes with during one run."""

    kind: str
    client: Any = None  # distributed.Client when kind == "dask"
    dashboard: str = ""

    @property
    def is_dask(self) -> bool:
        return self.kind == "dask"

    def read_parquet(self, paths: list[Path], columns: list[str]):
        """One frame over many Parquet files: pandas (concatenated) or Dask (one partition per file)."""
        if not paths:
            raise FileNotFoundError("no Parquet files to read")
        if self.is_dask:
            import dask.dataframe as dd

            return dd.read_parquet([str(p) for p in paths], columns=columns)
        from ecomarket_assets.storage import read_frame

        return pd.concat([read_frame(p, columns=columns) for p in paths], ignore_index=True)

    def compute(self, frame) -> pd.DataFrame:
        """A pandas result from either kind of frame."""
        return frame.compute() if hasattr(frame, "compute") and not isinstance(frame, pd.DataFrame) else frame

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"engine": self.kind}
        if self.is_dask and self.client is not None:
            info = self.client.scheduler_info()
            meta["dask_scheduler"] = info.get("address", "")
            meta["dask_workers"] = len(info.get("workers", {}))
            if self.dashboard:
                meta["dask_dashboard"] = dg.MetadataValue.url(self.dashboard)
        return meta


class ComputeResource(dg.ConfigurableResource):
    """`engine`: local | dask. `scheduler`: a Dask scheduler address; empty = a LocalCluster for the run."""

    engine: str = "local"
    scheduler: str = ""
    workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str = "auto"  # per worker, e.g. "2GiB"; past it workers spill to disk

    @classmethod
    def from_env(cls) -> ComputeResource:
        env = os.environ
        return cls(engine=env.get("ECOMARKET_ENGINE", "local"), scheduler=env.get("ECOMARKET_DASK_SCHEDULER", ""),
                   workers=int(env.get("ECOMARKET_DASK_WORKERS", "2")),
                   memory_limit=env.get("ECOMARKET_DASK_MEMORY_LIMIT", "auto"))

    @contextmanager
    def session(self) -> Iterator[Engine]:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.engine == "local":
            yield Engine("local")
            return
        from distributed import Client, LocalCluster

        if self.scheduler:
            with Client(self.scheduler) as client:
                yield Engine("dask", client, client.dashboard_link)
            return
        with LocalCluster(n_workers=self.workers, threads_per_worker=self.threads_per_worker,
                          memory_limit=self.memory_limit, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
            yield Engine("dask", client, client.dashboard_link)
