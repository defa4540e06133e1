"""Ingest one day of events or one whole table: validate, write kept rows and quarantine."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from ecomarket_assets import storage
from ecomarket_assets.ingestion import validation
from ecomarket_assets.ingestion.staging import StagedSource
from ecomarket_assets.schemas import CATALOG, CUSTOMERS, EVENTS, REVIEWS, TableSchema
from ecomarket_assets.storage import DataLayout


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
    events = [s.events(day) for s in sources]
    rejects = [s.rejects(day) for s in sources]
    return (pd.concat(events, ignore_index=True) if events else EVENTS.empty(),
            pd.concat(rejects, ignore_index=True))


def ingest_events_day(day: str, sources: list[StagedSource], known_products: pd.Index, layout: DataLayout) -> IngestReport:
    events, rejects = read_day(sources, day)
    start, end = day_window(day)
    checked = validation.validate_events(events, start, end, known_products)
    quarantined = pa.concat_tables([validation.quarantine_table(validation.rejects_as_quarantine(rejects, EVENTS)),
                                    validation.quarantine_table(checked.quarantined)])
    storage.write_frame(checked.kept, layout.raw_events_day(day), EVENTS)
    storage.write_table(quarantined, layout.quarantine_day("raw_events", day))
    return _report(day, len(events) + len(rejects), checked.kept, quarantined.column(validation.QUARANTINE_REASON).to_pandas())


def ingest_table(schema: TableSchema, frame: pd.DataFrame, layout: DataLayout,
                 known_products: pd.Index | None = None) -> tuple[pd.DataFrame, IngestReport]:
    validators = {
        CATALOG.name: validation.validate_catalog,
        CUSTOMERS.name: validation.validate_customers,
        REVIEWS.name: lambda f: validation.validate_reviews(f, known_products if known_products is not None else pd.Index([])),
    }
    checked = validators[schema.name](frame)
    storage.write_frame(checked.kept, layout.table(schema.name), schema)
    storage.write_table(validation.quarantine_table(checked.quarantined), layout.quarantine_table(schema.name))
    return checked.kept, _report(schema.name, len(frame), checked.kept, checked.quarantined[validation.QUARANTINE_REASON])


def _report(name: str, rows_read: int, kept: pd.DataFrame, reasons: pd.Series) -> IngestReport:
    counts = reasons.value_counts().sort_index()
    return IngestReport(name, rows_read, len(kept), len(reasons), {str(k): int(v) for k, v in counts.items()})
