"""Plain check functions over stored ingestion outputs (the Dagster checks call these)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import pandas as pd

from ecomarket_assets.compute import Engine
from ecomarket_assets.ingestion import file_quarantine, validation
from ecomarket_assets.ingestion.pipeline import day_window, read_day, reconcile_files
from ecomarket_assets.ingestion.staging import StagedSource
from ecomarket_assets.schemas import EVENTS, TableSchema
from ecomarket_assets.storage import DataLayout, parquet_rows, read_frame, read_schema


@dataclass
class Outcome:
    passed: bool
    metadata: dict[str, object] = field(default_factory=dict)


def schema_mismatches(path, schema: TableSchema) -> list[str]:
    """Differences between a stored file's Arrow schema and the canonical one."""
    stored = read_schema(path)
    expected = schema.arrow()
    problems = [f"missing {n}" for n in expected.names if n not in stored.names]
    problems += [f"unexpected {n}" for n in stored.names if n not in expected.names]
    for f in expected:
        if f.name in stored.names and stored.field(f.name).type != f.type:
            problems.append(f"{f.name}: {stored.field(f.name).type} != {f.type}")
    return problems


def events_schema(layout: DataLayout, days: list[str]) -> Outcome:
    bad = {}
    for day in days:
        path = layout.raw_events_day(day)
        problems = ["file missing"] if not path.exists() else schema_mismatches(path, EVENTS)
        if problems:
            bad[day] = "; ".join(problems)
    return Outcome(not bad, {"days_checked": len(days), "days_failing": len(bad), "problems": str(bad)[:2000]})


def _known_products(layout: DataLayout) -> pd.Index:
    return pd.Index(read_frame(layout.table("catalog"), columns=["product_id"])["product_id"])


def _day_rule_counts(day: str, layout: DataLayout, products: pd.Index, rule_names: list[str]) -> dict[str, int]:
    frame = read_frame(layout.raw_events_day(day))
    start, end = day_window(day)
    rules = [r for r in validation.event_rules(start, end, products) if r[0] in rule_names]
    return validation.broken_rows(frame, rules)


def events_rules(layout: DataLayout, days: list[str], rule_names: list[str], engine: Engine | None = None) -> Outcome:
    """Count stored rows that break the named validation rules (must be zero); one task per day on Dask."""
    engine = engine or Engine("local")
    per_day = engine.map(_day_rule_counts, days, layout=layout, products=_known_products(layout), rule_names=rule_names)
    totals = {name: sum(counts.get(name, 0) for counts in per_day) for name in rule_names}
    failing_days = [day for day, counts in zip(days, per_day, strict=True) if any(counts.values())]
    return Outcome(not failing_days, {**{f"rows_{k}": v for k, v in totals.items()}, "threshold": 0,
                                      "days_checked": len(days), "failing_days": ", ".join(failing_days[:20])})


def _day_reconciliation(day: str, layout: DataLayout, sources: list[StagedSource]) -> tuple[int, int, int]:
    events, rejects = read_day(sources, day)
    return (len(events) + len(rejects), parquet_rows(layout.raw_events_day(day)),
            parquet_rows(layout.quarantine_day("raw_events", day)))


def events_reconciled(layout: DataLayout, sources: list[StagedSource], days: list[str],
                      engine: Engine | None = None) -> Outcome:
    engine = engine or Engine("local")
    per_day = engine.map(_day_reconciliation, days, layout=layout, sources=sources)
    mismatches = {day: f"{read} read != {kept} kept + {quarantined} quarantined"
                  for day, (read, kept, quarantined) in zip(days, per_day, strict=True) if read != kept + quarantined}
    read_total, kept_total, quarantined_total = (sum(column) for column in zip(*per_day, strict=True)) if per_day else (0, 0, 0)
    return Outcome(not mismatches, {"rows_read": read_total, "rows_kept": kept_total,
                                    "rows_quarantined": quarantined_total, "mismatches": str(mismatches)[:2000]})


def files_reconciled(layout: DataLayout, sources: list[StagedSource], partition_days: set[str],
                     waiting_days: Collection[str] = ()) -> Outcome:
    """Every source file's rows are kept, quarantined or waiting for their day: none lost."""
    files = reconcile_files(sources, partition_days, layout, waiting_days)
    lost = {f.description: f.lost for f in files if f.lost}
    return Outcome(not lost, {"files": len(files), "rows_read": sum(f.read for f in files),
                              "rows_kept": sum(f.kept for f in files),
                              "rows_quarantined": sum(f.quarantined + f.unfiled for f in files),
                              "rows_not_yet_ingested": sum(f.not_yet_ingested for f in files),
                              "rows_lost": sum(lost.values()), "files_losing_rows": str(lost)[:2000]})


def files_quarantined(root) -> Outcome:
    """Files in the file quarantine (each waits for a person to fix and re-drop or delete it)."""
    bad = file_quarantine.quarantined_files(root)
    return Outcome(not bad, {"quarantined_files": len(bad),
                             "files": "; ".join(f"{b.file}: {b.problem}" for b in bad)[:2000] or "none",
                             "path": str(file_quarantine.file_quarantine_dir(root))})


def quarantine_share(layout: DataLayout, days: list[str], threshold: float) -> Outcome:
    kept = sum(parquet_rows(layout.raw_events_day(d)) for d in days)
    quarantined = sum(parquet_rows(layout.quarantine_day("raw_events", d)) for d in days)
    share = quarantined / max(kept + quarantined, 1)
    return Outcome(share <= threshold, {"quarantine_share": share, "threshold": threshold, "rows_quarantined": quarantined})


def table_contract(layout: DataLayout, schema: TableSchema, rule_names: list[str]) -> Outcome:
    path = layout.table(schema.name)
    problems = schema_mismatches(path, schema)
    frame = read_frame(path)
    counts = {
        "missing_required_field": int(frame[schema.required].isna().any(axis=1).sum()),
        f"duplicate_{schema.key}": int(frame[schema.key].duplicated().sum()),
    }
    if rule_names:
        products = _known_products(layout) if "unknown_product" in rule_names else pd.Index([])
        validators = {
            "catalog": lambda f: validation.validate_catalog(f),
            "reviews": lambda f: validation.validate_reviews(f, products),
        }
        reasons = validators[schema.name](frame).reasons
        counts |= {name: reasons.get(name, 0) for name in rule_names}
    passed = not problems and not any(counts.values())
    return Outcome(passed, {"rows": len(frame), "schema_problems": "; ".join(problems) or "none",
                            **{f"rows_{k}": v for k, v in counts.items()}})
