"""A JSON batch of events judged with the ingestion rules, row by row.

The same two steps as a landed canonical file: values are typed by the canonical adapter's coercion (a value
that cannot be typed is `bad_type_<column>`), then `event_rules` from ingestion apply, duplicates judged last
among the rows that pass every other rule (as `validate_events` does). The partition window of a row is its own
UTC day, so `outside_partition` never fires here. `known_products=None` (no catalog stored yet) leaves out the
`unknown_product` rule: the row is kept, and ingestion judges it against the catalog when the day is ingested.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ecomarket_assets.ingestion.adapters.canonical import coerce_table, conform
from ecomarket_assets.ingestion.adapters.dates import DateOrderError
from ecomarket_assets.ingestion.validation import _duplicate_key, apply_rules, event_rules
from ecomarket_assets.schemas import EVENTS, QUARANTINE_REASON

NOT_AN_OBJECT = "not_an_object"
ROW = "_row"  # position of the row in the posted batch, carried through the rules


@dataclass(frozen=True)
class Reject:
    index: int
    reason: str
    event_id: str | None
    record: Any

    def answer(self) -> dict[str, Any]:
        return {"index": self.index, "event_id": self.event_id, "reason": self.reason}


@dataclass
class JudgedBatch:
    kept: pd.DataFrame  # canonical events, typed, in batch order
    rejects: list[Reject] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.kept) + len(self.rejects)


def judge_batch(records: Sequence[Any], known_products: Collection[str] | None) -> JudgedBatch:
    """Split a batch into kept canonical rows and rejects (first rule broken); kept + rejects = records."""
    rejects: list[Reject] = []
    objects = [i for i, r in enumerate(records) if isinstance(r, dict)]
    rejects += [Reject(i, NOT_AN_OBJECT, None, records[i]) for i in range(len(records)) if not isinstance(records[i], dict)]
    raw = pd.DataFrame([{c: records[i].get(c) for c in EVENTS.names} for i in objects], columns=EVENTS.names,
                       dtype=object)
    raw[ROW] = objects
    try:
        typed, bad_type = coerce_table(raw, EVENTS)
    except DateOrderError:  # numeric dates that read both ways: the collector wants ISO 8601 times
        typed, bad_type = coerce_table(raw.assign(event_time=None), EVENTS)
        bad_type[:] = "bad_type_event_time"
    for pos in bad_type[bad_type.notna()].index:
        i = int(raw.at[pos, ROW])
        rejects.append(Reject(i, str(bad_type[pos]), _event_id(records[i]), records[i]))
    good = bad_type.isna()
    frame = conform(typed[good], EVENTS).assign(**{ROW: raw.loc[good, ROW].to_numpy()})
    day_start = frame["event_time"].dt.floor("D")
    rules = event_rules(day_start, day_start + pd.Timedelta(days=1), known_products or ())
    rules = [r for r in rules[:-1] if known_products is not None or r[0] != "unknown_product"]
    first = apply_rules(frame, rules)
    dups = apply_rules(first.kept, [_duplicate_key(EVENTS)])
    for bad in (first.quarantined, dups.quarantined):
        for i, reason in zip(bad[ROW], bad[QUARANTINE_REASON], strict=True):
            rejects.append(Reject(int(i), str(reason), _event_id(records[int(i)]), records[int(i)]))
    kept = dups.kept.sort_values(ROW).drop(columns=[ROW]).reset_index(drop=True)
    return JudgedBatch(kept=kept, rejects=sorted(rejects, key=lambda r: r.index))


def _event_id(record: Any) -> str | None:
    value = record.get("event_id") if isinstance(record, dict) else None
    return None if value is None else str(value)
