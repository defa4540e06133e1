"""Ingestion assets: the shop's catalog, customers, reviews and daily events.

Each asset validates its source rows, writes the kept rows as Parquet and the
rest to quarantine with a reason, and reports counts that reconcile.
"""


import dagster as dg
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.compute import ComputeResource
from ecomarket_assets.ingestion import consent as consent_files
from ecomarket_assets.ingestion import file_quarantine, landing
from ecomarket_assets.ingestion.pipeline import (
    IngestReport,
    cross_day_duplicates,
    drop_stale_unfiled,
    ingest_events_day,
    ingest_table,
    pending_days,
    quarantine_unfiled,
    reconcile_files,
)
from ecomarket_assets.partitions import daily_partitions
from ecomarket_assets.resources import DataDirResource, ShopSourceResource
from ecomarket_assets.schemas import CATALOG, CUSTOMERS, EVENTS, REVIEWS
from ecomarket_assets.storage import read_frame

GROUP = "ingestion"
OWNERS = ["team:data-platform"]


def current_days() -> tuple[set[str], set[str]]:
    """The daily partitions that exist now, and the days after them whose rows wait for their partition
    (today's and, for clock skew, tomorrow's: `pending_days`); both on Dagster's clock."""
    keys = daily_partitions.get_partition_keys()
    return set(keys), pending_days(keys)


