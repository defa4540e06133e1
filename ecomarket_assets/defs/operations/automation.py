"""What runs by itself: schedules for the daily refresh and the weekly retraining, sensors for drift and new versions.

    00:30 daily    shop_tables_schedule       catalog, customers and reviews (new products must be known before events)
    01:00 daily    daily_ingestion_schedule   yesterday's raw_events + user_daily_activity partition (with the events
                                              the collector landed that day: the landing sensor leaves them to it)
    02:00 daily    daily_refresh_schedule     embeddings .. profiles .. forecast .. recommendations, then both drift monitors
    03:00 Monday   weekly_retrain_schedule    both models retrained and registered as challengers; new drift reference
    on drift       drift_retrain_sensor       a failed drift check launches the retraining job at once
    on a version   model_version_sensor       the newest version waiting for a decision launches its model's promotion step
"""


import json

import dagster as dg

from ecomarket_assets.campaigns.store import MODEL_NAME as UPLIFT_MODEL
from ecomarket_assets.defs.operations.checks import DRIFT_CHECKS
from ecomarket_assets.forecasting.store import MODEL_NAME as DEMAND_MODEL
from ecomarket_assets.mlops import promotion
from ecomarket_assets.mlops.tracking import MlflowResource
from ecomarket_assets.recommender.store import MODEL_NAME as REC_MODEL

RUNNING = dg.DefaultScheduleStatus.RUNNING
SENSOR_RUNNING = dg.DefaultSensorStatus.RUNNING

daily_ingest_job = dg.define_asset_job(
    "daily_ingest_job",
    selection=dg.AssetSelection.assets("raw_events", "user_daily_activity"),
    description="One day of events: raw_events (with its checks and quarantine) and user_daily_activity.",
)
shop_tables_job = dg.define_asset_job(
    "shop_tables_job",
    selection=dg.AssetSelection.assets("catalog", "customers", "reviews"),
    description="The shop's catalog, customers (with consents) and reviews, before the day's events are checked.",
)
daily_refresh_job = dg.define_asset_job(
    "daily_refresh_job",
    selection=dg.AssetSelection.assets(
        "product_embeddings", "user_features", "user_profiles", "user_segments",
        "demand_training_set", "demand_forecast", "rec_candidates", "recommendations",
        "profile_drift", "recommendation_drift"),
    # A night builds the serving candidates only; the labelled sets are the weekly retrain's (retrain_models_job).
    config={"ops": {"rec_candidates": {"config": {"sets": "serving"}}}},
    description="Everything the champions serve from, rebuilt on the newest data, then the drift monitors.",
)
INCREMENTAL = ("user_features", "demand_training_set", "rec_candidates")  # each folds new days into stored state
full_rebuild_job = dg.define_asset_job(
    "full_rebuild_job",
    selection=dg.AssetSelection.assets(*INCREMENTAL),
    config={"ops": {name: {"config": {"full_rebuild": True}} for name in INCREMENTAL}},
    description="Rebuild the running states of the incremental assets from every stored day (after a change to "
    "their code; a changed or missing past day already triggers a rebuild by itself). Same outputs as the nights.",
)
retrain_models_job = dg.define_asset_job(
    "retrain_models_job",
    selection=dg.AssetSelection.assets("demand_training_set", "demand_model", "rec_candidates", "recommender_model",
                                       "drift_reference"),
    description="Retrain both models on the newest data and register them as challengers (the promotion step "
    "decides whether they serve); the drift reference becomes the data they learned from.",
)
promote_demand_model_job = dg.define_asset_job(
    "promote_demand_model_job", selection=dg.AssetSelection.assets("demand_model_promotion"),
    description="Champion/challenger decision for demand_forecaster.")
promote_recommender_job = dg.define_asset_job(
    "promote_recommender_job", selection=dg.AssetSelection.assets("recommender_promotion"),
    description="Champion/challenger decision for recommender.")
promote_campaign_uplift_job = dg.define_asset_job(
    "promote_campaign_uplift_job", selection=dg.AssetSelection.assets("campaign_uplift_promotion"),
    description="Champion/challenger decision for campaign_uplift.")
PROMOTION_JOBS = {DEMAND_MODEL: (promote_demand_model_job, "demand_model_promotion"),
                  REC_MODEL: (promote_recommender_job, "recommender_promotion"),
                  UPLIFT_MODEL: (promote_campaign_uplift_job, "campaign_uplift_promotion")}
