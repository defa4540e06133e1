"""A JSON batch of events judged with the ingestion rules, row by row, after the collector's own door checks.

The door (before typing, in column order, first failure wins):
- a row that is not a JSON object is `not_an_object`;
- a text column (ids, event_type, channel) holds a JSON string or null, `event_time` a string; any other JSON
  type (object, list, number, true/false) is `bad_type_<column>`, never stored as its Python text;
  `quantity` and `unit_price` refuse objects, lists and true/false the same way;
- a string longer than `Limits.max_field_chars` characters is `too_long_<column>`;
- a string holding a NUL character is `nul_byte_<column>` (never cut, never stored);
- a required column (`EVENTS.required`) absent, null or "" is `missing_required_field`, as ingestion names it
  (a `view` without `quantity` included: the canonical schema has no default quantity).
Each of these rejects carries a `detail` sentence naming the column (and the limit).

Then the same two steps as a landed canonical file: values are typed by the canonical adapter's coercion (a value
that cannot be typed is `bad_type_<column>`), then `event_rules` from ingestion apply, with
`future_event_time` (an event later than now + `Limits.future_skew`) right after `missing_required_field`;
duplicates are judged last among the rows that pass every other rule (as `validate_events` does). The partition
window of a row is its own UTC day, so `outside_partition` never fires here. `known_products=None` (no catalog
stored yet) leaves out the `unknown_product` rule: the row is kept, and ingestion judges it against the catalog
when the day is ingested.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from ecomarket_assets.ingestion.adapters.canonical import coerce_table, conform
from ecomarket_assets.ingestion.adapters.dates import DateOrderError
from ecomarket_assets.ingestion.validation import _duplicate_key, apply_rules, event_rules
from ecomarket_assets.schemas import EVENTS, QUARANTINE_REASON

NOT_AN_OBJECT = "not_an_object"
MISSING = "missing_required_field"  # ingestion's name (validation._missing_required)
FUTURE = "future_event_time"
ROW = "_row"  # position of the row in the posted batch, carried through the rules
TEXT_COLUMNS = frozenset(c.name for c in EVENTS.columns if pa.types.is_string(c.arrow_type)) | {"event_time"}
ECHO_CHARS = 100  # at most this much of an event_id is echoed in an answer
JSON_TYPES = {dict: "object", list: "array", bool: "true/false", int: "number", float: "number", str: "string"}


@dataclass(frozen=True)
class Limits:
    """What the door allows: the longest string value, and how far ahead of now an event may be dated."""

    max_field_chars: int = 1_000
    future_skew: pd.Timedelta = pd.Timedelta(minutes=10)


@dataclass(frozen=True)
class Reject:
    index: int
    reason: str
    event_id: str | None
    record: Any
    detail: str | None = None

    def answer(self) -> dict[str, Any]:
        """What the HTTP answer says of this row: never more than `ECHO_CHARS` of its event_id."""
        return {"index": self.index, "event_id": excerpt(self.event_id, ECHO_CHARS), "reason": self.reason,
                "detail": self.detail}


@dataclass
class JudgedBatch:
    kept: pd.DataFrame  # canonical events, typed, in batch order
    rejects: list[Reject] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.kept) + len(self.rejects)


def excerpt(text: str | None, limit: int) -> str | None:
    """`text` cut to `limit` characters, the cut marked with the full length."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def door_check(record: dict[str, Any], limits: Limits) -> tuple[str, str] | None:
    """(reason, detail) of the first door check `record` fails (see the module docstring), or None."""
    for column in EVENTS.names:
        value = record.get(column)
        if value is None:
            continue
        if isinstance(value, (dict, list, bool)) or (column in TEXT_COLUMNS and not isinstance(value, str)):
            kind = JSON_TYPES.get(type(value), type(value).__name__)
            wanted = "a string" if column in TEXT_COLUMNS else "a number"
            return f"bad_type_{column}", f"{column} must be {wanted} or null, not a JSON {kind}"
        if isinstance(value, str):
            if len(value) > limits.max_field_chars:
                return (f"too_long_{column}", f"{column} holds {len(value):,} characters; the limit is "
                        f"{limits.max_field_chars:,} (ECOMARKET_COLLECTOR_MAX_FIELD_CHARS)")
            if "\x00" in value:
                return f"nul_byte_{column}", f"{column} holds a NUL character (\\u0000 in JSON), which is refused"
    missing = [c for c in EVENTS.required if record.get(c) is None or record.get(c) == ""]
    if missing:
        return MISSING, f"required and missing (absent, null or empty): {', '.join(missing)}"
    return None


def judge_batch(records: Sequence[Any], known_products: Collection[str] | None, limits: Limits | None = None,
                now: pd.Timestamp | None = None) -> JudgedBatch:
    """Split a batch into kept canonical rows and rejects (first rule broken); kept + rejects = records.

    `now` (UTC; default the clock) is what `future_event_time` measures against.
    """
    limits = limits or Limits()
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    rejects: list[Reject] = []
    objects = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            rejects.append(Reject(i, NOT_AN_OBJECT, None, record, "each event is a JSON object"))
        elif (refused := door_check(record, limits)) is not None:
            rejects.append(Reject(i, refused[0], _event_id(record), record, refused[1]))
        else:
            objects.append(i)
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
        column = str(bad_type[pos]).removeprefix("bad_type_")
        rejects.append(Reject(i, str(bad_type[pos]), _event_id(records[i]), records[i],
                              f"{column} cannot be read as {_wanted(column)}"))
    good = bad_type.isna()
    frame = conform(typed[good], EVENTS).assign(**{ROW: raw.loc[good, ROW].to_numpy()})
    day_start = frame["event_time"].dt.floor("D")
    rules = event_rules(day_start, day_start + pd.Timedelta(days=1), known_products or ())
    rules = [r for r in rules[:-1] if known_products is not None or r[0] != "unknown_product"]
    latest = now + limits.future_skew
    rules.insert(1, (FUTURE, lambda f: f["event_time"] > latest))
    first = apply_rules(frame, rules)
    dups = apply_rules(first.kept, [_duplicate_key(EVENTS)])
    for bad in (first.quarantined, dups.quarantined):
        for i, reason in zip(bad[ROW], bad[QUARANTINE_REASON], strict=True):
            detail = (f"event_time is after now + {limits.future_skew} (ECOMARKET_COLLECTOR_FUTURE_SKEW_SECONDS)"
                      if reason == FUTURE else None)
            rejects.append(Reject(int(i), str(reason), _event_id(records[int(i)]), records[int(i)], detail))
    kept = dups.kept.sort_values(ROW).drop(columns=[ROW]).reset_index(drop=True)
    return JudgedBatch(kept=kept, rejects=sorted(rejects, key=lambda r: r.index))


def _wanted(column: str) -> str:
    return {"event_time": "an ISO 8601 time", "quantity": "a whole number", "unit_price": "a number"}.get(
        column, "text")


def _event_id(record: Any) -> str | None:
    value = record.get("event_id") if isinstance(record, dict) else None
    return value if isinstance(value, str) else None
