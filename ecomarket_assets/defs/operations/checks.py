"""Drift checks: fail (ERROR, not blocking) when a monitor's newest summary passes its thresholds."""

import dagster as dg

from ecomarket_assets.defs.operations.drift_assets import profile_drift, recommendation_drift
from ecomarket_assets.monitoring.store import MonitoringStore
from ecomarket_assets.resources import DataDirResource


def _drift_result(summary: dict, limits: dict[str, tuple[float, float]]) -> dg.AssetCheckResult:
    """`limits`: name -> (observed, allowed maximum)."""
    broken = {name: v for name, v in limits.items() if abs(v[0]) > v[1]}
    return dg.AssetCheckResult(
        passed=not broken,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(f"{n} {v[0]:.3f} > {v[1]:.3f}" for n, v in broken.items()) or "within thresholds",
        metadata={**{name: float(v[0]) for name, v in limits.items()},
                  "drifted_columns": ", ".join(summary.get("drifted_columns", [])) or "none",
                  "report_html": dg.MetadataValue.path(summary.get("html", ""))},
    )


@dg.asset_check(asset=profile_drift, description="Share of drifted profile features <= max_drifted_share.")
def profile_drift_within_threshold(data_dir: DataDirResource) -> dg.AssetCheckResult:
    summary = MonitoringStore(data_dir.layout()).read_latest("profile_drift")
    return _drift_result(summary, {"drifted_share": (summary["drifted_share"],
                                                     summary["thresholds"]["max_drifted_share"])})


@dg.asset_check(asset=recommendation_drift,
                description="Share of drifted recommendation columns <= max_drifted_share and the cold-start "
                "share moved by at most max_cold_start_change.")
def recommendation_drift_within_threshold(data_dir: DataDirResource) -> dg.AssetCheckResult:
    summary = MonitoringStore(data_dir.layout()).read_latest("recommendation_drift")
    limits = summary["thresholds"]
    return _drift_result(summary, {
        "drifted_share": (summary["drifted_share"], limits["max_drifted_share"]),
        "cold_start_share_change": (summary["extra"]["cold_start_share_change"], limits["max_cold_start_change"]),
    })


DRIFT_CHECKS = [profile_drift_within_threshold, recommendation_drift_within_threshold]
