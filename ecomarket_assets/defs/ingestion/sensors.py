"""Landing folder sensor: a file dropped into `data/landing/` is ingested for the days it covers."""


import hashlib
import json

import dagster as dg

from ecomarket_assets.defs.ingestion.assets import raw_events
from ecomarket_assets.ingestion.sources import file_fingerprint, landing_files, staged_landing_file
from ecomarket_assets.partitions import daily_partitions
from ecomarket_assets.resources import DataDirResource, ShopSourceResource

ingest_events_job = dg.define_asset_job(
    "ingest_events_job",
    selection=dg.AssetSelection.assets(raw_events),
    description="Ingest raw_events for the requested days (used by the landing sensor and schedules).",
)


@dg.sensor(job=ingest_events_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launches raw_events for every day a new or changed landing file covers.")
def landing_files_sensor(context: dg.SensorEvaluationContext, data_dir: DataDirResource,
                         source: ShopSourceResource) -> dg.SensorResult:
    layout = data_dir.layout()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    requests, skipped = [], []
    valid_days = set()
    for path in landing_files(source.landing_path(layout)):
        fingerprint = hashlib.sha1(file_fingerprint(path).encode()).hexdigest()[:12]
        if seen.get(path.name) == fingerprint:
            continue

        days = staged_landing_file(path, layout.root).days()
        if not valid_days:
            valid_days = set(daily_partitions.get_partition_keys())
        for day in days:
            if day in valid_days:
                requests.append(dg.RunRequest(run_key=f"{path.name}:{fingerprint}:{day}", partition_key=day))
            else:
                skipped.append(day)
        seen[path.name] = fingerprint
    if skipped:
        context.log.warning(f"landing files cover {len(skipped)} days outside the partitions: {sorted(set(skipped))[:10]}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
