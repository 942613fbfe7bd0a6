"""A running Airflow 3 on the local stack: api-server, scheduler, dag-processor, triggerer.

Used by `make airflow` (in the foreground) and by the live end-to-end tests. Every component runs
in its own process group (so Ctrl-C reaches only the parent, which stops them in order) with its log
in $AIRFLOW_HOME/logs/<component>.log; `stop()` ends each group, workers included (SIGTERM, then
SIGKILL), and is registered at exit. Should the parent die without running it (SIGKILL, a crash),
the kernel sends each component SIGTERM (Linux' parent-death signal), so nothing keeps the port.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from medallion.local.localpg import port_is_free

if TYPE_CHECKING:  # localstack imports this module (`make airflow`, `make env`): a type, not a runtime import
    from medallion.local.localstack import Stack

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# LocalExecutor starts this many worker processes (Airflow's default, 32, is for a server): two per
# core, at least 4, so a bronze run's mapped loads run side by side without swamping a laptop.
PARALLELISM = max(4, 2 * (os.cpu_count() or 2))


try:  # looked up here, not in the forked child, where loading a library is unsafe
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: stop() and the signal handlers still apply
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent process ends, however it ends (Linux)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class AirflowStartError(RuntimeError):
    """A component could not start; the message names it and its log."""


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # the whole group has already exited
        pass


class LiveAirflow:
    def __init__(self, stack: Stack, port: int = 8080, user: str = "admin", password: str = "admin",
                 env: dict[str, str] | None = None):  # fmt: skip
        self.stack, self.port, self.user, self.password = stack, port, user, password
        self.home = stack.base / "airflow"
        self.extra_env = env or {}
        self.procs: dict[str, subprocess.Popen] = {}
        self._token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        secret_file = self.home / "jwt_secret"
        if not secret_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(secrets.token_urlsafe(32))
        return {
            **self.stack.env(),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
            "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", str(PARALLELISM)),
            **self.extra_env,
        }

    def start(self, timeout: float = 180) -> LiveAirflow:
        if not port_is_free(self.port):
            raise AirflowStartError(f"port {self.port} is already taken: stop what listens there "
                                    f"or set MEDALLION_AIRFLOW_PORT to another port")  # fmt: skip
        self.stack.up()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({self.user: self.password}))
        self.stack.migrate_airflow()  # and the pools
        env = {**os.environ, **self.env()}
        airflow = str(Path(sys.executable).with_name("airflow"))
        atexit.register(self.stop)
        for component in COMPONENTS:
            log = (self.home / "logs" / f"{component}.log").open("ab")
            self.procs[component] = subprocess.Popen(
                [airflow, component], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        try:
            self._wait_healthy(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AirflowStartError(f"airflow {name} exited with {proc.returncode}; "
                                            f"see {self.home / 'logs' / (name + '.log')}")  # fmt: skip
            try:
                health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if health.get("metadatabase", {}).get("status") == "healthy" and all(
                    (health.get(c) or {}).get("status") == "healthy"
                    for c in ("scheduler", "triggerer", "dag_processor")
                ):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(2)
        raise AirflowStartError(f"Airflow did not become healthy within {timeout:.0f}s; logs in {self.home / 'logs'}")

    def stop(self) -> None:
        for proc in self.procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)  # the component's workers, if it left any behind
            proc.wait()
        self.procs.clear()

    def unpause_existing(self, dag_ids: tuple[str, ...], timeout: float = 180) -> list[str]:
        """Unpause `dag_ids` once the dag-processor has them (those it still lacks after `timeout` are
        left: e.g. a broken product's). DAG ids are generated per product, so no file is named after them."""
        wanted = list(dag_ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            known = {d["dag_id"] for d in self.api("GET", "/dags", params={"limit": 100})["dags"]}
            if set(wanted) <= known:
                break
            time.sleep(2)
        on = [d for d in wanted if d in known]
        for dag_id in on:
            self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        return on

    # --- REST API ---------------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            resp = httpx.post(f"{self.url}/auth/token", json={"username": self.user, "password": self.password})
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs) -> dict:
        resp = httpx.request(method, f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {self.token()}"},
                             timeout=30, **kwargs)  # fmt: skip
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else {}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout:.0f}s")