def _report_metadata(report: IngestReport, path) -> dict[str, object]:
    return {
        "dagster/row_count": report.rows_kept,
        "rows_read": report.rows_read,
        "rows_kept": report.rows_kept,
        "rows_quarantined": report.rows_quarantined,
        "quarantine_reasons": md.table(report.reasons, "reason", "rows"),
        "path": dg.MetadataValue.path(str(path)),
    }


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    description="Product catalog in the canonical schema (product_id, title, description, category, brand, price).",
    metadata={"dagster/column_schema": CATALOG.dagster()},
)
def catalog(context: dg.AssetExecutionContext, data_dir: DataDirResource, source: ShopSourceResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    staged = source.staged(layout)
    kept, report = ingest_table(CATALOG, staged.table("catalog"), layout, rejects=staged.table_rejects("catalog"))
    by_category = kept.groupby("category").agg(products=("product_id", "size"), median_price=("price", "median"))
    meta = _report_metadata(report, layout.table("catalog"))
    meta |= {
        "source": staged.manifest["description"],
        "categories": len(by_category),
        "products_by_category": md.table(by_category.reset_index()),
        "preview": md.preview(kept),
        "source_notes": md.table(staged.manifest["notes"], "note", "value"),
    }
    truth = source.truth(layout)
    if truth is not None:
        meta["ground_truth"] = dg.MetadataValue.path(str(truth.folder))
    return dg.MaterializeResult(metadata=meta)


class CustomersConfig(dg.Config):
    consent_dir: str = ""  # folder of consent files (newsletter tool exports); empty = <data dir>/consent


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    description="Customers with country, sign-up time and consent flags (email / SMS / push opt-in). Consent files "
    "in <data dir>/consent/ (user_id, email_opt_in, sms_opt_in, push_opt_in, updated_at) override the source's "
    "flags: per user the latest row wins; rows breaking the contract go to quarantine/consent.",
    metadata={"dagster/column_schema": CUSTOMERS.dagster()},
)
def customers(config: CustomersConfig, data_dir: DataDirResource, source: ShopSourceResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    folder = consent_files.consent_folder(layout, config.consent_dir)
    try:  # every consent file is read before anything is written: a broken one fails the run, naming it
        consent_rows = consent_files.read_consent(folder)
    except consent_files.ConsentFileError as error:
        raise dg.Failure(description=f"consent files in {folder}: {error}") from error
    staged = source.staged(layout)
    kept, report = ingest_table(CUSTOMERS, staged.table("customers"), layout, rejects=staged.table_rejects("customers"))
    kept, applied = consent_files.store_consent(layout, kept, consent_rows, folder)
    meta = _report_metadata(report, layout.table("customers"))
    meta |= {
        "consent_share": md.table(consent_files.opted_in_shares(kept), "flag", "opted in"),
        "consent_folder": dg.MetadataValue.path(str(folder)),
        "consent_files": applied.files,
        "consent_rows_read": applied.rows_read,
        "consent_rows_applied": applied.rows_applied,
        "consent_rows_superseded": applied.rows_superseded,
        "consent_rows_quarantined": applied.rows_quarantined,
        "consent_quarantine_reasons": md.table(applied.reasons, "reason", "rows"),
        "consent_users_updated": applied.users_updated,
        "consent_users_unknown_to_shop": applied.users_unknown,
        "consent_quarantine_path": dg.MetadataValue.path(str(layout.quarantine_table("consent"))),
        "countries": md.table(kept["country"].value_counts().head(10).rename_axis("country").reset_index()),
        "preview": md.preview(kept),
    }
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[catalog],
    description="Product reviews (rating 1-5 and text); reviews of unknown products are quarantined.",
    metadata={"dagster/column_schema": REVIEWS.dagster()},
)
def reviews(data_dir: DataDirResource, source: ShopSourceResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    products = pd.Index(read_frame(layout.table("catalog"), columns=["product_id"])["product_id"])
    staged = source.staged(layout)
    kept, report = ingest_table(REVIEWS, staged.table("reviews"), layout, known_products=products,
                                rejects=staged.table_rejects("reviews"))
    meta = _report_metadata(report, layout.table("reviews"))
    ratings = kept["rating"].value_counts().sort_index()
    meta |= {
        "rating_distribution": md.table({str(k): int(v) for k, v in ratings.items()}, "stars", "reviews"),
        "mean_rating": float(kept["rating"].mean()) if len(kept) else 0.0,
        "preview": md.preview(kept),
    }
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[catalog],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=(
        "Shop events (view, cart, purchase, return, review) of one UTC day from the configured source "
        "and any files in the landing folder. A backfill over a range runs in one process."
    ),
    metadata={"dagster/column_schema": EVENTS.dagster()},
)
def raw_events(context: dg.AssetExecutionContext, data_dir: DataDirResource, source: ShopSourceResource,
               compute: ComputeResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    intake = source.intake_landing(layout)  # archive new landing files, quarantine unreadable ones
    for bad in intake.quarantined:
        context.log.warning(f"quarantined landing file {bad.file}: {bad.problem} (fix: {bad.fix})")
    for old in intake.released:
        context.log.info(f"{old.file}: a readable version replaced the quarantined one ({old.problem})")
    sources = source.event_sources(layout)
    partition_days, waiting_days = current_days()
    products = pd.Index(read_frame(layout.table("catalog"), columns=["product_id"])["product_id"])
    earlier_ids = cross_day_duplicates(sources, partition_days)
    with compute.session() as engine:  # on Dask, one task per day: a backfill's days are ingested in parallel
        reports = engine.map(ingest_events_day, context.partition_keys, sources=sources, known_products=products,
                             layout=layout, earlier_ids=earlier_ids)
        engine_meta = engine.metadata()
    unfiled = {s.root.name: quarantine_unfiled(s, partition_days, layout, waiting_days) for s in sources}
    replaced = drop_stale_unfiled(sources, layout)  # a replaced file's old rows leave the quarantine with it
    if replaced:
        context.log.info(f"removed the unfiled quarantine of {len(replaced)} replaced sources: {replaced[:10]}")
    for report in reports:
        context.log.info(f"{report.name}: read {report.rows_read}, kept {report.rows_kept}, "
                         f"quarantined {report.rows_quarantined}")
    meta = _events_metadata(reports, layout, sources, context.partition_keys)
    meta |= _files_metadata(sources, partition_days, waiting_days, unfiled, layout, source.landed_root(layout))
    return dg.MaterializeResult(metadata=meta | engine_meta)


def _files_metadata(sources, partition_days: set[str], waiting_days: set[str], unfiled: dict[str, dict[str, int]],
                    layout, landed_root) -> dict[str, object]:
    """Per source file: rows read = kept + quarantined (+ rows of days not ingested yet); quarantined files."""
    files = pd.DataFrame([vars(r) | {"lost": r.lost}
                          for r in reconcile_files(sources, partition_days, layout, waiting_days)])
    unfiled_reasons: dict[str, int] = {}
    for counts in unfiled.values():
        for reason, rows in counts.items():
            unfiled_reasons[reason] = unfiled_reasons.get(reason, 0) + rows
    bad_files = file_quarantine.quarantined_table(landed_root)
    return {
        "files": md.table(files.drop(columns=["source"])),
        "rows_lost": int(files["lost"].sum()),
        "rows_unfiled": int(files["unfiled"].sum()),
        "rows_not_yet_ingested": int(files["not_yet_ingested"].sum()),  # days not run yet, and today's rows
        "unfiled_reasons": md.table(unfiled_reasons, "reason", "rows"),
        "quarantined_files": len(bad_files),
        "quarantined_file_list": md.table(bad_files[["file", "problem", "fix"]]) if len(bad_files)
        else dg.MetadataValue.text("none"),
        "file_quarantine_path": dg.MetadataValue.path(str(file_quarantine.file_quarantine_dir(landed_root))),
        "landed_archive_path": dg.MetadataValue.path(str(landing.archive_dir(landed_root))),
    }


def _events_metadata(reports: list[IngestReport], layout, sources, days: list[str]) -> dict[str, object]:
    per_day = pd.DataFrame(
        {"day": [r.name for r in reports], "read": [r.rows_read for r in reports], "kept": [r.rows_kept for r in reports],
         "quarantined": [r.rows_quarantined for r in reports]}
    )
    reasons: dict[str, int] = {}
    for r in reports:
        for k, v in r.reasons.items():
            reasons[k] = reasons.get(k, 0) + v
    sample = read_frame(layout.raw_events_day(days[-1]))
    meta: dict[str, object] = {
        "dagster/row_count": int(per_day["kept"].sum()),
        "days": len(days),
        "rows_read": int(per_day["read"].sum()),
        "rows_kept": int(per_day["kept"].sum()),
        "rows_quarantined": int(per_day["quarantined"].sum()),
        "quarantine_reasons": md.table(reasons, "reason", "rows"),
        "event_types_last_day": md.table(sample["event_type"].value_counts().rename_axis("event_type").reset_index()),
        "sources": md.table({s.manifest["description"]: s.root.name for s in sources}, "source", "stage"),
        "path": dg.MetadataValue.path(str(layout.raw_events_day(days[-1]).parent.parent)),
        "quarantine_path": dg.MetadataValue.path(str(layout.quarantine_day("raw_events", days[-1]).parent.parent)),
        "preview": md.preview(sample),
    }
    if len(days) > 1:
        meta["per_day"] = md.daily_bars(per_day, "day", ["kept", "quarantined"], "events per day")
    return meta
