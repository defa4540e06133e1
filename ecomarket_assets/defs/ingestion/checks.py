"""Data contracts on the ingestion outputs.

Ingestion already quarantines bad rows; these checks re-read what was stored,
so a bug in the cleaning code, a hand-edited file or a changed source cannot
reach downstream assets unnoticed. Contracts block downstream (ERROR); the
quarantine share is an alarm (WARN).
"""


import dagster as dg

from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.defs.ingestion.assets import (
    catalog,
    current_days,
    customers,
    raw_events,
    reviews,
)
from ecomarket_assets.ingestion import checks as logic
from ecomarket_assets.partitions import daily_partitions
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.schemas import CATALOG, CUSTOMERS, REVIEWS
from ecomarket_assets.storage import read_frame

QUARANTINE_WARN_SHARE = 0.05


def _result(outcome: logic.Outcome, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, severity=severity, metadata=outcome.metadata)


def _rules_result(context: dg.AssetCheckExecutionContext, data_dir: DataDirResource, compute: ComputeResource,
                  rule_names: list[str]) -> dg.AssetCheckResult:
    """The rules re-run over every stored day of the run; on Dask one task per day."""
    with compute.session() as engine:
        outcome = logic.events_rules(data_dir.layout(), context.partition_keys, rule_names, engine)
        outcome.metadata |= engine.metadata()
    return _result(outcome)


def _events_check(name: str, description: str, blocking: bool = True):
    return dg.asset_check(asset=raw_events, name=name, description=description, blocking=blocking,
                          partitions_def=daily_partitions)


@_events_check("events_schema", "Stored columns and Arrow types equal the canonical events schema.")
def events_schema(context: dg.AssetCheckExecutionContext, data_dir: DataDirResource) -> dg.AssetCheckResult:
    return _result(logic.events_schema(data_dir.layout(), context.partition_keys))


@_events_check("events_unique_ids", "No event_id appears twice in a day.")
def events_unique_ids(context: dg.AssetCheckExecutionContext, data_dir: DataDirResource,
                      compute: ComputeResource) -> dg.AssetCheckResult:
    return _rules_result(context, data_dir, compute, ["duplicate_event_id"])


@_events_check("events_in_partition", "Every event_time lies inside its UTC day; required fields are present.")
def events_in_partition(context: dg.AssetCheckExecutionContext, data_dir: DataDirResource,
                        compute: ComputeResource) -> dg.AssetCheckResult:
    return _rules_result(context, data_dir, compute, ["missing_required_field", "unknown_event_type", "outside_partition"])


@_events_check("events_known_products", "Every product_id exists in the catalog (referential integrity).")
def events_known_products(context: dg.AssetCheckExecutionContext, data_dir: DataDirResource,
                          compute: ComputeResource) -> dg.AssetCheckResult:
    return _rules_result(context, data_dir, compute, ["unknown_product"])


@_events_check("events_valid_quantities_and_prices", "Quantities in 1..1000 and prices in (0, 10000].")
def events_valid_quantities_and_prices(context: dg.AssetCheckExecutionContext, data_dir: DataDirResource,
                                       compute: ComputeResource) -> dg.AssetCheckResult:
    return _rules_result(context, data_dir, compute, ["bad_quantity", "missing_price", "bad_price"])


@_events_check("events_reconciled", "Rows read from the sources = rows kept + rows quarantined, per day.")
def events_reconciled(context: dg.AssetCheckExecutionContext, data_dir: DataDirResource, source: ShopSourceResource,
                      compute: ComputeResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    with compute.session() as engine:
        outcome = logic.events_reconciled(layout, source.event_sources(layout), context.partition_keys, engine)
        outcome.metadata |= engine.metadata()
    return _result(outcome)


@_events_check("events_quarantine_share", f"Alarm when more than {QUARANTINE_WARN_SHARE:.0%} of a day's rows are quarantined.",
               blocking=False)
def events_quarantine_share(context: dg.AssetCheckExecutionContext, data_dir: DataDirResource) -> dg.AssetCheckResult:
    outcome = logic.quarantine_share(data_dir.layout(), context.partition_keys, QUARANTINE_WARN_SHARE)
    return _result(outcome, dg.AssetCheckSeverity.WARN)


@_events_check("events_files_reconciled", "Per source and landed file: rows read = rows kept + rows quarantined "
               "(on partition days, outside them or undated) + rows of days not ingested yet (today's wait for "
               "their partition). Nothing is lost.")
def events_files_reconciled(data_dir: DataDirResource, source: ShopSourceResource) -> dg.AssetCheckResult:
    layout = data_dir.layout()
    outcome = logic.files_reconciled(layout, source.event_sources(layout), *current_days())
    return _result(outcome)


@_events_check("landing_files_quarantined", "Alarm while files that could not be read sit in the file quarantine "
               "(data/quarantine/files/, each with a reason file naming the problem and the fix).", blocking=False)
def landing_files_quarantined(data_dir: DataDirResource, source: ShopSourceResource) -> dg.AssetCheckResult:
    outcome = logic.files_quarantined(source.landed_root(data_dir.layout()))
    return _result(outcome, dg.AssetCheckSeverity.WARN)


def _table_checks(asset, schema, extra_rules: list[str]):
    @dg.asset_check(asset=asset, name=f"{schema.name}_contract", blocking=True,
                    description=f"{schema.name}: canonical schema, unique {schema.key}, no rule broken in stored rows.")
    def _check(data_dir: DataDirResource) -> dg.AssetCheckResult:
        return _result(logic.table_contract(data_dir.layout(), schema, extra_rules))

    return _check


catalog_contract = _table_checks(catalog, CATALOG, ["bad_price"])
customers_contract = _table_checks(customers, CUSTOMERS, [])
reviews_contract = _table_checks(reviews, REVIEWS, ["bad_rating", "empty_text", "unknown_product"])


@dg.asset_check(asset=customers, name="customers_consent_known", blocking=False,
                description="Share of customers whose consent flags are known (null = unknown = not contactable).")
def customers_consent_known(data_dir: DataDirResource) -> dg.AssetCheckResult:
    frame = read_frame(data_dir.layout().table("customers"), columns=["email_opt_in"])
    known = float(frame["email_opt_in"].notna().mean()) if len(frame) else 0.0
    return dg.AssetCheckResult(passed=known > 0.5, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"share_with_known_consent": known, "threshold": 0.5})
