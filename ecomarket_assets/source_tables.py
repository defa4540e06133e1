"""What every source returns: the file adapters and the simulated shop alike.

It sits beside schemas.py, not in ingestion/, because both ingestion and the
shop simulation build it, and neither should import the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ecomarket_assets.schemas import CATALOG, CUSTOMERS, EVENTS, QUARANTINE_REASON, REVIEWS

SOURCE_RECORD = "source_record"


def empty_rejects() -> pd.DataFrame:
    """Rows an adapter could not map, kept with their reason (never dropped silently)."""
    return pd.DataFrame(
        {
            "event_time": pd.Series([], dtype="datetime64[us, UTC]"),
            SOURCE_RECORD: pd.Series([], dtype=object),
            QUARANTINE_REASON: pd.Series([], dtype=object),
        }
    )


@dataclass
class SourceTables:
    """A source mapped into the canonical schemas.

    `events` has exactly the canonical columns but is not yet validated: ingestion
    checks every rule and quarantines what breaks one. `rejects` holds source rows
    the adapter could not map at all: `event_time` (UTC, NaT if unknown, used to
    file the row under its day), `source_record` (the original row as JSON) and
    `quarantine_reason`. For every source: rows read = len(events) + len(rejects).
    """

    events: pd.DataFrame
    catalog: pd.DataFrame = field(default_factory=CATALOG.empty)
    customers: pd.DataFrame = field(default_factory=CUSTOMERS.empty)
    reviews: pd.DataFrame = field(default_factory=REVIEWS.empty)
    rejects: pd.DataFrame = field(default_factory=empty_rejects)
    notes: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for schema, frame in (
            (EVENTS, self.events),
            (CATALOG, self.catalog),
            (CUSTOMERS, self.customers),
            (REVIEWS, self.reviews),
        ):
            missing = [c for c in schema.names if c not in frame.columns]
            if missing:
                raise ValueError(f"adapter output for {schema.name} lacks columns {missing}")

    @property
    def rows_read(self) -> int:
        return len(self.events) + len(self.rejects)
