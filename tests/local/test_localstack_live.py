"""`make airflow` for real: the local stack's own Airflow process, after the demo's kind of runs.

One `python -m medallion.local.localstack airflow` (what `make airflow` runs) serves the whole module, on
free ports: the scheduler must carry on after the demo's runs, the re-run command of a FAILED email
(read from the local mailbox) must really clear the task, the watchdog DAGs must be on, and a
SIGTERM to the parent must leave no Airflow process and a free port.
"""

from __future__ import annotations

import mailbox
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import psutil
import psycopg
import pytest
from conftest import reset_connection_databases, wait_until

from medallion import config
from medallion.local import localstack
from medallion.local.demo import browser_infra as demo_source
from medallion.local.liveairflow import LiveAirflow
from medallion.local.localpg import free_port, port_is_free

pytestmark = pytest.mark.slow
NOW = demo_source.floor_hour(datetime.now(UTC))
START = NOW - timedelta(hours=3)  # the bronze schedule's start date in this module
LOGICAL = START + timedelta(minutes=30)  # of the run made to fail


def stack_env(stack, **extra) -> dict[str, str]:
    """What a person sets to run the local stack on other ports and folder (README, Connections)."""
    return {
        "MEDALLION_LOCAL_DIR": str(stack.base),
        "MEDALLION_SOURCE_PORT": str(stack.source.port),
        "MEDALLION_WAREHOUSE_PORT": str(stack.warehouse.port),
        **extra,
    }


