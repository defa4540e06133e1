"""Shared fixtures. Partitions start early enough for the real Online Retail file (2010-12)."""

import os

os.environ.setdefault("ECOMARKET_PARTITIONS_START", "2010-12-01")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Two pytest workers share the 2 cores: OpenMP threads that sleep while they wait beat spinning ones there
# (benchmarks/threads.py, "one core busy"); set before LightGBM loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import datetime as dt  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
ONLINE_RETAIL = SHARED_DATASETS / "online_retail" / "online_retail_2010-12_to_2011-09.csv.gz"

SMALL_SIM = {"sim_users": 300, "sim_products": 60, "sim_days": 21, "sim_start": "2025-11-10", "sim_seed": 3}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def small_resources(data_dir: Path) -> dict:
    from ecomarket_assets.compute import ComputeResource
    from ecomarket_assets.resources import DataDirResource, ShopSourceResource

    return {"data_dir": DataDirResource(path=str(data_dir)), "source": ShopSourceResource(**SMALL_SIM),
            "compute": ComputeResource()}


@pytest.fixture(scope="session")
def small_shop():
    from ecomarket_assets.simulator.shop import SimConfig, simulate

    clean = SimConfig(n_users=800, n_products=80, n_days=60, start_date=dt.date(2025, 10, 1), seed=11, glitch_share=0.0)
    return simulate(clean)


@pytest.fixture
def online_retail_file() -> Path:
    if not ONLINE_RETAIL.exists():
        pytest.skip(f"real dataset not found at {ONLINE_RETAIL} (../shared/datasets must sit beside the checkout)")
    return ONLINE_RETAIL
