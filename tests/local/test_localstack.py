"""The local stack's command line as a newcomer meets it: ports, environment, mailbox, backfill ranges."""

from __future__ import annotations

import mailbox
import os
import smtplib
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest

from medallion import backfill, config
from medallion.local.localpg import free_port

PLAIN = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # a fresh shell: no PYTHONPATH, no AIRFLOW_*


def localstack(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(config.ROOT / ".venv/bin/python"), "-m", "medallion.local.localstack", *args],
                          cwd=config.ROOT, env={**PLAIN, "PYTHONPATH": str(config.ROOT / "plugins"), **env},
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize(("command", "variable"), [("up", "MEDALLION_SOURCE_PORT"),
                                                   ("airflow", "MEDALLION_AIRFLOW_PORT")])  # fmt: skip
def test_a_taken_port_is_one_line_naming_its_variable_before_any_initdb(tmp_path, command, variable):
    """Item 10: no traceback, the variable to set, and nothing created under the local folder."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: str(free_port()) for k in ("MEDALLION_SOURCE_PORT", "MEDALLION_WAREHOUSE_PORT",
                                             "MEDALLION_SMTP_PORT", "MEDALLION_MAIL_PORT")}  # fmt: skip
        proc = localstack(command, env={**env, "MEDALLION_LOCAL_DIR": str(tmp_path), variable: str(port)})
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and variable in lines[0], proc.stderr
    assert not list(tmp_path.rglob("PG_VERSION")), "initdb ran before the port was checked"


def test_make_env_works_in_a_plain_shell_and_follows_the_port_variables(tmp_path):
    """Item 9: `eval "$(make -s env)"` gives a shell whose `airflow` uses the stack, not ~/airflow."""
    port = free_port()
    env = {"MEDALLION_LOCAL_DIR": str(tmp_path), "MEDALLION_AIRFLOW_PORT": str(port), "HOME": str(tmp_path / "home")}
    script = ('eval "$(make -s env)" && python -c "import medallion.local.localstack" && '
              "airflow config get-value database sql_alchemy_conn && airflow config get-value api base_url && "
              'echo "START=$MEDALLION_START_DATE"')  # fmt: skip
    proc = subprocess.run(["bash", "-c", script], cwd=config.ROOT, env={**PLAIN, **env}, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    assert out[0].startswith("postgresql+psycopg2://") and ":54321/airflow" in out[0]
    assert out[1] == f"http://127.0.0.1:{port}"
    assert not (tmp_path / "home" / "airflow").exists(), "airflow fell back to ~/airflow"

    # Item 7: the local stack's schedules start near now (pinned once), not at a month-old date
    start = datetime.fromisoformat(out[2].removeprefix("START="))
    now = datetime.now(UTC)
    assert now - timedelta(hours=2) <= start <= now
    again = subprocess.run(["bash", "-c", script], cwd=config.ROOT, env={**PLAIN, **env}, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert again.stdout.splitlines()[2] == out[2], "the start date is pinned, not moving with every command"


def test_the_local_mailbox_keeps_every_message_and_lists_them_on_a_web_page(tmp_path):
    """Item 3a: alerts on the local stack go to a mail sink a person can open (Maildir + web page)."""
    smtp_port, web_port = free_port(), free_port()
    env = {"MEDALLION_LOCAL_DIR": str(tmp_path), "MEDALLION_SMTP_PORT": str(smtp_port),
           "MEDALLION_MAIL_PORT": str(web_port)}  # fmt: skip
    proc = localstack("mail", "start", env=env)
    assert proc.returncode == 0, proc.stderr
    try:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "airflow@example.com", "oncall@example.com", "[medallion] FAILED x"
        msg.set_content("the reason\n\n    airflow tasks clear bronze_browser_infra -t load\n")
        msg.add_alternative("<p>the <b>reason</b></p>", subtype="html")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)
        box = mailbox.Maildir(tmp_path / "mail", create=False)
        assert [m["subject"] for m in box] == ["[medallion] FAILED x"]
        page = httpx.get(f"http://127.0.0.1:{web_port}/", timeout=10)
        assert "[medallion] FAILED x" in page.text and "oncall@example.com" in page.text
        key = next(iter(box.keys()))
        one = httpx.get(f"http://127.0.0.1:{web_port}/{key}", timeout=10).text
        assert "airflow tasks clear bronze_browser_infra -t load" in one
    finally:
        stopped = localstack("mail", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", smtp_port)) != 0:
                break
        time.sleep(0.2)
    else:
        pytest.fail(f"the mail sink still listens on {smtp_port} after `mail stop`")


def test_make_backfill_lists_its_intervals_and_the_equivalent_airflow_backfill(airflow_db, tmp_path):
    """Item 8: `make backfill FROM TO` is [FROM, TO); the Airflow command it prints runs exactly those intervals."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.backfill import _get_info_list
    from airflow.serialization.definitions.dag import SerializedDAG
    from airflow.serialization.serialized_objects import DagSerialization

    proc = subprocess.run([sys.executable, "-m", "medallion.backfill", "--from", "2026-11-20T00:00",
                           "--to", "2026-11-20T03:00", "--dry-run"], capture_output=True, text=True,
                          env=os.environ, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == [
        "[2026-11-20 00:00, 2026-11-20 01:00) UTC",
        "[2026-11-20 01:00, 2026-11-20 02:00) UTC",
        "[2026-11-20 02:00, 2026-11-20 03:00) UTC",
    ]
    # `make backfill DRY=1` goes through the local stack's `backfill` command: the same lines, no server started
    via_make = subprocess.run(["make", "-s", "backfill", "FROM=2026-11-20T00:00", "TO=2026-11-20T03:00", "DRY=1"],
                              cwd=config.ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "MEDALLION_LOCAL_DIR": str(tmp_path)})  # fmt: skip
    # (its tail: make may first rebuild an out-of-date dbt manifest, and say so)
    assert via_make.returncode == 0 and via_make.stdout.splitlines()[-len(lines) :] == lines, via_make.stderr[-2000:]
    assert not list(tmp_path.rglob("PG_VERSION")), "a dry run started the local stack's servers"
    airflow_cmd = next(line for line in lines if line.strip().startswith("airflow backfill create"))
    args = airflow_cmd.split()
    from_date, to_date = args[args.index("--from-date") + 1], args[args.index("--to-date") + 1]

    # Airflow 3.3.2's own list of the runs such a backfill creates
    dag = DagBag(dag_folder=str(config.ROOT / "dags")).get_dag("bronze_browser_infra")
    serdag: SerializedDAG = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    infos = _get_info_list(dag=serdag, from_date=backfill._utc(from_date), to_date=backfill._utc(to_date),
                           reverse=False)  # fmt: skip
    got = [(i.data_interval.start, i.data_interval.end) for i in infos]
    assert got == backfill.intervals(backfill._utc("2026-11-20T00:00"), backfill._utc("2026-11-20T03:00"), "hour")


