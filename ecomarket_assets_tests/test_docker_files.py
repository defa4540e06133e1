"""The docker/ deployment files agree with each other (no Docker engine needed).

``test_compose_config_is_valid`` asks the compose tool itself when one is
installed (``docker-compose`` v1 from Debian, or the ``docker compose``
plugin); the other tests only parse the files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"

DAGSTER_SERVICES = ("user_code", "webserver", "daemon")
PG_VARS = (
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_DB",
    "DAGSTER_PG_PORT",
)


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def test_compose_config_is_valid() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip(
            "no compose tool installed: neither `docker-compose` (apt-get install docker-compose)"
            " nor the `docker compose` plugin is on PATH"
        )
    proc = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warn" not in proc.stderr.lower(), proc.stderr


def test_compose_services_exist(compose: dict) -> None:
    assert {"postgres", "user_code", "webserver", "daemon", "mlflow"} <= set(compose["services"])


def test_dagster_services_share_postgres_environment(compose: dict) -> None:
    services = compose["services"]
    envs = {name: _environment(services[name]) for name in DAGSTER_SERVICES}
    for name, env in envs.items():
        missing = [var for var in PG_VARS if var not in env]
        assert not missing, f"{name} lacks {missing}"
    pg_envs = {name: {var: env[var] for var in PG_VARS} for name, env in envs.items()}
    assert len({tuple(sorted(e.items())) for e in pg_envs.values()}) == 1, pg_envs

    pg_env = pg_envs["user_code"]
    assert pg_env["DAGSTER_PG_HOST"] == "postgres"
    postgres_env = _environment(services["postgres"])
    assert postgres_env["POSTGRES_USER"] == pg_env["DAGSTER_PG_USER"]
    assert postgres_env["POSTGRES_PASSWORD"] == pg_env["DAGSTER_PG_PASSWORD"]
    assert postgres_env["POSTGRES_DB"] == pg_env["DAGSTER_PG_DB"]


def test_dagster_services_share_data_mlflow_and_source(compose: dict) -> None:
    services = compose["services"]
    for name in DAGSTER_SERVICES:
        env = _environment(services[name])
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert env["ECOMARKET_DATA_DIR"] == "/data", name
        assert env["ECOMARKET_SOURCE"] == "${ECOMARKET_SOURCE:-simulator}", name
        volumes = [str(v) for v in services[name]["volumes"]]
        assert "ecomarket_data:/data" in volumes, name
        assert any(v.split(":")[-2:] == ["/data/landing", "ro"] for v in volumes), name
    assert "ecomarket_data" in compose["volumes"]


def test_postgres_service_is_healthchecked_and_awaited(compose: dict) -> None:
    services = compose["services"]
    test = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(test)
    for name in (*DAGSTER_SERVICES, "mlflow"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name


def test_no_hard_coded_password(compose: dict) -> None:
    text = COMPOSE_FILE.read_text()
    for match in re.finditer(r"(PASSWORD|PGPASSWORD):\s*(\S+)", text):
        assert match.group(2).startswith("${"), match.group(0)


def test_workspace_points_at_user_code_server(compose: dict) -> None:
    workspace = yaml.safe_load((DOCKER_DIR / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    grpc = entry["grpc_server"]
    assert grpc["host"] == "user_code" and grpc["host"] in compose["services"]
    assert grpc["location_name"] == "ecomarket_assets"

    command = _command(compose["services"]["user_code"])
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-p") + 1] == str(grpc["port"])
    assert command[command.index("-m") + 1] == "ecomarket_assets.definitions"


def test_mlflow_service_uses_postgres_and_served_artifacts(compose: dict) -> None:
    command = _command(compose["services"]["mlflow"])
    assert any(arg.startswith("--backend-store-uri=postgresql") for arg in command)
    assert "@postgres:5432/" in " ".join(command)
    assert "--serve-artifacts" in command
    assert any(arg.startswith("--artifacts-destination=") for arg in command)
    init_dir = DOCKER_DIR / "postgres-init"
    assert any(init_dir.glob("*.sh")) or any(init_dir.glob("*.sql"))


def test_dagster_yaml_storage_comes_from_environment() -> None:
    config = yaml.safe_load((DOCKER_DIR / "dagster.yaml").read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    assert {key: db[key] for key in ("username", "password", "hostname", "db_name", "port")} == {
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "db_name": {"env": "DAGSTER_PG_DB"},
        "port": {"env": "DAGSTER_PG_PORT"},
    }
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert config["run_launcher"]["class"] == "DefaultRunLauncher"
    assert config["telemetry"]["enabled"] is False


def test_dagster_yaml_passes_dagster_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.instance.config import dagster_instance_config

    shutil.copyfile(DOCKER_DIR / "dagster.yaml", tmp_path / "dagster.yaml")
    for var, value in zip(PG_VARS, ("u", "p", "localhost", "db", "5432"), strict=True):
        monkeypatch.setenv(var, value)
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    # Validated against the installed Dagster's instance schema (unknown keys,
    # wrong types and conflicting queue settings raise); env refs resolve later.
    assert config["storage"]["postgres"]["postgres_db"]["port"] == {"env": "DAGSTER_PG_PORT"}


def test_dockerfile_installs_cpu_torch_before_the_project() -> None:
    lines = [
        line.strip()
        for line in (DOCKER_DIR / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    text = "\n".join(lines)
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    torch_at = text.index("--index-url https://download.pytorch.org/whl/cpu")
    assert "torch==" in text[torch_at - 200 : torch_at + 200]
    assert torch_at < text.index("pip install .")
    assert "TORCH_VERSION=2.13.0" in text or "torch==2.13.0" in text
    assert "WORKDIR /opt/ecomarket" in lines
    assert "DAGSTER_HOME=/opt/dagster/home" in text
    assert re.search(r"^COPY .*docker/dagster\.yaml \"?\$DAGSTER_HOME/dagster\.yaml", text, re.M)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
