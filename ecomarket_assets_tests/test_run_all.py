"""`make run` prints one line per asset as it finishes: name, seconds, one key figure."""

import re

import dagster as dg

from ecomarket_assets import run_all
from ecomarket_assets_tests.conftest import SMALL_SIM


def test_each_asset_prints_a_progress_line_as_it_finishes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ECOMARKET_DATA_DIR", str(tmp_path / "data"))
    for key, value in SMALL_SIM.items():
        monkeypatch.setenv(f"ECOMARKET_{key.upper()}", str(value))
    from ecomarket_assets.definitions import defs

    tables = ["catalog", "customers", "reviews"]
    result = run_all._materialize(defs(), dg.AssetSelection.assets(*tables), dg.DagsterInstance.ephemeral())
    assert result.success
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("done ")]
    assert sorted(line.split()[1] for line in lines) == tables
    for line in lines:
        assert re.search(r"done \w+ +\d+\.\d s  \w+ [\d,]+$", line.strip()), line
