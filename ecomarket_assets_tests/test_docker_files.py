"""The docker/ deployment files agree with each other (no Docker engine needed).

``test_compose_config_is_valid`` asks the compose tool itself when one is
installed (``docker-compose`` v1 from Debian, or the ``docker compose``
plugin); the other tests only parse the files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
# The password has no default: compose must refuse to run without it, with this message.
PASSWORD_REF = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in docker/.env (see docker/README.md)}"
PASSWORD_MESSAGE = "set POSTGRES_PASSWORD in docker/.env"

DAGSTER_SERVICES = ("user_code", "webserver", "daemon")
DASK_SCHEDULER = "dask_scheduler"
DASK_WORKER = "dask_worker"
DASK_SETTINGS = (
    "ECOMARKET_ENGINE",
    "ECOMARKET_DASK_WORKERS",
    "ECOMARKET_DASK_MEMORY_LIMIT",
    "DASK_WORKER_THREADS",
    "DASK_DASHBOARD_PORT",
)
PG_VARS = (
    "DAGSTER_PG_USER",
    "POSTGRES_PASSWORD",
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


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _default(value: str) -> str:
    """The default of a `${VAR:-default}` reference; a plain value as it is."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value


def _compose_env(**extra: str) -> dict[str, str]:
    """A clean environment for the compose tool: PATH and HOME, plus the given variables."""
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return env | extra


