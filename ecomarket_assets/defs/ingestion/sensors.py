"""Landing folder sensor: a file dropped into `data/landing/` is archived and ingested for the days it covers.

An unreadable file is quarantined (moved to `data/quarantine/files/` with its reason) and the sensor
carries on with the others; it never fails a tick because of one file.
"""


import json

import dagster as dg

from ecomarket_assets.defs.ingestion.assets import raw_events
from ecomarket_assets.ingestion import landing
from ecomarket_assets.partitions import daily_partitions
from ecomarket_assets.resources import DataDirResource, ShopSourceResource

ingest_events_job = dg.define_asset_job(
    "ingest_events_job",
    selection=dg.AssetSelection.assets(raw_events),
    description="Ingest raw_events for the requested days (used by the landing sensor and schedules).",
)


@dg.sensor(job=ingest_events_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Archives new or changed landing files, quarantines unreadable ones, and launches raw_events "
           "for every day a new file (or the version it replaces) covers.")
def landing_files_sensor(context: dg.SensorEvaluationContext, data_dir: DataDirResource,
                         source: ShopSourceResource) -> dg.SensorResult:
    layout = data_dir.layout()
    done = source.intake_landing(layout)
    for bad in done.quarantined:
        context.log.warning(f"quarantined {bad.file}: {bad.problem} (fix: {bad.fix}); stored at {bad.stored_as}")
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    root = source.landed_root(layout)
    date_format = source.date_format or None
    valid_days = set(daily_partitions.get_partition_keys())
    requests, skipped = [], set()
    for name, copy in landing.newest_copies(root).items():
        if seen.get(name) == copy.name:
            continue
        days = set(landing.archived_source(copy, layout.root, date_format, name).days())
        previous = root / "landed" / name / seen[name] if name in seen else None
        if previous is not None and previous.exists():  # days the old version had must be re-ingested too
            days |= set(landing.archived_source(previous, layout.root, date_format, name).days())
        for day in sorted(days):
            if day in valid_days:
                requests.append(dg.RunRequest(run_key=f"{name}:{copy.name}:{day}", partition_key=day))
            else:
                skipped.add(day)
        seen[name] = copy.name
    if skipped:
        context.log.warning(f"landed files cover {len(skipped)} days outside the partitions (their rows are quarantined "
                            f"as outside_partitions): {sorted(skipped)[:10]}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
