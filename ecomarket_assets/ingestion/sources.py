"""Staging a shop's tables: a real file (or folder) through its adapter, landed files, or tables a source built
in memory (ShopSourceResource picks which; the built-in simulated shop is one of the in-memory kind)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ecomarket_assets.ingestion.adapters.canonical import UNREADABLE_FILES
from ecomarket_assets.ingestion.adapters.dates import validate_date_format
from ecomarket_assets.ingestion.file_errors import describe, fix_for
from ecomarket_assets.ingestion.staging import StagedSource, stage, stage_dir
from ecomarket_assets.source_tables import SourceTables
from ecomarket_assets.storage import is_remote

FILE_KINDS = ("online_retail", "retailrocket", "canonical", "shopify", "ga4")
LANDING_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".xlsx", ".json", ".jsonl", ".json.gz")  # JSON: GA4 exports


@dataclass(frozen=True)
class SourceSpec:
    """A shop kept in a file or folder, read by the adapter of its kind."""

    kind: str
    path: str | None = None
    date_format: str | None = None  # day/month order of numeric dates: dayfirst, monthfirst or strftime
    pseudonym_key: str | None = None  # key of the user_id pseudonyms of emails (Shopify); None: the built-in one

    def __post_init__(self) -> None:
        validate_date_format(self.date_format)
        if self.kind not in FILE_KINDS:
            raise ValueError(f"{self.kind!r} is not a file source; file sources: {', '.join(FILE_KINDS)}")
        if not self.path:
            raise ValueError(f"source kind {self.kind!r} needs a path (ECOMARKET_SOURCE_PATH)")
        if not Path(self.path).exists():
            raise FileNotFoundError(f"source path {self.path} does not exist")

    def fingerprint(self) -> str:
        return f"{self.kind}|{self.date_format or ''}|{file_fingerprint(Path(self.path))}{_key_mark(self.pseudonym_key)}"


def _key_mark(key: str | None) -> str:
    """A changed pseudonym key gives another stage (by a digest: the key itself never lands in a folder name)."""
    return f"|key={hashlib.sha256(key.encode()).hexdigest()[:12]}" if key else ""


def file_fingerprint(path: Path) -> str:
    """Identity of a file or folder by name, size and modification time of every file in it."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return ";".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def read_source(kind: str, path: Path, date_format: str | None = None,
                pseudonym_key: str | None = None) -> SourceTables:
    from ecomarket_assets.ingestion import adapters

    if kind == "shopify":  # dates carry their UTC offset: no day/month order to declare
        return adapters.read_shopify(path, pseudonym_key=pseudonym_key)
    if kind == "ga4":  # epoch microseconds: no day/month order to declare
        return adapters.read_ga4(path)
    if kind == "retailrocket":  # epoch milliseconds: no day/month order to declare
        return adapters.read_retailrocket(path)
    readers = {"online_retail": adapters.read_online_retail, "canonical": adapters.read_canonical}
    return readers[kind](path, date_format=date_format)


BuiltTables = tuple[SourceTables, dict[str, pd.DataFrame] | None]  # the tables, and ground truth where known


def staged_tables(data_dir: Path, kind: str, fingerprint: str, build: Callable[[], BuiltTables],
                  description: str) -> StagedSource:
    """Tables a source builds in memory, staged under `fingerprint`: `build()` runs only when no stage exists."""
    target = stage_dir(data_dir, kind, fingerprint)
    if (target / "manifest.json").exists():
        return StagedSource(target)
    tables, truth = build()
    return stage(tables, target, truth=truth, description=description)


def staged(spec: SourceSpec, data_dir: Path) -> StagedSource:
    """The staged copy of the file source `spec`, building it on first use."""
    target = stage_dir(data_dir, spec.kind, spec.fingerprint())
    if (target / "manifest.json").exists():
        return StagedSource(target)
    try:
        tables = read_source(spec.kind, Path(spec.path), spec.date_format, spec.pseudonym_key)
    except Exception as error:  # name the file, the problem and the fix, whatever the reader raised
        problem = describe(error)
        where = "" if str(spec.path) in problem else f"{spec.path}: "
        raise SourceFileError(f"{where}{problem}. Fix: {fix_for(error)}") from error
    _quarantine_unreadable(tables, data_dir)
    return stage(tables, target, description=f"{spec.kind} {spec.path}")


def _quarantine_unreadable(tables: SourceTables, data_dir: Path) -> None:
    """Side tables the adapter could not read: a copy and its reason go to the file quarantine."""
    from ecomarket_assets.ingestion.file_quarantine import quarantine_file
    from ecomarket_assets.ingestion.landing import sha256

    unreadable = tables.notes.pop(UNREADABLE_FILES, [])
    records = []
    for item in unreadable:
        path = Path(item["file"])
        if is_remote(data_dir):  # the file quarantine is a local folder; the note still names the file
            records.append({"file": str(path), "problem": describe(item["error"]), "fix": fix_for(item["error"])})
            continue
        record = quarantine_file(path, item["error"], sha256(path), data_dir, move=False)
        records.append({"file": str(path), "problem": record.problem, "fix": record.fix})
    if records:
        tables.notes["quarantined_files"] = records


class SourceFileError(ValueError):
    """The configured source file cannot be read; the message names the file, the problem and the fix."""


def staged_landing_file(path: Path, data_dir: Path, date_format: str | None = None,
                        name: str | None = None, pseudonym_key: str | None = None) -> StagedSource:
    """A landed events file, in any supported format, staged like a source (`name`: the file as it landed)."""
    from ecomarket_assets.ingestion.adapters import detect_format

    kind = detect_format(path)
    target = stage_dir(data_dir, f"landing-{kind}", f"{date_format or ''}|{file_fingerprint(path)}{_key_mark(pseudonym_key)}")
    if (target / "manifest.json").exists():
        return StagedSource(target)
    return stage(read_source(kind, path, date_format, pseudonym_key), target,
                 description=f"landing {kind} {name or path.name}")


def days_between(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
