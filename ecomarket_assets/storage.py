"""Parquet storage under one data directory, written atomically.

The data directory is a local folder or a URL (`s3://bucket/prefix`, `gs://…`, `hdfs://…`) read and
written through fsspec (universal_pathlib gives remote paths the pathlib API), because the workers of a
cluster do not share a local disk. Credentials and endpoints come from the usual environment
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, …).

Locally a write goes to a temporary sibling and is renamed into place; on object storage an object
appears only when its upload completes. Either way a killed run never leaves half a file and readers
see either the old or the new version.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ecomarket_assets.schemas import TableSchema

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / "data"


def data_path(location: str | os.PathLike) -> Path:
    """A local Path, or a UPath (pathlib API over fsspec) for a URL such as s3://bucket/prefix."""
    if is_remote(location) and not isinstance(location, str):  # already a UPath
        return location
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    if "://" in text and not text.startswith("file://"):
        from upath import UPath

        return UPath(text)
    return Path(text.removeprefix("file://")).expanduser().resolve()


def is_remote(path) -> bool:
    return not isinstance(path, Path)


def default_data_dir() -> Path:
    """`./data` in the checkout: where DataDirResource points when its `path` is empty."""
    return data_path(DEFAULT_DATA_DIR)


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def write_table(table: pa.Table, path: Path) -> Path:
    if is_remote(path):
        with path.open("wb") as handle:  # the object is published when the upload completes
            pq.write_table(table, handle, compression="zstd")
        return path
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
    with path.open("rb") as handle:
        return pq.read_table(handle, columns=columns)


def read_schema(path: Path) -> pa.Schema:
    with path.open("rb") as handle:
        return pq.read_schema(handle)


def parquet_rows(path: Path) -> int:
    """Rows in a stored file (0 when it does not exist), from its footer."""
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return pq.ParquetFile(handle).metadata.num_rows


def write_text(path: Path, text: str) -> Path:
    """A small text file (JSON, CSV), replaced atomically."""
    if is_remote(path):
        path.write_text(text)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def remove_tree(path: Path) -> None:
    if is_remote(path):
        if path.exists():
            path.fs.rm(path.path, recursive=True)
        return
    shutil.rmtree(path, ignore_errors=True)


def read_frame(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return read_arrow(path, columns).to_pandas()


def replace_dir(build: Path, target: Path) -> None:
    """Swap a fully built directory into place (the old one, if any, is removed after).

    On object storage (no rename) the old objects are removed and the build is uploaded file by file.
    """
    if is_remote(target):
        remove_tree(target)
        for file in sorted(f for f in build.rglob("*") if f.is_file()):
            target.fs.put_file(str(file), f"{target.path}/{file.relative_to(build).as_posix()}")
        shutil.rmtree(build, ignore_errors=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = _temp_sibling(target)
        os.replace(target, old)
    os.replace(build, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def new_build_dir(target: Path) -> Path:
    """A scratch directory beside `target`, on the same file system so rename is atomic (local temp for URLs)."""
    if is_remote(target):
        return Path(tempfile.mkdtemp(prefix="ecomarket-build-"))
    target.parent.mkdir(parents=True, exist_ok=True)
    build = _temp_sibling(target)
    build.mkdir()
    return build


class DataLayout:
    """Where every table lives under the data directory (documented in the README)."""

    def __init__(self, root: Path | str) -> None:
        self.root = data_path(root)

    def raw_events_day(self, day: str) -> Path:
        return self.root / "raw_events" / f"date={day}" / "part-0.parquet"

    def quarantine_day(self, table: str, day: str) -> Path:
        return self.root / "quarantine" / table / f"date={day}" / "part-0.parquet"

    def table(self, name: str) -> Path:
        return self.root / name / f"{name}.parquet"

    def unfiled_quarantine(self, table: str, source: str) -> Path:
        """Rows of `source` that no daily partition can hold (outside the partitions, undated)."""
        return self.root / "quarantine" / table / "unfiled" / f"{source}.parquet"

    def ingestion_report(self, table: str, day: str) -> Path:
        """Per-source row counts of one ingested day (JSON)."""
        return self.root / "ingestion_reports" / table / f"date={day}.json"

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
