"""Drift monitors: the newest profiles and recommendations against the reference the models were trained on."""


import datetime as dt

import dagster as dg
import mlflow
import pandas as pd

from ecomarket_assets import metadata as md
from ecomarket_assets.defs.profiles.assets import user_profiles
from ecomarket_assets.defs.recommender.assets import recommendations
from ecomarket_assets.mlops.tracking import MlflowResource, dagster_tags
from ecomarket_assets.monitoring import drift
from ecomarket_assets.monitoring.store import MonitoringStore
from ecomarket_assets.recommender.store import RecStore
from ecomarket_assets.resources import DataDirResource, DriftThresholdsResource
from ecomarket_assets.storage import read_frame

GROUP = "monitoring"
OWNERS = ["team:data-science"]
EXPERIMENT = "monitoring"


def _current_profiles(layout) -> pd.DataFrame:
    return read_frame(layout.table("user_profiles"))


def _current_recommendations(layout) -> pd.DataFrame:
    return read_frame(RecStore(layout).recommendations_path)


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=OWNERS,
    deps=[user_profiles, recommendations],
    description="The reference window drift is measured against: a snapshot of user_profiles and "
    "recommendations, taken when the models are retrained (the retraining job materializes it), so drift "
    "means 'the shop no longer looks like what the models learned from'.",
)
def drift_reference(data_dir: DataDirResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    profiles, recs = _current_profiles(layout), _current_recommendations(layout)
    info = {"taken_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "profiles": len(profiles),
            "recommendations": len(recs), "recommendations_as_of": str(recs["as_of"].max()) if len(recs) else ""}
    MonitoringStore(layout).save_reference({"user_profiles": profiles, "recommendations": recs}, info)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(profiles),
        "profiles": len(profiles),
        "recommendation_rows": len(recs),
        "cold_start_share": drift.cold_start_share(recs),
        "taken_at": info["taken_at"],
        "path": dg.MetadataValue.path(str(MonitoringStore(layout).reference)),
    })


def _publish(context: dg.AssetExecutionContext, mlflow_tracking: MlflowResource, store: MonitoringStore,
             monitor: str, report: drift.DriftReport, thresholds: dict[str, float]) -> dict[str, dg.MetadataValue]:
    """Save the HTML and JSON, log both to MLflow, keep the summary the check reads; metadata for the UI."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    html, summary_json = report.save(store.report_folder(monitor, stamp), monitor)
    summary = {**report.summary(), "thresholds": thresholds, "html": str(html), "run_id": context.run.run_id}
    with mlflow_tracking.start_run(EXPERIMENT, monitor, dagster_tags(context)) as run:
        mlflow.log_metrics({"drifted_share": report.drifted_share, **{k: v for k, v in report.extra.items()
                                                                       if pd.notna(v)}})
        mlflow.log_artifact(str(html), artifact_path="report")
        mlflow.log_artifact(str(summary_json), artifact_path="report")
    summary["mlflow_run_id"] = run.info.run_id
    store.write_latest(monitor, summary)
    table = report.table.copy()
    drifted = table.loc[table["drifted"], "column"].tolist()
    return {
        "dagster/row_count": report.current_rows,
        "reference_rows": report.reference_rows,
        "current_rows": report.current_rows,
        "drifted_share": report.drifted_share,
        "max_drifted_share": thresholds["max_drifted_share"],
        "drifted_columns": ", ".join(drifted) or "none",
        "columns": md.table(table.round(4)),
        "scores": md.plot(_score_figure(table, report.title)),
        "report_html": dg.MetadataValue.path(str(html)),
        "summary_json": dg.MetadataValue.path(str(summary_json)),
        "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(run.info.run_id)),
    }


def _score_figure(table: pd.DataFrame, title: str):
    fig, ax = md.pyplot().subplots(figsize=(7, 0.3 * len(table) + 1))
    colours = ["tab:red" if d else "tab:green" for d in table["drifted"]]
    ax.barh(table["column"], table["score"], color=colours)
    ax.set(xlabel="drift score (red = drifted by its test)", title=title)
    return fig


@dg.asset(
    group_name=GROUP,
    kinds={"python", "evidently", "mlflow"},
    owners=OWNERS,
    deps=[user_profiles, drift_reference],
    description="Evidently data drift of the profile features (RFM, value, churn risk, segments, interests) "
    "between the reference snapshot and today's user_profiles: HTML report (saved, linked, logged to MLflow) "
    "and a JSON summary. The check `profile_drift_within_threshold` fails above the drifted-column share.",
)
def profile_drift(context: dg.AssetExecutionContext, drift_thresholds: DriftThresholdsResource,
                  data_dir: DataDirResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = MonitoringStore(layout)
    reference, numerical, categorical = drift.profile_features(store.read_reference("user_profiles"))
    current = _current_profiles(layout)[reference.columns]
    report = drift.compare(reference, current, numerical, categorical, "Profile drift")
    meta = _publish(context, mlflow_tracking, store, "profile_drift", report,
                    {"max_drifted_share": drift_thresholds.thresholds()["max_drifted_share"]})
    return dg.MaterializeResult(metadata={**meta, "reference_taken_at": store.reference_info().get("taken_at", "")})


@dg.asset(
    group_name=GROUP,
    kinds={"python", "evidently", "mlflow"},
    owners=OWNERS,
    deps=[recommendations, drift_reference],
    description="Evidently drift of what is recommended (category, price, score, reason) and of the share of "
    "cold-start users, between the reference snapshot and today's recommendations. The check "
    "`recommendation_drift_within_threshold` fails above the drifted-column share or the cold-start change.",
)
def recommendation_drift(context: dg.AssetExecutionContext, drift_thresholds: DriftThresholdsResource,
                         data_dir: DataDirResource, mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    layout = data_dir.layout()
    store = MonitoringStore(layout)
    reference_recs, current_recs = store.read_reference("recommendations"), _current_recommendations(layout)
    reference, current = drift.recommendation_features(reference_recs), drift.recommendation_features(current_recs)
    report = drift.compare(reference, current, ["price", "score"], ["category", "cold_user", "reason_type"],
                           "Recommendation drift")
    cold_ref, cold_now = drift.cold_start_share(reference_recs), drift.cold_start_share(current_recs)
    report.extra.update({"cold_start_share_reference": cold_ref, "cold_start_share_current": cold_now,
                         "cold_start_share_change": cold_now - cold_ref})
    thresholds = drift_thresholds.thresholds()
    meta = _publish(context, mlflow_tracking, store, "recommendation_drift", report, thresholds)
    shares = pd.concat([reference["category"].value_counts(normalize=True).rename("reference"),
                        current["category"].value_counts(normalize=True).rename("current")], axis=1).fillna(0.0)
    return dg.MaterializeResult(metadata={
        **meta,
        "cold_start_share_reference": cold_ref,
        "cold_start_share_current": cold_now,
        "recommended_categories": md.table(shares.round(4).rename_axis("category").reset_index()
                                           .sort_values("current", ascending=False)),
        "mean_price_reference": float(reference["price"].mean()),
        "mean_price_current": float(current["price"].mean()),
    })
