"""The docker deployment's Dagster instance and MLflow database, against a real PostgreSQL.

A throwaway PostgreSQL server (see pg_server.py) stands in for the compose
``postgres`` service. The Dagster instance is built from docker/dagster.yaml
itself (copied unchanged into a temporary DAGSTER_HOME, with the DAGSTER_PG_*
variables pointing at the test server), so the file the containers read is
the file under test.

The assets materialized here are the real ingestion assets on a small
simulated shop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ecomarket_assets_tests.pg_server import (
    PgServer,
    server_for_tests,
)

pytestmark = pytest.mark.postgres

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = REPO_ROOT / "docker"
DAGSTER_YAML = DOCKER_DIR / "dagster.yaml"
MLFLOW_INIT_SCRIPT = DOCKER_DIR / "postgres-init" / "01-create-mlflow-db.sh"


@pytest.fixture(scope="module")
def pg() -> PgServer:
    yield from server_for_tests()


@pytest.fixture
def dagster_home(pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding docker/dagster.yaml unchanged, env pointing at ``pg``."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in pg.dagster_env().items():
        monkeypatch.setenv(name, value)
    return home




def test_instance_from_docker_dagster_yaml_uses_postgres(dagster_home: Path) -> None:
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    expected = yaml.safe_load(DAGSTER_YAML.read_text())
    instance = dg.DagsterInstance.get()
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
        run_queue = instance.get_concurrency_config().run_queue_config
        assert run_queue is not None
        assert (
            run_queue.max_concurrent_runs == expected["concurrency"]["runs"]["max_concurrent_runs"]
        )
        assert instance.telemetry_enabled is False
    finally:
        instance.dispose()


def test_materialization_is_stored_in_postgres(pg: PgServer, dagster_home: Path, small_resources: dict) -> None:
    from ecomarket_assets_tests.test_ingestion_assets import ALL_ASSETS, ALL_CHECKS

    instance = dg.DagsterInstance.get()
    try:
        tables = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], resources=small_resources, instance=instance,
                                selection=["catalog", "customers"])
        events = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], resources=small_resources, instance=instance,
                                selection=["raw_events"], partition_key="2025-11-12")
        assert tables.success and events.success
        run_id = events.run_id
    finally:
        instance.dispose()

    # A fresh instance (as a different container would build it) reads it back.
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.SUCCESS

        materializations = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        assert [r.event_log_entry.asset_materialization.partition for r in materializations] == ["2025-11-12"]

        latest = instance.get_latest_materialization_event(dg.AssetKey("raw_events"))
        assert latest is not None and latest.run_id == run_id
        metadata = latest.asset_materialization.metadata
        assert metadata["rows_read"].value == metadata["rows_kept"].value + metadata["rows_quarantined"].value > 0
        assert instance.get_latest_materialization_event(dg.AssetKey("catalog")).run_id == tables.run_id
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("raw_events"), "events_reconciled")])
        assert checks
    finally:
        instance.dispose()

    # And the rows are really in PostgreSQL, not in a sqlite file on the side.
    assert not list(dagster_home.rglob("*.db"))
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
            assert cur.fetchall() == [("SUCCESS",)]
            cur.execute(
                "SELECT count(*) FROM event_logs"
                " WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                (run_id,),
            )
            assert cur.fetchone() == (1,)  # raw_events, one day
    finally:
        conn.close()


def _run_mlflow_init_script(pg: PgServer, mlflow_db: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        # What the postgres image's entrypoint provides to init scripts...
        "POSTGRES_USER": pg.user,
        "POSTGRES_DB": pg.dbname,
        "MLFLOW_PG_DB": mlflow_db,
        # ...and where psql finds the test server instead of the entrypoint's socket.
        "PGHOST": pg.host,
        "PGPORT": str(pg.port),
        "PGPASSWORD": pg.password,
    }
    return subprocess.run(
        ["bash", str(MLFLOW_INIT_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def mlflow_db(pg: PgServer) -> str:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed (apt-get install postgresql-client)")
    name = "mlflow"
    for _ in range(2):  # a second run must be a no-op, not an error
        proc = _run_mlflow_init_script(pg, name)
        assert proc.returncode == 0, proc.stderr
    return name


def test_init_script_creates_mlflow_database(pg: PgServer, mlflow_db: str) -> None:
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                (mlflow_db,),
            )
            assert cur.fetchall() == [(pg.user,)]
    finally:
        conn.close()


def test_mlflow_tracks_runs_in_postgres(
    pg: PgServer, mlflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compose mlflow service's backend URI: no password in it, PGPASSWORD in the env."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("PGPASSWORD", pg.password)
    client = MlflowClient(
        tracking_uri=f"postgresql+psycopg2://{pg.user}@{pg.host}:{pg.port}/{mlflow_db}"
    )
    experiment_id = client.create_experiment(
        "pg-smoke", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "model", "smoke")
    client.log_metric(run.info.run_id, "rmse", 0.5)
    client.set_terminated(run.info.run_id)

    [found] = client.search_runs([experiment_id])
    assert found.data.params == {"model": "smoke"}
    assert found.data.metrics == {"rmse": 0.5}
    assert found.info.status == "FINISHED"
