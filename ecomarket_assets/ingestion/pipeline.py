"""Ingest one day of events or one whole table: validate, write kept rows and quarantine."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from dataclasses import dataclass, field

import pandas as pd

from ecomarket_assets import storage
from ecomarket_assets.ingestion import validation
from ecomarket_assets.ingestion.staging import StagedSource
from ecomarket_assets.ingestion.validation import SOURCE_FILE
from ecomarket_assets.schemas import (
    CATALOG,
    CUSTOMERS,
    EVENTS,
    QUARANTINE_REASON,
    REVIEWS,
    TableSchema,
)
from ecomarket_assets.source_tables import SOURCE_RECORD
from ecomarket_assets.storage import DataLayout

OUTSIDE_PARTITIONS = "outside_partitions"
DAYS_AHEAD = 2  # days after the last partition whose rows wait for it: today, and tomorrow for clock skew


def pending_days(partition_keys: list[str], ahead: int = DAYS_AHEAD) -> set[str]:
    """Days whose partition does not exist yet but will: the `ahead` days after the last partition.

    A daily partition exists once its day is over, so the day after the last one is today: rows dated today
    (the collector's micro-batch files) wait for the night's ingestion instead of going to quarantine.
    """
    if not partition_keys:
        return set()
    last = dt.date.fromisoformat(max(partition_keys))
    return {(last + dt.timedelta(days=i)).isoformat() for i in range(1, ahead + 1)}


@dataclass
class IngestReport:
    """Counts for one day or table; `rows_read == rows_kept + rows_quarantined` always."""

    name: str
    rows_read: int
    rows_kept: int
    rows_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rows_read != self.rows_kept + self.rows_quarantined:
            raise AssertionError(f"{self.name}: {self.rows_read} read != {self.rows_kept} kept + {self.rows_quarantined} quarantined")


def day_window(day: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(day, tz="UTC")
    return start, start + pd.Timedelta(days=1)


def read_day(sources: list[StagedSource], day: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The day's events and adapter rejects from every source, each row tagged with its `source_file`."""
    events = [s.events(day).assign(**{SOURCE_FILE: s.root.name}) for s in sources]
    rejects = [s.rejects(day).assign(**{SOURCE_FILE: s.root.name}) for s in sources]
    return (pd.concat(events, ignore_index=True) if events else EVENTS.empty().assign(**{SOURCE_FILE: None}),
            pd.concat(rejects, ignore_index=True))


QUARANTINE_COLUMNS = [*EVENTS.names, SOURCE_RECORD, QUARANTINE_REASON, SOURCE_FILE]


def ingest_events_day(day: str, sources: list[StagedSource], known_products: pd.Index, layout: DataLayout,
                      earlier_ids: dict[str, list[str]] | None = None) -> IngestReport:
    """Validate one day from every source; `earlier_ids[day]`: ids already seen on an earlier day."""
    events, rejects = read_day(sources, day)
    start, end = day_window(day)
    checked = validation.validate_events(events, start, end, known_products, (earlier_ids or {}).get(day, ()))
    parts = [f for f in (validation.rejects_as_quarantine(rejects, EVENTS), checked.quarantined) if len(f)]
    quarantine = (pd.concat(parts, ignore_index=True) if parts else checked.quarantined).reindex(columns=QUARANTINE_COLUMNS)
    storage.write_frame(checked.kept, layout.raw_events_day(day), EVENTS)
    storage.write_table(validation.quarantine_table(quarantine), layout.quarantine_day("raw_events", day))
    _write_source_counts(day, sources, events, rejects, checked.kept, quarantine, layout)
    return _report(day, len(events) + len(rejects), checked.kept, quarantine[QUARANTINE_REASON])


def _write_source_counts(day: str, sources: list[StagedSource], events: pd.DataFrame, rejects: pd.DataFrame,
                         kept: pd.DataFrame, quarantine: pd.DataFrame, layout: DataLayout) -> None:
    """Per source file: rows read, kept and quarantined on this day (the per-file reconciliation reads these)."""
    def counts(frame: pd.DataFrame) -> pd.Series:
        return frame[SOURCE_FILE].value_counts()

    read, kept_by, quarantined_by = counts(events).add(counts(rejects), fill_value=0), counts(kept), counts(quarantine)
    report = {s.root.name: {"read": int(read.get(s.root.name, 0)), "kept": int(kept_by.get(s.root.name, 0)),
                            "quarantined": int(quarantined_by.get(s.root.name, 0))} for s in sources}
    storage.write_text(layout.ingestion_report("raw_events", day), json.dumps({"day": day, "sources": report}))


def cross_day_duplicates(sources: list[StagedSource], partition_days: set[str]) -> dict[str, list[str]]:
    """Per day, the event ids that already occurred on an earlier partition day (in any source).

    The earliest day's copy is judged by the usual rules; every later copy is quarantined as
    `duplicate_event_id_across_days`, so one event is never counted twice across days.
    """
    frames = [ids[ids["day"].isin(partition_days)] for ids in (s.event_ids() for s in sources)]
    ids = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["event_id", "day"])
    ids = ids.dropna().drop_duplicates().sort_values("day", kind="stable")
    later = ids[ids.duplicated("event_id", keep="first")]
    return {str(day): part["event_id"].tolist() for day, part in later.groupby("day")}