@pytest.fixture(scope="module")
def local_airflow(airflow_db):
    stack = airflow_db
    reset_connection_databases(stack, source_template=None)
    # The metadata DB is the session's: runs of bronze left by earlier modules (test_liveairflow's
    # scheduled and backfill runs) would move where the scheduler continues. Start from no history.
    from airflow.api.common.delete_dag import delete_dag
    from airflow.exceptions import DagNotFound

    try:
        delete_dag("bronze_browser_infra")
    except DagNotFound:
        pass
    with psycopg.connect(stack.source.uri("browser_infra")) as conn:
        demo_source.seed(conn, NOW, scale=0.3)
    ports = {"MEDALLION_AIRFLOW_PORT": free_port(), "MEDALLION_SMTP_PORT": free_port(),
             "MEDALLION_MAIL_PORT": free_port()}  # fmt: skip
    env = stack_env(stack, MEDALLION_START_DATE=START.isoformat(), **{k: str(v) for k, v in ports.items()})

    # what `make demo` does first: bronze through Airflow for the interval [START, START + 1h)
    os.environ.update(env)
    try:
        demo_run = localstack.run_dag(stack, "bronze_browser_infra", START, START + timedelta(hours=1))
    finally:
        for key in env:
            os.environ.pop(key, None)

    log = (stack.base / "make-airflow.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "medallion.local.localstack", "airflow"], env={**os.environ, **env},
                            stdout=log, stderr=subprocess.STDOUT, cwd=config.ROOT)  # fmt: skip
    client = LiveAirflow(stack, port=ports["MEDALLION_AIRFLOW_PORT"])
    client.proc, client.env_vars, client.ports, client.demo_run = proc, env, ports, demo_run

    def healthy():
        assert proc.poll() is None, f"make airflow exited with {proc.returncode}; see {log.name}"
        try:
            health = httpx.get(f"{client.url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        return all((health.get(c) or {}).get("status") == "healthy" for c in ("scheduler", "dag_processor"))

    try:
        wait_until(healthy, 300, "make airflow did not become healthy")
        yield client
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(120)
        subprocess.run([sys.executable, "-m", "medallion.local.localstack", "mail", "stop"], env={**os.environ, **env},
                       check=False)  # fmt: skip


def runs(client, dag_id: str, run_type: str | None = None) -> list[dict]:
    params = {"order_by": "logical_date", "limit": 100, **({"run_type": run_type} if run_type else {})}
    return client.api("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def test_after_the_demos_run_the_scheduler_runs_every_later_interval_and_no_earlier_one(local_airflow):
    """Items 1 and 7 of issue 15: the demo's run must not block the schedule, nor leave a hole or bogus durations."""
    client = local_airflow
    demo = next(r for r in runs(client, "bronze_browser_infra") if r["dag_run_id"] == client.demo_run)
    assert (ts(demo["data_interval_start"]), ts(demo["data_interval_end"])) == (START, START + timedelta(hours=1))
    took = ts(demo["end_date"]) - ts(demo["start_date"])
    assert timedelta(0) < took < timedelta(minutes=10), f"the demo's run shows a duration of {took}"

    client.api("PATCH", "/dags/bronze_browser_infra", json={"is_paused": False})
    wanted = [NOW - timedelta(hours=2), NOW - timedelta(hours=1)]  # START's interval is the demo's

    def scheduled_done():
        done = [r for r in runs(client, "bronze_browser_infra", "scheduled") if r["state"] in ("success", "failed")]
        return done if len(done) >= len(wanted) else None

    done = wait_until(scheduled_done, 900, "the scheduler did not run the intervals after the demo's")
    # (a third run is fine if the clock passed NOW + 1h meanwhile; none may start before START)
    assert [ts(r["data_interval_start"]) for r in done][: len(wanted)] == wanted, "no hole, nothing before START"
    assert {r["state"] for r in done} == {"success"}
    dag = client.api("GET", "/dags/bronze_browser_infra")
    assert ts(dag["next_dagrun_logical_date"]) >= NOW  # due at NOW + 1h: the scheduler is not stuck

    # a manual trigger (the form's defaults: no logical date) is one run, not a catch-up
    before = {r["dag_run_id"] for r in runs(client, "bronze_browser_infra")}
    client.api("POST", "/dags/bronze_browser_infra/dagRuns", json={"logical_date": None, "conf": {"tables": ["plans"]}})
    time.sleep(5)
    new = [r for r in runs(client, "bronze_browser_infra") if r["dag_run_id"] not in before]
    manual = [r for r in new if r["run_type"] == "manual"]
    assert len(manual) == 1 and all(ts(r["logical_date"]) >= NOW for r in new if r["run_type"] == "scheduled")
    assert client.wait_for_run("bronze_browser_infra", manual[0]["dag_run_id"]) == "success"

    # every bronze run reads its mapped loads' results without Airflow logging `XCom not found`
    logs = client.stack.base / "airflow" / "logs"
    noisy = [f"{p}: {line}" for p in logs.rglob("*.log")
             for line in p.read_text(errors="replace").splitlines() if "XCom not found" in line]  # fmt: skip
    assert noisy == [], "\n".join(noisy[:5])


def test_the_rerun_command_of_a_failed_email_really_reruns_the_task(local_airflow):
    """Item 2 (and 3a): the FAILED email lands in the local mailbox; its command, run as printed, reruns the task."""
    client = local_airflow
    maildir = client.stack.base / "mail"
    client.api("PATCH", "/dags/bronze_browser_infra", json={"is_paused": False})
    with psycopg.connect(client.stack.source.uri("browser_infra"), autocommit=True) as src:
        src.execute("alter table public.plans rename to plans_away")
        try:
            # after the start date (an earlier run gets no tasks), off the hour (no scheduled run's date)
            run = client.api("POST", "/dags/bronze_browser_infra/dagRuns", json={
                "logical_date": LOGICAL.isoformat(), "conf": {"tables": ["plans"]}})  # fmt: skip
            state = client.wait_for_run("bronze_browser_infra", run["dag_run_id"], 600)
            tis = client.api("GET", f"/dags/bronze_browser_infra/dagRuns/{run['dag_run_id']}/taskInstances")
            assert state == "failed", [(t["task_id"], t["map_index"], t["state"]) for t in tis["task_instances"]]
        finally:
            src.execute("alter table public.plans_away rename to plans")

    def failed_email():
        if not maildir.exists():
            return None
        for msg in mailbox.Maildir(maildir, create=False):
            if "FAILED bronze_browser_infra.load[plans]" in (msg["subject"] or ""):
                return msg
        return None

    msg = wait_until(failed_email, 120, f"no FAILED email in the local mailbox {maildir}")
    text = next(p.get_payload(decode=True).decode() for p in msg.walk() if p.get_content_type() == "text/plain")
    command = re.search(r"^\s*(airflow tasks clear .*)$", text, re.M).group(1)
    page = httpx.get(f"http://127.0.0.1:{client.ports['MEDALLION_MAIL_PORT']}/", timeout=10).text
    assert "FAILED bronze_browser_infra.load[plans]" in page

    # as on-call would: a plain shell in the checkout, the README's environment line, then the command
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(client.stack.base), **client.env_vars}
    proc = subprocess.run(["bash", "-c", f'eval "$(make -s env)" && {command}'], cwd=config.ROOT, env=clean,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]

    def load_state():
        tis = client.api("GET", f"/dags/bronze_browser_infra/dagRuns/{run['dag_run_id']}/taskInstances")[
            "task_instances"
        ]
        return next(t["state"] for t in tis if t["task_id"] == "load")

    wait_until(lambda: load_state() == "success", 600, f"`{command}` did not rerun load[plans]")
    assert client.wait_for_run("bronze_browser_infra", run["dag_run_id"], 600) == "success"


def test_the_watchdog_dags_are_on(local_airflow):
    """Item 12: `make airflow` unpauses the freshness check and the reconciliation."""
    watchdogs = list(localstack.watchdog_dags())
    assert "freshness" in watchdogs and len(watchdogs) >= 2
    for dag_id in watchdogs:
        assert local_airflow.api("GET", f"/dags/{dag_id}")["is_paused"] is False, dag_id


def test_sigterm_to_make_airflow_stops_every_airflow_process_and_frees_the_port(local_airflow):
    """Item 11: not only Ctrl-C: a SIGTERM (or a closed terminal's SIGHUP) stops every component and worker."""
    proc = local_airflow.proc
    sink = localstack.mail_pid(local_airflow.stack.base)
    children = [c for c in psutil.Process(proc.pid).children(recursive=True) if c.pid != sink]
    assert len(children) >= 4
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) is not None
    gone, alive = psutil.wait_procs(children, timeout=60)
    assert alive == [], f"still running after SIGTERM: {[p.pid for p in alive]}"
    # the UI's port is free again: nothing listens (connections closed by it may linger in TIME_WAIT,
    # which a new server's SO_REUSEADDR ignores, as `make airflow` does)
    assert port_is_free(local_airflow.port)
