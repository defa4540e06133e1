"""The code location loads as `dagster dev` would load it, with no deprecated Dagster API in use."""

import json
import subprocess
import sys

from ecomarket_assets_tests.conftest import REPO_ROOT

LOAD_SCRIPT = r"""
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from ecomarket_assets.definitions import defs
    d = defs()
    graph = d.resolve_asset_graph()
    repo = d.get_repository_def()
ours = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
        if issubclass(w.category, DeprecationWarning) and ("ecomarket_assets" in w.filename or "dagster" in str(w.message).lower())]
print(json.dumps({
    "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
    "checks": sorted(k.name for k in graph.asset_check_keys),
    "sensors": sorted(s.name for s in repo.sensor_defs),
    "jobs": sorted(j.name for j in repo.get_all_jobs()),
    "resources": sorted(d.resources),
    "start": d.get_assets_def("raw_events").partitions_def.start.isoformat(),
    "deprecations": ours,
}))
"""


def load_in_fresh_process(env_extra: dict[str, str] | None = None) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMARKET_")} | (env_extra or {})
    out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_definitions_load_without_deprecations():
    loaded = load_in_fresh_process()
    assert loaded["deprecations"] == []
    assert {"catalog", "customers", "reviews", "raw_events"} <= set(loaded["assets"])
    assert {"events_schema", "events_unique_ids", "events_in_partition", "events_known_products",
            "events_valid_quantities_and_prices", "events_reconciled", "catalog_contract"} <= set(loaded["checks"])
    assert "landing_files_sensor" in loaded["sensors"]
    assert {"data_dir", "source"} <= set(loaded["resources"])
    assert loaded["start"].startswith("2025-06-05")  # default: the simulator's first day


def test_importing_the_package_prints_nothing():
    """No MLflow type-hint or other warning when the code location loads (each pyfunc has a typed predict)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMARKET_")}
    script = "from ecomarket_assets.definitions import defs; defs().resolve_asset_graph()"
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    assert (out.stdout, out.stderr) == ("", "")


def test_every_model_has_a_promotion_job_and_a_load_and_predict_check():
    loaded = load_in_fresh_process()
    assert {"promote_demand_model_job", "promote_recommender_job", "promote_campaign_uplift_job"} <= set(loaded["jobs"])
    assert {"demand_model_promotion", "recommender_promotion", "campaign_uplift_promotion"} <= set(loaded["assets"])
    assert "registered_version_loads_and_predicts" in loaded["checks"]


def test_partitions_start_is_configurable():
    loaded = load_in_fresh_process({"ECOMARKET_PARTITIONS_START": "2010-12-01"})
    assert loaded["start"].startswith("2010-12-01")


def test_partition_range_tags_run_a_range_in_one_run():
    """The tag names are Dagster's, not public API: if a release renamed them, this fails (runs would not
    silently fall back to one partition)."""
    import dagster as dg

    from ecomarket_assets.partitions import daily_partitions, partition_range_tags

    seen = []

    @dg.asset(partitions_def=daily_partitions)
    def days(context: dg.AssetExecutionContext) -> None:
        seen.append(context.partition_keys)

    first, second, third = daily_partitions.get_partition_keys()[:3]
    assert dg.materialize([days], tags=partition_range_tags(first, third)).success
    assert seen == [[first, second, third]]


def test_full_rebuild_job_rebuilds_every_incremental_asset():
    """The job selects the three incremental assets and its run config (full_rebuild: true) is valid for them."""
    import dagster as dg

    from ecomarket_assets.definitions import defs
    from ecomarket_assets.defs.operations.automation import INCREMENTAL, full_rebuild_job

    job = defs().resolve_job_def("full_rebuild_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == set(INCREMENTAL)
    assert full_rebuild_job.config["ops"] == {n: {"config": {"full_rebuild": True}} for n in INCREMENTAL}
    dg.validate_run_config(job, full_rebuild_job.config)  # raises if an asset lost its full_rebuild field
    with_typo = {"ops": {n: {"config": {"full_rebuilt": True}} for n in INCREMENTAL}}
    try:
        dg.validate_run_config(job, with_typo)
    except dg.DagsterInvalidConfigError:
        pass
    else:
        raise AssertionError("an unknown config field was accepted")