MAX_PROMOTION_ATTEMPTS = 3  # a promotion run that dies is relaunched, at most this many times per version

shop_tables_schedule = dg.ScheduleDefinition(
    name="shop_tables_schedule", job=shop_tables_job, cron_schedule="30 0 * * *", execution_timezone="UTC",
    default_status=RUNNING, description="Before ingestion: events naming a product the catalog lacks are quarantined.")
daily_ingestion_schedule = dg.build_schedule_from_partitioned_job(
    daily_ingest_job, name="daily_ingestion_schedule", hour_of_day=1, default_status=RUNNING,
    description="Yesterday's partition, once the day is complete: every event collected that day included (the "
    "landing sensor leaves rows of the current day to this schedule, and handles files for days already past).")
daily_refresh_schedule = dg.ScheduleDefinition(
    name="daily_refresh_schedule", job=daily_refresh_job, cron_schedule="0 2 * * *", execution_timezone="UTC", default_status=RUNNING,
    description="After the 01:00 ingestion: profiles, forecast and recommendations from the champions, then drift.")
weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain_schedule", job=retrain_models_job, cron_schedule="0 3 * * 1", execution_timezone="UTC", default_status=RUNNING,
    description="Monday after the daily refresh: a weekly challenger for each model, even without drift.")


@dg.sensor(job=retrain_models_job, minimum_interval_seconds=60, default_status=SENSOR_RUNNING,
           description="A drift check that failed since the last tick launches the retraining job (once per failure).")
def drift_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    keys = [key for check in DRIFT_CHECKS for key in check.check_keys]
    latest = [r for r in (context.instance.get_latest_asset_check_evaluation_record(k) for k in keys) if r is not None]
    seen = int(context.cursor or 0)
    failed = [r for r in latest if r.evaluation is not None and not r.evaluation.passed and r.id > seen]
    if not failed:
        return dg.SensorResult(skip_reason="no drift check failed since the last tick",
                               cursor=str(max([seen, *(r.id for r in latest)])))
    names = ", ".join(sorted(r.key.to_user_string() for r in failed))
    newest = max(r.id for r in failed)
    request = dg.RunRequest(run_key=f"drift-{newest}", tags={"ecomarket/trigger": "drift", "ecomarket/failed_checks":
                                                             names[:200]})
    context.log.info(f"drift checks failed ({names}): retraining")
    return dg.SensorResult(run_requests=[request], cursor=str(max(newest, seen)))


@dg.sensor(jobs=[job for job, _ in PROMOTION_JOBS.values()], minimum_interval_seconds=60,
           default_status=SENSOR_RUNNING,
           description="Polls the MLflow registry: the newest version of each model that waits for a decision "
           "(tagged promotion=pending, or untagged) gets a promotion run; a run that died is relaunched.")
def model_version_sensor(context: dg.SensorEvaluationContext, mlflow_tracking: MlflowResource) -> dg.SensorResult:
    client = mlflow_tracking.client()
    requests, notes = [], []
    for name, (job, asset) in PROMOTION_JOBS.items():
        waiting = promotion.versions_to_judge(client, name)
        if not waiting:
            continue
        version = waiting[-1]  # older waiting versions are superseded by this one's decision
        attempt, note = _promotion_attempt(context.instance, name, version)
        if note:
            notes.append(note)
            continue
        config = {"ops": {asset: {"config": {"version": version}}}}
        requests.append(dg.RunRequest(run_key=f"{name}-v{version}-attempt{attempt}", job_name=job.name,
                                      run_config=config, tags={"ecomarket/model": name, "ecomarket/version": version}))
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(notes) or "no registered version is waiting for a promotion decision")
    context.log.info("promotion runs: " + json.dumps([r.run_key for r in requests]))
    return dg.SensorResult(run_requests=requests)


def _promotion_attempt(instance: dg.DagsterInstance, name: str, version: str) -> tuple[int, str]:
    """(attempt number, "") for a version to (re)judge, or (-1, why not) while a run is active or after too many."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"ecomarket/model": name, "ecomarket/version": version}))
    if any(not r.is_finished for r in runs):
        return -1, f"{name} v{version}: a promotion run is in progress"
    if len(runs) >= MAX_PROMOTION_ATTEMPTS:
        return -1, f"{name} v{version}: {len(runs)} promotion runs ended without a decision; judge it by hand"
    return len(runs), ""
