"""The compute engine: `local` (pandas in the run's process, the default) or `dask` (a Dask cluster).

One switch, the resource's `engine` (`ECOMARKET_ENGINE`): with `dask`, `ECOMARKET_DASK_SCHEDULER=tcp://host:8786`
joins an existing cluster; without it a `distributed.LocalCluster` is started once per run process and shared by
its steps (tests, the demo and the benchmark). Event-heavy aggregations take a pandas or a Dask frame, so each is
written once; per-day work (ingestion, daily activity) goes through `Engine.map`, one task per day.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

ENGINES = ("local", "dask")
BLOCKSIZE = "16MiB"  # on disk; compressed Parquet grows ~5-10x in memory, and workers may have 2 GiB


@dataclass
class Engine:
    """What an asset computes with during one run."""

    kind: str
    client: Any = None  # distributed.Client when kind == "dask"
    dashboard: str = ""

    @property
    def is_dask(self) -> bool:
        return self.kind == "dask"

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {})) if self.is_dask else 1

    def read_parquet(self, paths: list[Path], columns: list[str]):
        """One frame over many Parquet files: pandas (concatenated) or Dask (lazy, about BLOCKSIZE per partition)."""
        if not paths:
            raise FileNotFoundError("no Parquet files to read")
        if self.is_dask:
            import dask.dataframe as dd

            # No hive partitioning: a `date=...` folder must not turn the file's own `date` column categorical.
            # Day files are small: many are read into one partition of about BLOCKSIZE, or per-task overhead
            # (about 1 ms per task and step) outweighs the work.
            return dd.read_parquet([str(p) for p in paths], columns=columns, dataset={"partitioning": None},
                                   aggregate_files=True, blocksize=BLOCKSIZE)
        from ecomarket_assets.storage import read_frame

        return pd.concat([read_frame(p, columns=columns) for p in paths], ignore_index=True)

    def compute(self, frame) -> pd.DataFrame:
        """A pandas result from either kind of frame."""
        return frame.compute() if hasattr(frame, "compute") and not isinstance(frame, pd.DataFrame) else frame

    def compute_many(self, frames: dict) -> dict:
        """Pandas results for a dict of frames; on Dask in one pass, so shared inputs are read once."""
        if not self.is_dask:
            return dict(frames)
        import dask

        keys = list(frames)
        return dict(zip(keys, dask.compute(*(frames[k] for k in keys)), strict=True))

    def map(self, func: Callable, items: list, **shared) -> list:
        """`func(item, **shared)` for every item, in order: one task per item on Dask (e.g. one per day file).

        Tasks run where the data is reachable by every worker (a shared data directory), and only their
        small results (reports, counts) come back.
        """
        call = partial(func, **shared)
        if not self.is_dask:
            return [call(item) for item in items]
        futures = self.client.map(call, items, pure=False)
        return self.client.gather(futures)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"engine": self.kind}
        if self.is_dask and self.client is not None:
            info = self.client.scheduler_info()
            meta["dask_scheduler"] = info.get("address", "")
            meta["dask_workers"] = len(info.get("workers", {}))
            if self.dashboard:
                meta["dask_dashboard"] = dg.MetadataValue.url(self.dashboard)
        return meta


def group_reduce(frame, keys: str | list[str], columns=None, **named):
    """`frame.groupby(keys)` summed over `columns` (or with named aggregations) on pandas or Dask.

    On Dask the result is one partition built by a tree reduction: per-user results are small, and
    Dask's default for many groups (a shuffle across workers) is about 3x slower here.
    """
    grouped = frame.groupby(keys)
    extra = {} if isinstance(frame, pd.DataFrame | pd.Series) else {"split_out": 1}
    if named:
        return grouped.agg(**named, **extra)
    return grouped[columns].sum(**extra)


def distinct(series):
    """The unique values of a pandas or Dask series; on Dask a tree reduction into one partition (no shuffle)."""
    return series.unique() if isinstance(series, pd.Series) else series.unique(split_out=1)


class ComputeResource(dg.ConfigurableResource):
    """`engine`: local | dask. `scheduler`: a Dask scheduler address; empty = a LocalCluster for the run."""

    engine: str = "local"
    scheduler: str = ""
    workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str = "auto"  # per worker, e.g. "2GiB"; past it workers spill to disk

    @contextmanager
    def session(self) -> Iterator[Engine]:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.engine == "local":
            yield Engine("local")
            return
        from distributed import Client

        if self.scheduler:
            with Client(self.scheduler) as client:
                yield Engine("dask", client, client.dashboard_link)
            return
        client = self._local_cluster_client()
        yield Engine("dask", client, client.dashboard_link)

    def _local_cluster_client(self):
        """A LocalCluster shared by every step of this process (a run's steps and checks start it once).

        It stops when the process exits; a run in the multiprocess executor gets one per step process.
        """
        from distributed import Client, LocalCluster

        key = (self.workers, self.threads_per_worker, self.memory_limit)
        client = _LOCAL_CLIENTS.get(key)
        if client is None or client.status != "running":
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=self.threads_per_worker,
                                   memory_limit=self.memory_limit, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0")
            client = _LOCAL_CLIENTS[key] = Client(cluster)
            atexit.register(_close, client, cluster)
        return client


_LOCAL_CLIENTS: dict[tuple, Any] = {}


def _close(client, cluster) -> None:
    with suppress(Exception):
        client.close()
        cluster.close()
