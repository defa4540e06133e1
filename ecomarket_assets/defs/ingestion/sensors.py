"""Landing folder sensor: a file dropped into `data/landing/` is archived and ingested for the days it covers.

An unreadable file is quarantined (moved to `data/quarantine/files/` with its reason) and the sensor
carries on with the others; it never fails a tick because of one file. Rows dated today (the collector's
micro-batch files) have no partition yet: they wait in the archive, and the 01:00 daily_ingestion_schedule
ingests them with the rest of the day once it is over.
"""


import json

import dagster as dg

from ecomarket_assets.defs.ingestion.assets import current_days, raw_events
from ecomarket_assets.ingestion import landing
from ecomarket_assets.ingestion.staging import UNDATED
from ecomarket_assets.resources import DataDirResource, ShopSourceResource

ingest_events_job = dg.define_asset_job(
    "ingest_events_job",
    selection=dg.AssetSelection.assets(raw_events),
    description="Ingest raw_events for the requested days (used by the landing sensor and schedules).",
)


@dg.sensor(job=ingest_events_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Archives new or changed landing files, quarantines unreadable ones, and launches raw_events "
           "for every day a new file (or the version it replaces) covers. Rows of today wait: the 01:00 "
           "daily_ingestion_schedule ingests the day once it is over.")
def landing_files_sensor(context: dg.SensorEvaluationContext, data_dir: DataDirResource,
                         source: ShopSourceResource) -> dg.SensorResult:
    layout = data_dir.layout()
    done = source.intake_landing(layout)
    for bad in done.quarantined:
        context.log.warning(f"quarantined {bad.file}: {bad.problem} (fix: {bad.fix}); stored at {bad.stored_as}")
    for old in done.released:
        context.log.info(f"{old.file}: a readable version replaced the quarantined one ({old.problem})")
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    root = source.landed_root(layout)
    date_format = source.date_format or None
    valid_days, waiting_days = current_days()
    requests, waiting, skipped = [], set(), set()
    for name, copy in landing.newest_copies(root).items():
        if seen.get(name) == copy.name:
            continue
        days = set(landing.archived_source(copy, layout.root, date_format, name, source.pseudonym_key or None).days())
        previous = landing.replaced_copy(root, name, seen.get(name))
        if previous is not None:  # days the old version had must be re-ingested too, so its rows leave them
            days |= set(landing.archived_source(previous, layout.root, date_format, name,
                                                source.pseudonym_key or None).days())
        for day in sorted(days):
            if day in valid_days:
                requests.append(dg.RunRequest(run_key=f"{name}:{copy.name}:{day}", partition_key=day))
            elif day in waiting_days:
                waiting.add(day)
            else:
                skipped.add(day)
        seen[name] = copy.name
    if waiting:
        context.log.info(f"landed rows of {sorted(waiting)} wait for their day to end: the 01:00 "
                         "daily_ingestion_schedule ingests each day's partition then")
    outside = sorted(skipped - {UNDATED})  # undated rows are quarantined with their reason, not a day
    if outside:
        context.log.warning(f"landed files cover {len(outside)} days outside the partitions (their rows are "
                            f"quarantined as outside_partitions): {outside[:10]}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
