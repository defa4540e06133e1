"""A throwaway PostgreSQL server for tests, from the machine's own binaries.

``postgres_server()`` is a context manager that creates a fresh cluster in a
temporary directory, starts it on 127.0.0.1 and a free port (unix socket
inside the temporary directory too), creates one database, yields its
connection settings, and on exit stops the server (``pg_ctl stop -m fast``)
and removes the directory, also when the body raised.

PostgreSQL refuses to run as root; when the tests run as root, every server
command runs as the ``postgres`` OS user (``runuser -u postgres --``) and the
temporary directory is handed to that user.

The equivalent shell steps (as root; drop ``runuser -u postgres --`` and the
chown otherwise), for reuse in a CI script::

    PGBIN=/usr/lib/postgresql/15/bin
    TMP=$(mktemp -d); chown postgres: "$TMP"; mkdir "$TMP/sock"; chown postgres: "$TMP/sock"
    echo secret > "$TMP/pwfile"; chown postgres: "$TMP/pwfile"
    runuser -u postgres -- $PGBIN/initdb -D "$TMP/data" -U ecomarket \\
        --pwfile="$TMP/pwfile" --auth=scram-sha-256 -E UTF8 --locale=C
    runuser -u postgres -- $PGBIN/pg_ctl -D "$TMP/data" -l "$TMP/postgres.log" -w -t 60 \\
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $TMP/sock -c fsync=off" start
    PGPASSWORD=secret createdb -h 127.0.0.1 -p $PORT -U ecomarket dagster
    ...
    runuser -u postgres -- $PGBIN/pg_ctl -D "$TMP/data" -m fast -w stop; rm -rf "$TMP"
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_OS_USER = "postgres"


class PostgresNotAvailable(RuntimeError):
    """The PostgreSQL server binaries (or a user to run them as) are missing."""


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    data_dir: Path
    socket_dir: Path
    log_file: Path

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def dagster_env(self) -> dict[str, str]:
        """The DAGSTER_PG_* and POSTGRES_PASSWORD variables that docker/dagster.yaml reads."""
        return {
            "DAGSTER_PG_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_DB": self.dbname,
            "DAGSTER_PG_PORT": str(self.port),
        }

    def connect(self, dbname: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.dbname,
        )


def find_pg_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed.

    ``$PG_BINDIR`` wins, then PATH, then Debian's /usr/lib/postgresql/<version>/bin
    (newest version first).
    """
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in debian)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runner_prefix() -> list[str]:
    """Prefix that runs a command as a non-root user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError as exc:
        raise PostgresNotAvailable(
            f"running as root and there is no {PG_OS_USER!r} OS user to run PostgreSQL as"
        ) from exc
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_OS_USER, "--"]
    if shutil.which("setpriv"):
        pw = pwd.getpwnam(PG_OS_USER)
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    raise PostgresNotAvailable("running as root and neither runuser nor setpriv is available")


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def _chown_tree(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def _stop(as_pg: list[str], pg_ctl: str, data_dir: Path, cwd: Path) -> None:
    """``pg_ctl stop -m fast``, then ``-m immediate``, if a server runs on ``data_dir``."""
    for mode in ("fast", "immediate"):
        if not (data_dir / "postmaster.pid").exists():
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _run(
                [*as_pg, pg_ctl, "-D", str(data_dir), "-m", mode, "-w", "-t", "60", "stop"], cwd=cwd
            )
            return


@contextlib.contextmanager
def postgres_server(
    *,
    user: str = "ecomarket",
    password: str = "ecomarket-test",
    dbname: str = "dagster",
    bindir: Path | None = None,
    start_attempts: int = 3,
) -> Iterator[PgServer]:
    """Start a throwaway PostgreSQL server; stop it and delete its files on exit.

    Raises PostgresNotAvailable when the binaries cannot be found (callers in
    pytest turn that into a skip).
    """
    bindir = bindir or find_pg_bindir()
    if bindir is None:
        raise PostgresNotAvailable(
            "PostgreSQL is not installed: initdb/pg_ctl not found on PATH, in $PG_BINDIR "
            "or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)"
        )
    initdb, pg_ctl = str(bindir / "initdb"), str(bindir / "pg_ctl")
    as_pg = _runner_prefix()

    tmp = Path(tempfile.mkdtemp(prefix="ecomarket-pg-"))
    data_dir, socket_dir, log_file = tmp / "data", tmp / "sock", tmp / "postgres.log"
    try:
        socket_dir.mkdir()
        pwfile = tmp / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if as_pg:
            _chown_tree(tmp, PG_OS_USER)
        tmp.chmod(0o700)

        _run(
            [
                *as_pg, initdb, "-D", str(data_dir), "-U", user, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
            ],
            cwd=tmp,
        )  # fmt: skip
        pwfile.unlink()

        last_error: Exception | None = None
        for _ in range(start_attempts):
            port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                _run(
                    [*as_pg, pg_ctl, "-D", str(data_dir), "-l", str(log_file),
                     "-w", "-t", "60", "-o", options, "start"],
                    cwd=tmp,
                )  # fmt: skip
                break
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                # Usually the port was taken between the probe and the bind: retry.
                log = log_file.read_text(errors="replace") if log_file.exists() else ""
                last_error = RuntimeError(f"{exc}\nserver log:\n{log}")
                _stop(as_pg, pg_ctl, data_dir, cwd=tmp)
                time.sleep(0.5)
        else:
            raise RuntimeError("could not start PostgreSQL") from last_error

        server = PgServer(
            host="127.0.0.1",
            port=port,
            user=user,
            password=password,
            dbname=dbname,
            data_dir=data_dir,
            socket_dir=socket_dir,
            log_file=log_file,
        )
        conn = server.connect(dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{dbname}"')
        finally:
            conn.close()
        yield server
    finally:
        _stop(as_pg, pg_ctl, data_dir, cwd=tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def server_for_tests(dbname: str = "dagster") -> Iterator[PgServer]:
    """A module fixture's body: a running server, or the test skipped saying why (no PostgreSQL on the machine)."""
    import pytest

    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH, in $PG_BINDIR or in "
                    "/usr/lib/postgresql/*/bin); install it with `apt-get install postgresql`")
    try:
        with postgres_server(bindir=bindir, dbname=dbname) as server:
            yield server
    except PostgresNotAvailable as exc:
        pytest.skip(f"cannot run a PostgreSQL server here: {exc}")
