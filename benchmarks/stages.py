"""Run asset selections of the real Dagster definitions in fresh processes, measuring each one.

Shared by the benchmarks: each stage's wall time and peak memory are its own.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ONLINE_RETAIL = REPO_ROOT.parent / "shared" / "datasets" / "online_retail" / "online_retail_2010-12_to_2011-09.csv.gz"


def use_source(source: str, path: Path, root: Path) -> None:
    """Point the definitions (through their environment variables) at a source and a private working folder."""
    os.environ.update({
        "ECOMARKET_SOURCE": source,
        "ECOMARKET_SOURCE_PATH": str(path) if source != "simulator" else "",
        "ECOMARKET_PARTITIONS_START": "2010-12-01" if source == "online_retail" else "2025-06-05",
        "ECOMARKET_DATA_DIR": str(root / "data"),
        "ECOMARKET_MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
        "ECOMARKET_MLFLOW_ARTIFACT_ROOT": str(root / "mlartifacts"),
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    })


def _stage(name: str, selection: list[str], partitioned: bool | str, run_config: dict, queue: mp.Queue) -> None:
    import dagster as dg

    from ecomarket_assets.definitions import defs as load_defs
    from ecomarket_assets.partitions import partition_range_tags
    from ecomarket_assets.resources import DataDirResource, ShopSourceResource
    from ecomarket_assets.run_all import source_days
    from ecomarket_assets.settings import plain

    defs = load_defs()
    job = defs.resolve_implicit_global_asset_job_def()
    keys = dg.AssetSelection.assets(*selection).resolve(defs.resolve_asset_graph())
    tags = {}
    if partitioned:
        first, last = source_days(plain(ShopSourceResource), plain(DataDirResource))
        tags = partition_range_tags(first, min(last, partitioned) if isinstance(partitioned, str) else last)
    config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}, **run_config}
    start = time.perf_counter()
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), asset_selection=list(keys),
                                    run_config=config, tags=tags, raise_on_error=True)
    seconds = time.perf_counter() - start
    meta = {}
    for event in result.get_asset_materialization_events():
        meta[event.asset_key.to_user_string()] = {k: v.value for k, v in event.materialization.metadata.items()
                                                  if isinstance(v.value, int | float | str)}
    queue.put({"stage": name, "seconds": seconds,
               "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, "meta": meta})


def run_stage(name: str, selection: list[str], partitioned: bool | str = False, run_config: dict | None = None) -> dict:
    """`partitioned`: True = every day of the source, "YYYY-MM-DD" = its days up to that one."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_stage, args=(name, selection, partitioned, run_config or {}, queue))
    process.start()
    while process.is_alive() and queue.empty():  # read before join: a child cannot exit with unread data
        time.sleep(0.5)
    report = queue.get() if not queue.empty() else None
    process.join()
    if process.exitcode != 0 or report is None:
        raise SystemExit(f"stage {name} failed (exit {process.exitcode})")
    return report