def quarantine_unfiled(source: StagedSource, partition_days: set[str], layout: DataLayout,
                       waiting_days: Collection[str] = ()) -> dict[str, int]:
    """Rows no daily partition can hold go to quarantine with their reason, so every row is accounted for.

    Events dated outside the partitions (before the first day, in the future) become `outside_partitions`;
    undated rows keep the adapter's reason (`missing_time`, `bad_type_event_time`, `too_many_fields`). Rows of
    `waiting_days` (see `pending_days`: today's) are not quarantined: they wait for their partition. Written per
    source, replaced on every run (a day that becomes a partition later leaves this file and is ingested).
    """
    path = layout.unfiled_quarantine("raw_events", source.root.name)
    unfiled = [d for d in source.days() if d not in partition_days and d not in waiting_days]
    if not unfiled and not path.exists():
        return {}
    frames = []
    for day in unfiled:
        events = source.events(day)
        if len(events):
            frames.append(events.assign(**{SOURCE_RECORD: None, QUARANTINE_REASON: OUTSIDE_PARTITIONS}))
        rejects = source.rejects(day)
        if len(rejects):
            frames.append(validation.rejects_as_quarantine(rejects, EVENTS))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    frame = frame.assign(**{SOURCE_FILE: source.root.name}).reindex(columns=QUARANTINE_COLUMNS)
    storage.write_table(validation.quarantine_table(frame), path)
    return {str(k): int(v) for k, v in frame[QUARANTINE_REASON].value_counts().items()}


def drop_stale_unfiled(sources: list[StagedSource], layout: DataLayout) -> list[str]:
    """Remove the unfiled quarantine of every stage no longer read (a landing file's replaced version, an old
    source config): its rows are not the data any more. Returns the stage names removed."""
    folder = layout.unfiled_quarantine("raw_events", "_").parent
    if not folder.exists():
        return []
    current = {s.root.name for s in sources}
    stale = [p for p in folder.iterdir() if p.name.endswith(".parquet") and p.name[: -len(".parquet")] not in current]
    for path in stale:
        path.unlink()
    return sorted(p.name[: -len(".parquet")] for p in stale)


@dataclass
class FileReconciliation:
    """Rows of one source file: read = kept + quarantined (on partition days and unfiled) + not yet ingested."""

    source: str
    description: str
    read: int
    kept: int
    quarantined: int
    unfiled: int
    not_yet_ingested: int

    @property
    def lost(self) -> int:
        return self.read - self.kept - self.quarantined - self.unfiled - self.not_yet_ingested


def reconcile_files(sources: list[StagedSource], partition_days: set[str], layout: DataLayout,
                    waiting_days: Collection[str] = ()) -> list[FileReconciliation]:
    """Every source file's rows accounted for, from the per-day counts `ingest_events_day` writes; rows of
    `waiting_days` (today's, see `pending_days`) are not yet ingested."""
    out, reports = [], {}
    for source in sources:
        name, manifest = source.root.name, source.manifest
        kept = quarantined = pending = 0
        for day, counts in manifest["days"].items():
            if day in waiting_days and day not in partition_days:
                pending += counts["events"] + counts["rejects"]
                continue
            if day not in partition_days:
                continue
            if day not in reports:
                path = layout.ingestion_report("raw_events", day)
                reports[day] = json.loads(path.read_text())["sources"] if path.exists() else {}
            report = reports[day]
            if name in report:
                kept += report[name]["kept"]
                quarantined += report[name]["quarantined"]
            else:
                pending += counts["events"] + counts["rejects"]
        unfiled = storage.parquet_rows(layout.unfiled_quarantine("raw_events", name))
        out.append(FileReconciliation(name, manifest["description"], int(manifest["rows_read"]), kept, quarantined,
                                      unfiled, pending))
    return out


def ingest_table(schema: TableSchema, frame: pd.DataFrame, layout: DataLayout,
                 known_products: pd.Index | None = None,
                 rejects: pd.DataFrame | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Validate a whole table; `rejects`: source rows the reader could not map (quarantined with their reason)."""
    validators = {
        CATALOG.name: validation.validate_catalog,
        CUSTOMERS.name: validation.validate_customers,
        REVIEWS.name: lambda f: validation.validate_reviews(f, known_products if known_products is not None else pd.Index([])),
    }
    checked = validators[schema.name](frame)
    quarantine = checked.quarantined
    if rejects is not None and len(rejects):
        quarantine = pd.concat([validation.rejects_as_quarantine(rejects, schema), quarantine], ignore_index=True)
    storage.write_frame(checked.kept, layout.table(schema.name), schema)
    storage.write_table(validation.quarantine_table(quarantine), layout.quarantine_table(schema.name))
    read = len(frame) + (len(rejects) if rejects is not None else 0)
    return checked.kept, _report(schema.name, read, checked.kept, quarantine[validation.QUARANTINE_REASON])


def _report(name: str, rows_read: int, kept: pd.DataFrame, reasons: pd.Series) -> IngestReport:
    counts = reasons.value_counts().sort_index()
    return IngestReport(name, rows_read, len(kept), len(reasons), {str(k): int(v) for k, v in counts.items()})
