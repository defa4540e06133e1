"""Row rules for the canonical tables: keep what is valid, quarantine the rest with a reason.

Each rule is a vectorised mask. A row is quarantined under the first rule it
breaks, so the per-reason counts add up to the quarantined total and
rows read = rows kept + rows quarantined, always.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ecomarket_assets.schemas import (
    CATALOG,
    CUSTOMERS,
    EVENT_TYPES,
    EVENTS,
    MAX_QUANTITY,
    MAX_UNIT_PRICE,
    QUARANTINE_REASON,
    REVIEWS,
    TableSchema,
)
from ecomarket_assets.source_tables import SOURCE_RECORD

PRICED_EVENTS = ("cart", "purchase", "return")
SOURCE_FILE = "source_file"  # which staged source a row came from: kept through validation, never stored in events
CROSS_DAY_DUPLICATE = "duplicate_event_id_across_days"

Rule = tuple[str, Callable[[pd.DataFrame], pd.Series]]


@dataclass
class Validated:
    kept: pd.DataFrame
    quarantined: pd.DataFrame  # the table's columns + source_record + quarantine_reason

    @property
    def reasons(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.quarantined[QUARANTINE_REASON].value_counts().sort_index().items()}


def apply_rules(frame: pd.DataFrame, rules: list[Rule]) -> Validated:
    """Label each row with the first rule it breaks; split kept from quarantined."""
    reason = pd.Series(None, index=frame.index, dtype=object)
    for name, broken in rules:
        open_rows = reason.isna()
        if not open_rows.any():
            break
        mask = broken(frame).fillna(True).astype(bool) & open_rows
        reason[mask] = name
    bad = reason.notna()
    quarantined = frame[bad].assign(**{SOURCE_RECORD: None, QUARANTINE_REASON: reason[bad]})
    return Validated(kept=frame[~bad].reset_index(drop=True), quarantined=quarantined.reset_index(drop=True))


def _missing_required(schema: TableSchema) -> Rule:
    return "missing_required_field", lambda f: f[schema.required].isna().any(axis=1)


def _duplicate_key(schema: TableSchema) -> Rule:
    return f"duplicate_{schema.key}", lambda f: f[schema.key].duplicated(keep="first")


def event_rules(day_start: pd.Timestamp, day_end: pd.Timestamp, known_products: set[str] | pd.Index) -> list[Rule]:
    """Rules for one day of events; [day_start, day_end) is the partition window (UTC)."""
    products = pd.Index(known_products)
    return [
        _missing_required(EVENTS),
        ("unknown_event_type", lambda f: ~f["event_type"].isin(EVENT_TYPES)),
        ("outside_partition", lambda f: (f["event_time"] < day_start) | (f["event_time"] >= day_end)),
        ("bad_quantity", lambda f: (f["quantity"] < 1) | (f["quantity"] > MAX_QUANTITY)),
        ("missing_price", lambda f: f["event_type"].isin(PRICED_EVENTS) & f["unit_price"].isna() & _source_has_prices(f)),
        ("bad_price", lambda f: f["unit_price"].notna() & ((f["unit_price"] <= 0) | (f["unit_price"] > MAX_UNIT_PRICE))),
        ("unknown_product", lambda f: ~f["product_id"].isin(products)),
        _duplicate_key(EVENTS),
    ]


def _source_has_prices(frame: pd.DataFrame) -> pd.Series:
    """Sources that never carry prices (RetailRocket) may omit them; others may not."""
    has_any = frame["unit_price"].notna().any()
    return pd.Series(has_any, index=frame.index)


def validate_events(events: pd.DataFrame, day_start: pd.Timestamp, day_end: pd.Timestamp,
                    known_products: set[str] | pd.Index, earlier_ids: Collection[str] = ()) -> Validated:
    """`earlier_ids`: event ids this day repeats from an earlier day (quarantined as a cross-day duplicate)."""
    events = coerce(events, EVENTS)
    # Duplicates are judged among rows that pass every other rule, so a bad first copy
    # does not push a good second copy into quarantine.
    rules = event_rules(day_start, day_end, known_products)[:-1]
    if len(earlier_ids):
        earlier = pd.Index(list(earlier_ids))
        rules.append((CROSS_DAY_DUPLICATE, lambda f: f["event_id"].isin(earlier)))
    first = apply_rules(events, rules)
    dups = apply_rules(first.kept, [_duplicate_key(EVENTS)])
    return Validated(kept=dups.kept, quarantined=pd.concat([first.quarantined, dups.quarantined], ignore_index=True))


def validate_catalog(catalog: pd.DataFrame) -> Validated:
    return apply_rules(
        coerce(catalog, CATALOG),
        [
            _missing_required(CATALOG),
            ("bad_price", lambda f: f["price"].notna() & ((f["price"] <= 0) | (f["price"] > MAX_UNIT_PRICE))),
            _duplicate_key(CATALOG),
        ],
    )


def validate_customers(customers: pd.DataFrame) -> Validated:
    return apply_rules(coerce(customers, CUSTOMERS), [_missing_required(CUSTOMERS), _duplicate_key(CUSTOMERS)])


def validate_reviews(reviews: pd.DataFrame, known_products: set[str] | pd.Index) -> Validated:
    products = pd.Index(known_products)
    return apply_rules(
        coerce(reviews, REVIEWS),
        [
            _missing_required(REVIEWS),
            ("bad_rating", lambda f: f["rating"].notna() & ~f["rating"].isin([1, 2, 3, 4, 5])),
            ("empty_text", lambda f: f["text"].astype(str).str.strip().eq("")),
            ("unknown_product", lambda f: ~f["product_id"].isin(products)),
            _duplicate_key(REVIEWS),
        ],
    )


def coerce(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Exactly the schema's columns, in order (plus the `source_file` tag if present); a missing column is a clear error."""
    missing = [c for c in schema.names if c not in frame.columns]
    if missing:
        from ecomarket_assets.schemas import SchemaError

        raise SchemaError(f"{schema.name}: missing columns {missing}; expected {schema.names}")
    return frame[schema.names + [c for c in (SOURCE_FILE,) if c in frame.columns]].reset_index(drop=True)


def rejects_as_quarantine(rejects: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Adapter rejects in the quarantine layout: schema columns empty except the time."""
    out = pd.DataFrame({c: pd.Series([None] * len(rejects), dtype=object) for c in schema.names})
    if "event_time" in schema.names:
        out["event_time"] = rejects["event_time"].to_numpy()
    out[SOURCE_RECORD] = rejects[SOURCE_RECORD].to_numpy()
    out[QUARANTINE_REASON] = rejects[QUARANTINE_REASON].to_numpy()
    if SOURCE_FILE in rejects.columns:
        out[SOURCE_FILE] = rejects[SOURCE_FILE].to_numpy()
    return out


def quarantine_table(quarantined: pd.DataFrame) -> pa.Table:
    """Quarantine files store values as text: a bad row must be kept even if it fits no type."""
    columns = {}
    for col in quarantined.columns:
        values = quarantined[col]
        columns[col] = pa.array(np.where(values.isna(), None, values.astype(str)), type=pa.string())
    return pa.table(columns, schema=pa.schema([(c, pa.string()) for c in quarantined.columns]))


def broken_rows(frame: pd.DataFrame, rules: list[Rule]) -> dict[str, int]:
    """How many rows break each rule (used by asset checks on stored, already-clean data)."""
    return {name: int(broken(frame).fillna(True).astype(bool).sum()) for name, broken in rules}
