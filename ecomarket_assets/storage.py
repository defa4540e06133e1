"""Parquet storage under one data directory, written atomically.

A write goes to a temporary sibling and is renamed into place, so a killed run
never leaves half a file and readers see either the old or the new version.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ecomarket_assets.schemas import TableSchema

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / "data"


def default_data_dir() -> Path:
    return Path(os.environ.get("ECOMARKET_DATA_DIR", DEFAULT_DATA_DIR)).expanduser().resolve()


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def write_table(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_frame(frame: pd.DataFrame, path: Path, schema: TableSchema | None = None) -> Path:
    """Write a frame, coerced to `schema` when given (so files always match the contract)."""
    table = schema.to_arrow(frame) if schema else pa.Table.from_pandas(frame, preserve_index=False)
    return write_table(table, path)


def read_arrow(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read through one open handle: a concurrent atomic replace cannot mix two versions of the file."""
    with open(path, "rb") as handle:
        return pq.read_table(handle, columns=columns)


def read_frame(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return read_arrow(path, columns).to_pandas()


def replace_dir(build: Path, target: Path) -> None:
    """Swap a fully built directory into place (the old one, if any, is removed after)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = _temp_sibling(target)
        os.replace(target, old)
    os.replace(build, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def new_build_dir(target: Path) -> Path:
    """A scratch directory beside `target`, on the same file system so rename is atomic."""
    target.parent.mkdir(parents=True, exist_ok=True)
    build = _temp_sibling(target)
    build.mkdir()
    return build


class DataLayout:
    """Where every table lives under the data directory (documented in the README)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    def raw_events_day(self, day: str) -> Path:
        return self.root / "raw_events" / f"date={day}" / "part-0.parquet"

    def quarantine_day(self, table: str, day: str) -> Path:
        return self.root / "quarantine" / table / f"date={day}" / "part-0.parquet"

    def table(self, name: str) -> Path:
        return self.root / name / f"{name}.parquet"

    def quarantine_table(self, name: str) -> Path:
        return self.root / "quarantine" / name / f"{name}.parquet"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def activity_day(self, table: str, day: str) -> Path:
        return self.root / "user_daily_activity" / table / f"date={day}" / "part-0.parquet"

    def activity_days(self) -> list[str]:
        folder = self.root / "user_daily_activity" / "users"
        return sorted(p.name.removeprefix("date=") for p in folder.glob("date=*") if (p / "part-0.parquet").exists())