def test_demo_table_puts_rows_per_second_beside_the_rows_it_counts():
    """Item 13: rows/s of the demo table is read rows per second, next to a `rows read` column."""
    from medallion.local import localstack

    header = localstack.BRONZE_REPORT_HEADER.split()
    assert header[:6] == ["table", "rows", "read", "rows", "written", "read/s"]


def test_assets_are_not_named_like_the_dags():
    """Item 13: lineage reads `bronze_browser_infra -> bronze_browser_infra_tables -> silver_browser_infra -> ...`."""
    from airflow.dag_processing.dagbag import DagBag

    from medallion import dagkit

    dag_ids = set(DagBag(dag_folder=str(config.ROOT / "dags")).dag_ids)
    assert {"bronze_browser_infra", "silver_browser_infra", "gold_browser_infra"} <= dag_ids
    for layer in ("bronze", "silver", "gold"):
        asset = dagkit.asset(layer, "browser_infra")
        assert asset.name == f"{layer}_browser_infra_tables" and asset.name not in dag_ids, asset.name


def test_model_tasks_read_as_their_model_names(airflow_db):
    """Item 13: the UI shows `fct_browser_run`, not Cosmos' `fct_browser_run_run` (task ids unchanged)."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(config.ROOT / "dags")).get_dag("silver_browser_infra")
    task = next(t for t in dag.tasks if t.task_id.endswith("fct_browser_run_run"))
    assert task.task_display_name == "fct_browser_run"
