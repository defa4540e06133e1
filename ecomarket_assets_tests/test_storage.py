"""Writes are atomic: a failure mid-write leaves the previous file intact and no debris."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ecomarket_assets import storage


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "t" / "table.parquet"
    storage.write_frame(pd.DataFrame({"a": [1, 2]}), path)

    def explode(table, where, **kwargs):
        with open(where, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", explode)
    with pytest.raises(OSError, match="disk full"):
        storage.write_frame(pd.DataFrame({"a": [9]}), path)
    monkeypatch.undo()
    assert storage.read_frame(path)["a"].tolist() == [1, 2]
    assert [p.name for p in path.parent.iterdir()] == ["table.parquet"]


def test_layout_paths_are_hive_partitioned(tmp_path):
    layout = storage.DataLayout(tmp_path)
    assert layout.raw_events_day("2025-09-01").relative_to(tmp_path).as_posix() == "raw_events/date=2025-09-01/part-0.parquet"
    assert layout.quarantine_day("raw_events", "2025-09-01").parts[-3] == "raw_events"
