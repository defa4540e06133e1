"""Stage a source once as day files, so each daily partition reads only its day.

A source (the built-in simulated shop with its config, or a real file) is mapped into the
canonical tables once and written under `staging/<kind>-<fingerprint>/`; the
fingerprint changes when the config or the file changes, so a stale stage is
never read. Layout:

    events/<YYYY-MM-DD>.parquet    canonical events of that UTC day (not yet validated)
    rejects/<YYYY-MM-DD>.parquet   source rows the adapter could not map, with reasons
    catalog.parquet customers.parquet reviews.parquet
    table_rejects/<table>.parquet  rows of those tables that could not be read (too many fields), with reasons
    truth/*.parquet                ground truth, for a source that knows it (the simulated shop)
    manifest.json                  per-day row counts, notes
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets import storage
from ecomarket_assets.ingestion.adapters.canonical import TABLE_REJECTS
from ecomarket_assets.schemas import CATALOG, CUSTOMERS, EVENTS, QUARANTINE_REASON, REVIEWS
from ecomarket_assets.source_tables import SOURCE_RECORD, SourceTables, empty_rejects

UNDATED = "undated"
MISSING_TIME = "missing_time"


def _relaxed(schema: pa.Schema) -> pa.Schema:
    """Staged events may still break rules (validation decides), so allow nulls everywhere."""
    return pa.schema([f.with_nullable(True) for f in schema])


REJECTS_SCHEMA = pa.schema(
    [("event_time", pa.timestamp("us", tz="UTC")), (SOURCE_RECORD, pa.string()), (QUARANTINE_REASON, pa.string())]
)


@dataclass(frozen=True)
class StagedSource:
    root: Path

    @property
    def manifest(self) -> dict:
        return json.loads((self.root / "manifest.json").read_text())

    def days(self) -> list[str]:
        return sorted(self.manifest["days"])

    def events(self, day: str) -> pd.DataFrame:
        path = self.root / "events" / f"{day}.parquet"
        return storage.read_frame(path) if path.exists() else EVENTS.empty()

    def rejects(self, day: str) -> pd.DataFrame:
        path = self.root / "rejects" / f"{day}.parquet"
        return storage.read_frame(path) if path.exists() else empty_rejects()

    def table(self, name: str) -> pd.DataFrame:
        return storage.read_frame(self.root / f"{name}.parquet")

    def table_rejects(self, name: str) -> pd.DataFrame:
        """Rows of the side table `name` that could not be read (`source_record`, `quarantine_reason`)."""
        path = self.root / "table_rejects" / f"{name}.parquet"
        return storage.read_frame(path) if path.exists() else empty_rejects()

    def event_ids(self) -> pd.DataFrame:
        """`event_id, day` of every staged event (cached in the stage: a stage never changes)."""
        path = self.root / "event_ids.parquet"
        if path.exists():
            return storage.read_frame(path)
        frames = [storage.read_frame(p, columns=["event_id"]).assign(day=p.stem)
                  for p in sorted((self.root / "events").glob("*.parquet"))]
        ids = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"event_id": [], "day": []}, dtype=object)
        ids = ids.dropna().drop_duplicates()
        storage.write_frame(ids, path)
        return ids

    @property
    def truth_dir(self) -> Path | None:
        path = self.root / "truth"
        return path if path.exists() else None


def stage_dir(data_dir: Path, kind: str, fingerprint: str) -> Path:
    digest = hashlib.sha1(fingerprint.encode()).hexdigest()[:12]
    return data_dir / "staging" / f"{kind}-{digest}"


def stage(tables: SourceTables, target: Path, truth: dict[str, pd.DataFrame] | None = None,
          description: str = "") -> StagedSource:
    """Write `tables` as a staged source at `target` (atomic: built aside, then renamed)."""
    build = storage.new_build_dir(target)
    try:
        events, rejects = _route_undated(tables.events, tables.rejects)
        day_counts = _write_by_day(events, build / "events", "event_time", _relaxed(EVENTS.arrow()))
        reject_counts = _write_by_day(rejects, build / "rejects", "event_time", REJECTS_SCHEMA)
        for schema, frame in ((CATALOG, tables.catalog), (CUSTOMERS, tables.customers), (REVIEWS, tables.reviews)):
            storage.write_table(pa.Table.from_pandas(frame[schema.names], schema=_relaxed(schema.arrow()),
                                                     preserve_index=False), build / f"{schema.name}.parquet")
        for name, frame in tables.notes.pop(TABLE_REJECTS, {}).items():
            storage.write_table(pa.Table.from_pandas(frame[REJECTS_SCHEMA.names], schema=REJECTS_SCHEMA,
                                                     preserve_index=False), build / "table_rejects" / f"{name}.parquet")
            tables.notes[f"{name}_rows_refused"] = len(frame)
        for name, frame in (truth or {}).items():
            storage.write_frame(frame, build / "truth" / f"{name}.parquet")
        days = sorted(set(day_counts) | set(reject_counts))
        manifest = {
            "description": description,
            "rows_read": tables.rows_read,
            "days": {d: {"events": day_counts.get(d, 0), "rejects": reject_counts.get(d, 0)} for d in days},
            "notes": _jsonable(tables.notes),
        }
        (build / "manifest.json").write_text(json.dumps(manifest, indent=1))
        _publish(build, target)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return StagedSource(target)


def _publish(build: Path, target: Path) -> None:
    """Rename into place; if another run staged the same fingerprint first, keep theirs."""
    if (target / "manifest.json").exists():
        return
    if storage.is_remote(target):  # object storage has no rename: upload; the manifest marks it complete
        manifest = build / "manifest.json"
        text = manifest.read_text()
        manifest.unlink()
        storage.replace_dir(build, target)
        storage.write_text(target / "manifest.json", text)
        return
    if target.exists():  # a stage without manifest is a leftover of a killed run
        shutil.rmtree(target, ignore_errors=True)
    try:
        build.rename(target)
    except OSError:
        if not (target / "manifest.json").exists():
            raise


def _route_undated(events: pd.DataFrame, rejects: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events without a time cannot be filed under a day: they join the rejects, undated."""
    missing = events["event_time"].isna()
    if not missing.any():
        return events, rejects
    bad = events[missing]
    extra = pd.DataFrame(
        {
            "event_time": bad["event_time"],
            SOURCE_RECORD: bad.astype(str).to_json(orient="records", lines=True).splitlines(),
            QUARANTINE_REASON: MISSING_TIME,
        }
    )
    return events[~missing], pd.concat([rejects, extra], ignore_index=True)


def _write_by_day(frame: pd.DataFrame, folder: Path, time_col: str, schema: pa.Schema) -> dict[str, int]:
    if frame.empty:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    times = frame[time_col]
    day = times.dt.strftime("%Y-%m-%d").fillna(UNDATED)
    order = np.argsort(day.to_numpy(), kind="stable")
    frame, day = frame.iloc[order], day.iloc[order]
    keys, starts = np.unique(day.to_numpy(), return_index=True)
    bounds = np.append(starts, len(frame))
    counts = {}
    for key, lo, hi in zip(keys, bounds[:-1], bounds[1:], strict=True):  # one write per day
        part = frame.iloc[lo:hi]
        storage.write_table(pa.Table.from_pandas(part[schema.names], schema=schema, preserve_index=False),
                            folder / f"{key}.parquet")
        counts[str(key)] = int(hi - lo)
    return counts


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (dt.date, pd.Timestamp)):
        return value.isoformat()
    return value