def _scheduler_address(compose: dict) -> str:
    command = _command(compose["services"][DASK_SCHEDULER])
    return f"tcp://{DASK_SCHEDULER}:{_option(command, '--port')}"


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
        env={**os.environ, "POSTGRES_PASSWORD": "test-password"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "warn" not in proc.stderr.lower(), proc.stderr


@pytest.mark.parametrize("password", [None, ""])
def test_compose_refuses_to_run_without_password(tmp_path: Path, password: str | None) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no compose tool installed")
    # Neither docker/.env nor the shell may supply a password; unset and empty are both refused.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    extra = {} if password is None else {"POSTGRES_PASSWORD": password}
    proc = subprocess.run(
        [*command, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=_compose_env(**extra),
    )
    assert proc.returncode != 0, proc.stdout
    assert PASSWORD_MESSAGE in proc.stderr, proc.stderr


def test_env_example_does_not_supply_a_password() -> None:
    """Copying .env.example unedited must not start a database with a known password."""
    env_example = (DOCKER_DIR / ".env.example").read_text()
    assert re.search(r"^POSTGRES_PASSWORD=$", env_example, re.M), "POSTGRES_PASSWORD= must be empty"
    assert "| `POSTGRES_PASSWORD` |" in (DOCKER_DIR / "README.md").read_text()


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
    assert postgres_env["POSTGRES_PASSWORD"] == pg_env["POSTGRES_PASSWORD"] == PASSWORD_REF
    assert postgres_env["POSTGRES_DB"] == pg_env["DAGSTER_PG_DB"]


def test_dagster_services_share_data_mlflow_and_source(compose: dict) -> None:
    services = compose["services"]
    for name in DAGSTER_SERVICES:
        env = _environment(services[name])
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert env["ECOMARKET_DATA_DIR"] == "${ECOMARKET_DATA_DIR:-/data}", name  # the volume, or a bucket
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
    matches = list(re.finditer(r"(PASSWORD|PGPASSWORD):\s*(.+)", text))
    assert len(matches) == 3, [m.group(0) for m in matches]  # dagster services, postgres, mlflow
    for match in matches:
        assert match.group(2).strip() == PASSWORD_REF, match.group(0)  # required, never a default
    assert "DAGSTER_PG_PASSWORD" not in text


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
        "password": {"env": "POSTGRES_PASSWORD"},
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


def test_dask_services_exist_and_run_the_project_image(compose: dict) -> None:
    services = compose["services"]
    assert {DASK_SCHEDULER, DASK_WORKER} <= set(services)
    # The run (the Dask client), the scheduler and the workers must run the same package versions.
    for name in (DASK_SCHEDULER, DASK_WORKER):
        assert services[name]["image"] == services["user_code"]["image"] == "ecomarket:latest", name
        assert services[name]["build"] == services["user_code"]["build"], name

    scheduler = _command(services[DASK_SCHEDULER])
    assert scheduler[:2] == ["dask", "scheduler"]
    assert _option(scheduler, "--host") == "0.0.0.0"
    assert _option(scheduler, "--port") == "8786"
    assert _option(scheduler, "--dashboard-address") == ":8787"

    worker = services[DASK_WORKER]
    assert _command(worker)[:2] == ["dask", "worker"]
    # Replicas, scalable with --scale: no fixed container or worker name may clash.
    assert int(_default(str(worker["deploy"]["replicas"]))) == 2
    assert "container_name" not in worker and "--name" not in _command(worker)


def test_dask_workers_point_at_the_scheduler(compose: dict) -> None:
    command = _command(compose["services"][DASK_WORKER])
    assert command[2] == _scheduler_address(compose) == "tcp://dask_scheduler:8786"
    assert _option(command, "--memory-limit") == "${ECOMARKET_DASK_MEMORY_LIMIT:-4GiB}"
    assert int(_default(_option(command, "--nthreads"))) >= 1
    assert _option(command, "--local-directory").startswith("/tmp/")


def test_dask_workers_see_the_same_data_as_user_code(compose: dict) -> None:
    services = compose["services"]
    worker, user_code = services[DASK_WORKER], services["user_code"]
    volumes = [str(v) for v in worker["volumes"]]
    assert volumes == [str(v) for v in user_code["volumes"]]
    assert "ecomarket_data:/data" in volumes
    assert any(v.split(":")[-2:] == ["/data/landing", "ro"] for v in volumes)
    worker_env, user_code_env = _environment(worker), _environment(user_code)
    for var in (
        "ECOMARKET_DATA_DIR",
        "ECOMARKET_LANDING_DIR",
        "ECOMARKET_SOURCE",
        "ECOMARKET_SOURCE_PATH",
    ):
        assert worker_env[var] == user_code_env[var], var


def test_code_location_selects_the_dask_engine_and_scheduler(compose: dict) -> None:
    from ecomarket_assets.compute import ENGINES

    services = compose["services"]
    worker = _command(services[DASK_WORKER])
    for name in DAGSTER_SERVICES:
        env = _environment(services[name])
        assert env["ECOMARKET_ENGINE"] == "${ECOMARKET_ENGINE:-dask}", name
        assert _default(env["ECOMARKET_ENGINE"]) in ENGINES
        assert (
            env["ECOMARKET_DASK_SCHEDULER"]
            == "${ECOMARKET_DASK_SCHEDULER:-tcp://dask_scheduler:8786}"
        ), name
        assert _default(env["ECOMARKET_DASK_SCHEDULER"]) == _scheduler_address(compose), name
        assert env["ECOMARKET_DASK_MEMORY_LIMIT"] == _option(worker, "--memory-limit"), name
        assert (
            env["DASK_DISTRIBUTED__DASHBOARD__LINK"]
            == "http://localhost:${DASK_DASHBOARD_PORT:-8787}/status"
        )


def test_dask_dashboard_is_published_on_the_bind_address(compose: dict) -> None:
    services = compose["services"]
    assert services[DASK_SCHEDULER]["ports"] == [
        "${ECOMARKET_BIND_ADDRESS:-127.0.0.1}:${DASK_DASHBOARD_PORT:-8787}:8787"
    ]
    assert "ports" not in services[DASK_WORKER]  # replicas could not share a host port anyway
    # The scheduler port has no authentication: never published.
    for name, service in services.items():
        assert not any(str(port).endswith(":8786") for port in service.get("ports", [])), name


def test_dask_scheduler_is_healthchecked_and_awaited(compose: dict) -> None:
    services = compose["services"]
    test = " ".join(services[DASK_SCHEDULER]["healthcheck"]["test"])
    assert test.startswith("CMD python -c") and "http://localhost:8787/health" in test
    for name in (DASK_WORKER, "user_code"):
        assert services[name]["depends_on"][DASK_SCHEDULER]["condition"] == "service_healthy", name


def test_dask_settings_are_documented() -> None:
    env_example = (DOCKER_DIR / ".env.example").read_text()
    readme = (DOCKER_DIR / "README.md").read_text()
    compose_text = COMPOSE_FILE.read_text()
    for var in DASK_SETTINGS:
        assert "${" + var + ":-" in compose_text, var
        assert re.search(rf"^{var}=\S", env_example, re.M), var
        assert f"| `{var}` |" in readme, var
    assert "## The Dask cluster" in readme


def test_compose_resolves_the_dask_defaults(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no compose tool installed")
    # Neither docker/.env nor the shell may change the defaults.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    env = _compose_env(POSTGRES_PASSWORD="test-password")
    proc = subprocess.run(
        [*command, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert services[DASK_WORKER]["deploy"]["replicas"] == 2
    worker = _command(services[DASK_WORKER])
    assert worker[:3] == ["dask", "worker", "tcp://dask_scheduler:8786"]
    assert _option(worker, "--memory-limit") == "4GiB" and _option(worker, "--nthreads") == "2"
    env = _environment(services["user_code"])
    assert env["ECOMARKET_ENGINE"] == "dask"
    assert env["ECOMARKET_DASK_SCHEDULER"] == "tcp://dask_scheduler:8786"
    assert env["ECOMARKET_DASK_MEMORY_LIMIT"] == "4GiB"
    [port] = services[DASK_SCHEDULER]["ports"]
    if isinstance(port, dict):  # docker compose v2 prints the long syntax
        port = f"{port['host_ip']}:{port['published']}:{port['target']}"
    assert str(port).removesuffix("/tcp") == "127.0.0.1:8787:8787", port


def test_collector_service_runs_the_project_image_and_writes_the_landing_folder(compose: dict) -> None:
    services = compose["services"]
    collector = services["collector"]
    assert collector["image"] == services["user_code"]["image"] and collector["build"] == services["user_code"]["build"]
    command = _command(collector)
    assert command[:3] == ["python", "-m", "ecomarket_assets.collector"] and _option(command, "--port") == "8010"
    env = _environment(collector)
    assert env["ECOMARKET_LANDING_DIR"] == _environment(services["user_code"])["ECOMARKET_LANDING_DIR"]
    assert "ECOMARKET_COLLECTOR_KEYS" in env
    volumes = [str(v) for v in collector["volumes"]]
    assert "ecomarket_data:/data" in volumes and any(v.endswith(":/data/landing") for v in volumes)  # writable
    assert all(p.startswith("${ECOMARKET_BIND_ADDRESS:-127.0.0.1}:") for p in collector["ports"])
    assert "8010/health" in " ".join(collector["healthcheck"]["test"])
