"""On-call emails end to end: a real SMTP server (aiosmtpd), real Postgres, real Airflow (dag.test()).

Every assertion is on the messages the SMTP server received: subject, recipients, both bodies.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import re
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from conftest import AS_OF, STACK, reset_connection_databases
from psycopg import sql

from medallion import alerts, config, freshness, oncall, outbox
from medallion.local.localpg import free_port

pytestmark = pytest.mark.slow

RECIPIENT = "oncall@example.com"  # MEDALLION_ALERT_EMAILS as the conftest's stack sets it


@dataclass
class Received:
    to: list[str]
    sender: str
    subject: str
    text: str
    html: str
    content_type: str

    def bodies(self) -> tuple[str, str]:
        return self.text, self.html


class Inbox:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self):
        self.messages: list[Received] = []
        self.while_sending: Callable[[], None] | None = None  # runs while the sender waits for our reply

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.while_sending is not None:
            self.while_sending()
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text, htm = msg.get_body(("plain",)), msg.get_body(("html",))
        self.messages.append(Received(
            to=list(envelope.rcpt_tos), sender=envelope.mail_from, subject=str(msg["Subject"]),
            text=text.get_content() if text else "", html=htm.get_content() if htm else "",
            content_type=msg.get_content_type(),
        ))  # fmt: skip
        return "250 OK"

    def take(self) -> list[Received]:
        taken, self.messages = self.messages, []
        return taken


@pytest.fixture(scope="module", autouse=True)
def browser_infra_only():
    """These tests check the browser-infra product alone (the database its DAGs load here): another
    product's tables and models are declared too but never loaded in this module, so every check
    would call them stale. Scope the declarations to browser_infra."""
    patch = pytest.MonkeyPatch()
    all_tables = config.all_tables
    patch.setattr(config, "all_tables", lambda: [t for t in all_tables() if t.source == "browser_infra"])
    for kind, declare in list(freshness.SLA_DECLARATIONS.items()):
        if kind != "bronze":
            scoped = lambda *a, declare=declare, **kw: [  # noqa: E731
                s for s in declare(*a, **kw) if not s.source.endswith(("product_analytics", "retail"))
            ]
            patch.setitem(freshness.SLA_DECLARATIONS, kind, scoped)
            patch.setattr(freshness, f"{kind}_slas", scoped)
    yield
    patch.undo()


@pytest.fixture(scope="module")
def inbox():
    from aiosmtpd.controller import Controller

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=STACK.smtp_port)  # AIRFLOW_CONN_SMTP_DEFAULT's port
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture(scope="module")
def pipeline(airflow_db, inbox):
    """Fresh `source` and `warehouse` databases (those AIRFLOW_CONN_* point at), every table loaded once."""
    stack = airflow_db
    reset_connection_databases(stack)
    from airflow.dag_processing.dagbag import DagBag

    with warehouse(stack) as wh:  # silver and gold as dbt would leave them, covering today: fresh
        for sla in freshness.gold_slas():
            build_gold(wh, sla, newest_period(sla))
        for sla in freshness.silver_slas():
            build_silver(wh, sla, datetime.now(UTC))
    bag = DagBag(dag_folder=str(config.ROOT / "dags"))
    assert not bag.import_errors
    assert bag.get_dag("bronze_browser_infra").test(logical_date=AS_OF).state == "success"
    assert inbox.take() == [], "every table was just loaded: nothing is stale, nothing failed"
    return stack, bag


def warehouse(stack) -> psycopg.Connection:
    return psycopg.connect(stack.warehouse.uri("warehouse"), autocommit=True)


@contextmanager
def retries(task, n: int):
    """The task retries n times at once (instead of 3 times with minutes of backoff)."""
    saved = task.retries, task.retry_delay, task.retry_exponential_backoff
    task.retries, task.retry_delay, task.retry_exponential_backoff = n, timedelta(0), False
    try:
        yield
    finally:
        task.retries, task.retry_delay, task.retry_exponential_backoff = saved


@contextmanager
def unreadable(stack, table: str):
    """The replication role loses SELECT on one source table: its load fails on every try."""
    with psycopg.connect(stack.source.uri("browser_infra"), autocommit=True) as conn:
        conn.execute(f"revoke select on public.{table} from replicator")
        try:
            yield
        finally:
            conn.execute(f"grant select on public.{table} to replicator")


def age_ledger(stack, table: str, by: timedelta) -> None:
    """Make a table's loads look older than they are (the clock stays as it is)."""
    with warehouse(stack) as wh:
        wh.execute(
            "update ops.replication_batches set started_at = started_at - %s, finished_at = finished_at - %s "
            "where table_name = %s",
            (by, by, table),
        )


def gold(table: str) -> freshness.Sla:
    """A gold table's declared SLA (the dbt manifest)."""
    return next(sla for sla in freshness.gold_slas() if sla.table_name == table)


def newest_period(sla: freshness.Sla, back: int = 0) -> date:
    """The start of the period `back` periods before the current one (today, or this month's first day)."""
    today = datetime.now(UTC).date()
    if sla.covered_grain == "month":
        month = today.year * 12 + today.month - 1 - back
        return date(month // 12, month % 12 + 1, 1)
    assert sla.covered_grain == "day", sla
    return today - timedelta(days=back)


def build_gold(wh: psycopg.Connection, sla: freshness.Sla, *newest: date) -> None:
    """Stand-in for dbt's build of a gold table: its covered_by column, one row per period given."""
    table = sql.Identifier(sla.source, sla.table_name)
    wh.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(sla.source)))
    wh.execute(sql.SQL("drop table if exists {}").format(table))
    wh.execute(sql.SQL("create table {} ({} date not null)").format(table, sql.Identifier(sla.covered_by)))
    for day in newest:
        wh.execute(sql.SQL("insert into {} values (%s)").format(table), (day,))


def build_silver(wh: psycopg.Connection, sla: freshness.Sla, *cursors: datetime) -> None:
    """Stand-in for dbt's build of a silver fact: its covered_by timestamp (_cursor), one row per value."""
    table = sql.Identifier(sla.source, sla.table_name)
    wh.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(sla.source)))
    wh.execute(sql.SQL("drop table if exists {}").format(table))
    wh.execute(sql.SQL("create table {} ({} timestamptz not null)").format(table, sql.Identifier(sla.covered_by)))
    for cursor in cursors:
        wh.execute(sql.SQL("insert into {} values (%s)").format(table), (cursor,))


def freshness_row(stack, kind: str, table: str) -> dict:
    with warehouse(stack) as wh:
        wh.row_factory = psycopg.rows.dict_row
        return wh.execute("select * from ops.table_freshness where kind = %s and table_name = %s",
                          (kind, table)).fetchone()  # fmt: skip


def rows(stack, query: str) -> list[dict]:
    with warehouse(stack) as wh:
        wh.row_factory = psycopg.rows.dict_row
        return wh.execute(query).fetchall()


def task_states(run) -> dict[str, set[str]]:
    from airflow.utils.session import create_session

    with create_session() as session:
        states: dict[str, set[str]] = {}
        for ti in run.get_task_instances(session=session):
            states.setdefault(ti.task_id, set()).add(ti.state)
    return states


def visible(markup: str) -> str:
    """What an HTML body shows: tags dropped, line breaks kept, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<br>|</(p|li|pre)>", "\n", markup)))


def assert_in_both(mail: Received, *facts: str) -> None:
    shown = visible(mail.html)
    for fact in facts:
        assert fact in mail.text, f"text body lacks {fact!r}:\n{mail.text}"
        assert fact in shown, f"HTML body lacks {fact!r}:\n{shown}"


def test_a_load_that_keeps_failing_sends_one_email_after_its_last_retry(pipeline, inbox):
    stack, bag = pipeline
    dag = bag.get_dag("bronze_browser_infra")
    logical = AS_OF + timedelta(hours=1)  # a manual run: data interval [AS_OF, AS_OF + 1h)
    with retries(dag.get_task("load"), 1), unreadable(stack, "api_keys"):
        run = dag.test(logical_date=logical)
    assert run.state == "failed"  # `landed` is upstream_failed; the check_freshness teardown does not hide it
    assert task_states(run) == {"plan_tables": {"success"}, "load": {"success", "failed"},
                                "landed": {"upstream_failed"}, "check_freshness": {"success"}}  # fmt: skip

    with warehouse(stack) as wh:
        tries = wh.execute(
            "select count(*) from ops.replication_batches where table_name = 'api_keys' and status = 'failed' "
            "and run_id = %s",
            (run.run_id,),
        ).fetchone()[0]
    assert tries == 2, "the load ran twice (one retry)"

    [mail] = inbox.take()  # one email for two failed tries, none from the freshness check after it
    assert mail.subject == "[medallion] FAILED bronze_browser_infra.load[api_keys] (1 run)"
    assert mail.to == [RECIPIENT]
    assert mail.content_type == "multipart/alternative" and mail.text and mail.html
    command = (
        "airflow tasks clear bronze_browser_infra -t load -s 2026-11-01T01:00:00+00:00 "
        "-e 2026-11-01T01:00:00+00:00 -f -d -y"
    )
    assert_in_both(
        mail,
        "bronze_browser_infra.load[api_keys] failed after 2 tries.",
        "Error: ReplicationError: bronze_browser_infra.api_keys: load failed: permission denied for table api_keys",
        "Table: bronze_browser_infra.api_keys",
        "Interval: 2026-11-01 00:00 → 01:00 UTC",
        f"Run: {run.run_id}",
        "Stale now: nothing — every table is within its SLA",
        command,
    )
    assert mail.text.index("Error:") < mail.text.index("Interval:") < mail.text.index("What to do:")
    log_url = re.search(r"^Log: (\S+)$", mail.text, re.M).group(1)
    assert "/dags/bronze_browser_infra/runs/" in log_url and "/tasks/load/mapped/" in log_url
    assert log_url.endswith("?try_number=2") and f'href="{html.escape(log_url)}"' in mail.html


def test_a_stale_table_sends_one_email_then_nothing_while_stale_then_one_when_recovered(pipeline, inbox, monkeypatch):
    stack, bag = pipeline
    monkeypatch.setenv("AIRFLOW_VAR_ALERT_EMAILS", "data@example.com, lead@example.com")  # the Variable wins
    checker = bag.get_dag("freshness")
    age_ledger(stack, "invoices", timedelta(hours=80))  # error_after is 72h

    assert checker.test().state == "success"  # stale data never fails the check
    [mail] = inbox.take()
    assert mail.subject == "[medallion] STALE invoices"
    assert mail.to == ["data@example.com", "lead@example.com"]
    assert re.match(r"invoices is stale \(error\): last load 80h( \d+m)? ago, SLA error after 72h\.\n", mail.text)
    assert_in_both(
        mail,
        "invoices — ERROR (new)",
        "SLA: warn after 26h, error after 72h",
        """airflow dags trigger bronze_browser_infra -c '{"tables": ["invoices"]}'""",
    )

    assert checker.test().state == "success"
    assert inbox.take() == [], "still stale: nothing new to say"
    other = bag.get_dag("bronze_browser_infra").test(
        logical_date=AS_OF + timedelta(hours=2), run_conf={"tables": ["plans"]}
    )
    assert other.state == "success", "stale data does not fail a bronze run"
    assert inbox.take() == [], "nor does its check_freshness repeat the email"

    run = bag.get_dag("bronze_browser_infra").test(
        logical_date=AS_OF + timedelta(hours=3), run_conf={"tables": ["invoices"]}
    )
    assert run.state == "success"
    # sent by the bronze run's own check_freshness; the 01:00 interval of invoices was skipped: a hole
    mail, hole = inbox.take()
    assert hole.subject.startswith("[medallion] HOLE bronze invoices: ")
    assert mail.subject == "[medallion] RECOVERED invoices"
    assert_in_both(mail, "invoices is fresh again.", "invoices — FRESH", "was stale (error) since",
                   "Stale now: nothing — every table is within its SLA")  # fmt: skip
    with warehouse(stack) as wh:
        incidents = wh.execute(
            "select table_name, status, notified_by, closed_at is not null from ops.freshness_incidents"
        ).fetchall()
    assert incidents == [("invoices", "error", "freshness check", True)]


@pytest.mark.parametrize(("dag_id", "allowed", "work"), [
    ("bronze_browser_infra", 45, "a long COPY"),  # MEDALLION_BRONZE_DEADLINE_MINUTES' default
    ("silver_browser_infra", 60, "a long dbt build"),  # MEDALLION_SILVER_DEADLINE_MINUTES'
    ("gold_browser_infra", 60, "a long dbt build"),  # MEDALLION_GOLD_DEADLINE_MINUTES'
])  # fmt: skip
def test_a_missed_deadline_sends_its_email_through_the_scheduler_and_triggerer_code(
    pipeline, inbox, dag_id, allowed, work
):
    """The deadline path as Airflow runs it, minus the wait: the run is created like the scheduler
    does (from the serialized DAG, queued), the deadline is moved into the past instead of waiting
    45 minutes, then the scheduler's Deadline.handle_miss queues the callback on a trigger and the
    trigger row is run the way the triggerer runs it. For every layer DAG."""
    from airflow._shared.module_loading import import_string
    from airflow.models import DagRun, Deadline
    from airflow.models.dagbag import DBDagBag
    from airflow.models.trigger import Trigger
    from airflow.timetables.base import DataInterval
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    start = AS_OF + timedelta(hours=5)
    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
        run = dag.create_dagrun(
            run_id=f"scheduled__{start.isoformat()}", logical_date=start,
            data_interval=DataInterval(start, start + timedelta(hours=1)), run_after=start + timedelta(hours=1),
            run_type=DagRunType.SCHEDULED, triggered_by=DagRunTriggeredByType.TIMETABLE, state=DagRunState.QUEUED,
            session=session,
        )  # fmt: skip
        session.flush()  # Airflow's sessions do not autoflush: the scheduler commits here
        run_pk, queued_at = run.id, run.queued_at
        [deadline] = session.scalars(select(Deadline).where(Deadline.dagrun_id == run_pk)).all()
        assert deadline.deadline_time == queued_at + timedelta(minutes=allowed)
        deadline.deadline_time = datetime.now(UTC) - timedelta(minutes=12)
    try:
        with create_session() as session:  # the scheduler loop's step (scheduler_job_runner), for this run
            expired = session.scalars(
                select(Deadline).where(Deadline.deadline_time < datetime.now(UTC), ~Deadline.missed,
                                       Deadline.dagrun_id == run_pk)
                .options(selectinload(Deadline.callback), selectinload(Deadline.dagrun))
            ).all()  # fmt: skip
            assert len(expired) == 1
            expired[0].handle_miss(session)
            session.flush()
            trigger_id = expired[0].callback.trigger_id
        with create_session() as session:  # the triggerer: build the trigger from its row and run it
            row = session.get(Trigger, trigger_id)
            trigger = import_string(row.classpath)(**row.kwargs)

        async def run_trigger():
            return [event.payload async for event in trigger.run()]

        events = asyncio.run(run_trigger())
        assert events[-1]["state"] == "success", events
        assert events[-1]["body"] == f"sent to {RECIPIENT}"
    finally:
        with create_session() as session:
            session.delete(session.get(DagRun, run_pk))

    [mail] = inbox.take()
    assert mail.subject == f"[medallion] LATE {dag_id} 05:00–06:00 UTC run, 12m past deadline"
    assert mail.to == [RECIPIENT]
    assert_in_both(
        mail,
        f"{dag_id} is 12m past its deadline and not done (state: queued).",
        f"DAG: {dag_id}",
        f"Run: scheduled__{start.isoformat()}",
        "Interval: 2026-11-01 05:00 → 06:00 UTC",
        f"Queued: {alerts.when(queued_at)}",
        f"({allowed // 60}h after queued)" if allowed >= 60 else f"({allowed}m after queued)",
        "Late by: 12m",
        f"/dags/{dag_id}/runs/scheduled__2026-11-01T05%3A00%3A00%2B00%3A00",
        work,
    )
    # quiet when the run already failed (its FAILED email was the alert) and for backfills
    for dag_run in ({"state": "failed", "run_type": "scheduled"}, {"state": "running", "run_type": "backfill"}):
        assert alerts.deadline_email({"dag_run": dag_run, "deadline": {"deadline_time": datetime.now(UTC)}}) is None


def test_the_view_states_the_facts_the_email_states(pipeline, inbox):
    stack, _ = pipeline
    age_ledger(stack, "invoices", timedelta(hours=30))  # warn 26h, error 72h: warn
    age_ledger(stack, "session_events", timedelta(hours=5))  # warn 2h, error 4h: error
    freshness.check()  # what both freshness tasks run
    [mail] = inbox.take()
    assert mail.subject == "[medallion] STALE invoices, session_events"

    with warehouse(stack) as wh:
        wh.row_factory = psycopg.rows.dict_row
        view = {r["table_name"]: r for r in wh.execute("select * from ops.table_freshness where kind = 'bronze'")}
        slas = {r["table_name"]: r for r in wh.execute("select * from ops.table_slas where kind = 'bronze'")}
        gold_view = {r["table_name"]: r for r in wh.execute("select * from ops.table_freshness where kind = 'gold'")}
        gold_slas = {r["table_name"]: r for r in wh.execute("select * from ops.table_slas where kind = 'gold'")}
    gold_declared = {sla.table_name: sla for sla in freshness.gold_slas()}
    assert set(gold_view) == set(gold_slas) == set(gold_declared), "every gold SLA, synced from the dbt project"
    for name, sla in gold_declared.items():
        assert (gold_slas[name]["warn_after"], gold_slas[name]["error_after"], gold_slas[name]["covered_by"],
                gold_slas[name]["covered_grain"]) == (sla.warn_after, sla.error_after, sla.covered_by,
                                                      sla.covered_grain)  # fmt: skip
        assert gold_view[name]["status"] == "fresh" and gold_view[name]["last_load_at"] > datetime.now(UTC)
    declared = config.tables("browser_infra")
    assert set(view) == set(slas) == set(declared), "every declared table, synced from the one declaration"
    for name, spec in declared.items():
        assert (slas[name]["warn_after"], slas[name]["error_after"]) == (spec.freshness.warn_after,
                                                                          spec.freshness.error_after)  # fmt: skip
        assert (view[name]["warn_after"], view[name]["error_after"]) == (slas[name]["warn_after"],
                                                                          slas[name]["error_after"])  # fmt: skip
    stale = {name: row for name, row in view.items() if row["status"] in ("warn", "error")}
    assert {name: row["status"] for name, row in stale.items()} == {"invoices": "warn", "session_events": "error"}
    assert "2 tables are stale (2 new): invoices, session_events." in mail.text
    for name, row in stale.items():
        block = mail.text.split(f"- {name} — ")[1].split("\n- ")[0]
        assert block.startswith(f"{row['status'].upper()} (new)")
        assert f"last load {row['last_load_at'].astimezone(UTC):%Y-%m-%d %H:%M} UTC" in block
        hours, minutes = map(int, re.search(r"\((\d+)h(?: (\d+)m)? ago\)", block).groups(default="0"))
        assert abs(timedelta(hours=hours, minutes=minutes) - row["age"]) < timedelta(minutes=2)
        warn, error = (int(row[k].total_seconds() // 3600) for k in ("warn_after", "error_after"))
        assert f"SLA: warn after {warn}h, error after {error}h" in block
        assert f"last batch: {row['last_batch_rows']:,} rows" in block
        assert f"{name} — {row['status'].upper()} (new)" in visible(mail.html)

    age_ledger(stack, "invoices", -timedelta(hours=30))
    age_ledger(stack, "session_events", -timedelta(hours=5))
    freshness.check()
    [mail] = inbox.take()
    assert mail.subject == "[medallion] RECOVERED invoices, session_events"


def smtp_down(monkeypatch):
    """SMTP is down: nothing listens on the smtp_default connection's port."""
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", f"smtp://127.0.0.1:{free_port()}?disable_ssl=true&disable_tls=true")


def backoff_elapsed(stack) -> None:
    """Let the outbox's retry delay pass (the clock stays as it is)."""
    with warehouse(stack) as wh:
        wh.execute("update ops.alert_outbox_messages set next_attempt_at = now() where sent_at is null")


def test_news_that_could_not_be_emailed_is_emailed_by_the_next_check(pipeline, inbox, monkeypatch):
    stack, _ = pipeline
    age_ledger(stack, "users", timedelta(hours=3))  # warn 2h, error 6h
    with monkeypatch.context() as m:
        smtp_down(m)
        assert "error" in freshness.check(strict=False)  # the check after a load: logs, does not fail
        with pytest.raises(outbox.AlertsUndelivered, match=r"1 alert\(s\) not sent, kept in ops.alert_outbox"):
            freshness.check()  # the freshness DAG's check fails (and retries) while an alert waits
    [kept] = rows(stack, "select * from ops.alert_outbox where state <> 'sent'")
    assert (kept["state"], kept["subject"], kept["attempts"]) == ("failed", "[medallion] WARN users", 1)
    assert "Connection refused" in kept["last_error"] and kept["next_attempt_at"] > datetime.now(UTC)
    [status] = rows(stack, "select pending, failed from ops.alert_outbox_status")
    assert status == {"pending": 0, "failed": 1}
    # SMTP is back; within the backoff nothing is retried, after it the next check sends it, once
    assert freshness.check(strict=False)["alerts_sent"] == 0 and inbox.take() == []
    backoff_elapsed(stack)
    assert freshness.check()["opened"] == [], "the incident was recorded with the news: not announced twice"
    assert [m.subject for m in inbox.take()] == ["[medallion] WARN users"]
    freshness.check()
    assert inbox.take() == [], "sent exactly once"
    age_ledger(stack, "users", -timedelta(hours=3))
    freshness.check()
    assert [m.subject for m in inbox.take()] == ["[medallion] RECOVERED users"]


# --- gold: how old is the newest interval a table covers -------------------------------------


def test_a_gold_table_behind_its_sla_sends_one_email_then_nothing_then_one_when_caught_up(pipeline, inbox):
    """Gold rebuilt just now but with nothing after the day before yesterday is stale: its age runs
    from the end of the newest day it covers, not from its rebuild."""
    stack, bag = pipeline
    sla = gold("agg_daily_sessions")  # covered_by session_date (day): the model's override of the folder's date_day
    assert (sla.covered_by, sla.covered_grain) == ("session_date", "day")
    assert (sla.warn_after, sla.error_after) == (timedelta(hours=4), timedelta(hours=8))  # dbt_project.yml, marts
    behind = newest_period(sla, back=2)
    covered_until = datetime.combine(behind + timedelta(days=1), datetime.min.time(), UTC)
    with warehouse(stack) as wh:
        build_gold(wh, sla, behind - timedelta(days=1), behind)  # just rebuilt, newest row 2 days old
    checker = bag.get_dag("freshness")

    assert checker.test().state == "success"
    [mail] = inbox.take()
    age = datetime.now(UTC) - covered_until
    assert mail.subject == "[medallion] STALE gold_marts.agg_daily_sessions"
    lead = re.match(r"gold_marts\.agg_daily_sessions is stale \(error\): covers until (.+ UTC), (\d+)h(?: (\d+)m)? "
                    r"ago, SLA error after 8h\.\n", mail.text)  # fmt: skip
    assert lead, mail.text
    assert lead.group(1) == f"{covered_until:%Y-%m-%d} 00:00 UTC"
    shown = timedelta(hours=int(lead.group(2)), minutes=int(lead.group(3) or 0))
    assert abs(shown - age) < timedelta(minutes=2)
    assert_in_both(
        mail,
        "gold_marts.agg_daily_sessions — ERROR (new)",
        f"covers until {covered_until:%Y-%m-%d} 00:00 UTC (",
        "SLA: warn after 4h, error after 8h",
        "Gold is rebuilt from silver, silver from bronze",
        "/dags/gold_browser_infra/runs",
        "airflow dags trigger gold_browser_infra",
    )
    assert "bronze_browser_infra -c" not in mail.text, "no bronze table is stale: no bronze catch-up command"
    row = freshness_row(stack, "gold", "agg_daily_sessions")
    assert (row["source"], row["last_load_at"], row["status"]) == ("gold_marts", covered_until, "error")
    assert abs(row["age"] - age) < timedelta(minutes=2)

    assert checker.test().state == "success"
    assert inbox.take() == [], "still stale: nothing new to say"

    with warehouse(stack) as wh:  # gold catches up: today's sessions arrive
        wh.execute("insert into gold_marts.agg_daily_sessions values (%s)", (newest_period(sla),))
    assert freshness.check()["recovered"] == ["gold_marts.agg_daily_sessions"]
    [mail] = inbox.take()
    assert mail.subject == "[medallion] RECOVERED gold_marts.agg_daily_sessions"
    tomorrow = newest_period(sla) + timedelta(days=1)
    assert_in_both(mail, "gold_marts.agg_daily_sessions is fresh again.", "gold_marts.agg_daily_sessions — FRESH",
                   f"covers until {tomorrow:%Y-%m-%d} 00:00 UTC (its newest period is in progress)",
                   "was stale (error) since", "Stale now: nothing — every table is within its SLA")  # fmt: skip


def test_a_gold_table_never_built_or_not_measurable_reads_as_stale_and_says_why(pipeline, inbox):
    stack, _ = pipeline
    names = ["agg_growth_daily", "agg_monthly_revenue", "agg_ops_daily", "agg_org_daily"]
    labels = [f"gold_marts.{name}" for name in names]
    with warehouse(stack) as wh:
        wh.execute("drop table gold_marts.agg_growth_daily")  # gold never ran (or a new mart not built yet)
        build_gold(wh, gold("agg_monthly_revenue"))  # built, no rows
        wh.execute("alter table gold_marts.agg_ops_daily rename column date_day to day")  # declaration is wrong
        wh.execute("drop table gold_marts.agg_org_daily")  # the query fails (stands for e.g. a missing privilege)
        wh.execute("create view gold_marts.agg_org_daily as select current_date + 1 / 0 as date_day")
    assert freshness.check()["opened"] == labels, "one check, every problem; nothing crashed"
    [mail] = inbox.take()
    assert mail.subject == f"[medallion] STALE {', '.join(labels[:3])} +1"
    assert_in_both(
        mail,
        f"4 tables are stale (4 new): {', '.join(labels)}.",
        "gold_marts.agg_growth_daily — ERROR (new)",
        "never built: gold_marts.agg_growth_daily does not exist",
        "no rows: gold_marts.agg_monthly_revenue is empty",
        "cannot measure: gold_marts.agg_ops_daily has no column date_day (meta.covered_by)",
        "cannot measure gold_marts.agg_org_daily: division by zero",
        "airflow dags trigger gold_browser_infra",
    )
    row = freshness_row(stack, "gold", "agg_growth_daily")
    assert (row["last_load_at"], row["age"], row["status"]) == (None, None, "error")
    assert row["last_error"] == "never built: gold_marts.agg_growth_daily does not exist"
    bronze = rows(stack, "select table_name from ops.table_freshness where kind = 'bronze' and status = 'fresh'")
    assert {r["table_name"] for r in bronze} == set(config.tables("browser_infra")), (
        "bronze is still checked, and fresh"
    )

    with warehouse(stack) as wh:  # gold builds them
        wh.execute("drop view gold_marts.agg_org_daily")
        for name in names:
            build_gold(wh, gold(name), newest_period(gold(name)))
    assert freshness.check()["recovered"] == labels
    assert [m.subject for m in inbox.take()] == [f"[medallion] RECOVERED {', '.join(labels[:3])} +1"]
    row = freshness_row(stack, "gold", "agg_growth_daily")
    assert (row["status"], row["last_error"], row["failing_since"]) == ("fresh", None, None)


def test_gold_measurement_never_blocks_dbt_nor_is_blocked_by_it(pipeline, inbox):
    """dbt swaps a rebuilt table in under an exclusive lock. A check meanwhile waits a moment and
    keeps the table's last measurement; and a check holds no lock on gold while it sends email
    (SMTP can take long), so it never stalls a gold build."""
    stack, _ = pipeline
    sla = gold("agg_product_daily")
    before = freshness_row(stack, "gold", "agg_product_daily")["last_load_at"]
    locked, release = threading.Event(), threading.Event()

    def dbt_swapping():
        with warehouse(stack) as wh, wh.transaction():
            wh.execute("lock table gold_marts.agg_product_daily in access exclusive mode")
            locked.set()
            release.wait(30)

    swapper = threading.Thread(target=dbt_swapping)
    swapper.start()
    try:
        assert locked.wait(10)
        started = datetime.now(UTC)
        result = freshness.check()
        waited = datetime.now(UTC) - started
    finally:
        release.set()
        swapper.join()
    assert result["stale"] == [] and inbox.take() == []
    assert waited < timedelta(seconds=15), f"the check was blocked for {waited}"
    assert freshness_row(stack, "gold", "agg_product_daily")["last_load_at"] == before

    swaps = []

    def dbt_swaps_while_the_email_is_sent():
        with warehouse(stack) as wh:
            wh.execute("set lock_timeout = '2s'")
            wh.execute("alter table gold_marts.agg_product_daily rename to fct_product_daily__dbt_backup")
            wh.execute("alter table gold_marts.fct_product_daily__dbt_backup rename to agg_product_daily")
            swaps.append("done")

    with warehouse(stack) as wh:
        build_gold(wh, sla, newest_period(sla, back=3))
    inbox.while_sending = dbt_swaps_while_the_email_is_sent
    try:
        assert freshness.check()["opened"] == ["gold_marts.agg_product_daily"]
    finally:
        inbox.while_sending = None
    assert swaps == ["done"], "dbt could swap the table in while the check was emailing"
    assert [m.subject for m in inbox.take()] == ["[medallion] STALE gold_marts.agg_product_daily"]
    with warehouse(stack) as wh:
        build_gold(wh, sla, newest_period(sla))
    freshness.check()
    assert [m.subject for m in inbox.take()] == ["[medallion] RECOVERED gold_marts.agg_product_daily"]


# --- on-call: durable alerts, one email per problem, every failure in the ledger, holes ----------


def loaded_until(stack, table: str) -> datetime:
    """End of the newest interval loaded: dag.test(logical_date=X) loads the interval that ends at X."""
    with warehouse(stack) as wh:
        return wh.execute(
            "select max(window_end) from ops.replication_batches where table_name = %s and status = 'success'",
            (table,),
        ).fetchone()[0]


def failed_batches(stack, table: str, run_id: str) -> list[dict]:
    return rows(stack, f"select mode, error from ops.replication_batches where table_name = '{table}' "
                       f"and status = 'failed' and run_id = '{run_id}'")  # fmt: skip


def test_a_failure_alert_that_cannot_be_sent_is_kept_and_sent_once_when_smtp_is_back(pipeline, inbox, monkeypatch):
    stack, bag = pipeline
    dag, table = bag.get_dag("bronze_browser_infra"), "organization_members"
    logical = loaded_until(stack, table) + timedelta(hours=1)
    with monkeypatch.context() as m, retries(dag.get_task("load"), 0), unreadable(stack, table):
        smtp_down(m)
        assert dag.test(logical_date=logical, run_conf={"tables": [table]}).state == "failed"
    assert inbox.take() == []
    subject = f"[medallion] FAILED bronze_browser_infra.load[{table}] (1 run)"
    [kept] = rows(stack, "select state, subject, attempts from ops.alert_outbox where state <> 'sent'")
    assert kept == {"state": "failed", "subject": subject, "attempts": 1}

    backoff_elapsed(stack)
    assert freshness.check()["alerts_sent"] == 1  # the `freshness` DAG's next check
    [mail] = inbox.take()
    assert mail.subject == subject and mail.to == [RECIPIENT]
    assert_in_both(mail, f"Error: ReplicationError: bronze_browser_infra.{table}: load failed: permission denied")
    freshness.check()
    assert inbox.take() == [], "sent exactly once"
    assert [r["state"] for r in rows(stack, "select * from ops.alert_outbox") if r["subject"] == subject] == ["sent"]

    assert dag.test(logical_date=logical, run_conf={"tables": [table]}).state == "success"
    [mail] = inbox.take()  # the bronze run's check: the problem is over
    assert mail.subject == f"[medallion] RECOVERED bronze_browser_infra.load[{table}] after 1 run failed"


def test_with_the_warehouse_and_smtp_down_the_whole_alert_is_in_the_task_log(pipeline, inbox, monkeypatch, caplog):
    stack, bag = pipeline
    dag, table = bag.get_dag("bronze_browser_infra"), "organization_members"
    logical = loaded_until(stack, table) + timedelta(hours=1)
    with monkeypatch.context() as m, retries(dag.get_task("load"), 0):
        smtp_down(m)
        m.setenv("AIRFLOW_CONN_WAREHOUSE", f"postgres://warehouse@127.0.0.1:{free_port()}/warehouse")
        assert dag.test(logical_date=logical, run_conf={"tables": [table]}).state == "failed"
    assert inbox.take() == []
    logged = caplog.text
    assert "ALERT NOT SENT" in logged
    assert f"To: {RECIPIENT}" in logged
    assert f"Subject: [medallion] FAILED bronze_browser_infra.load[{table}] (1 run)" in logged
    assert f"bronze_browser_infra.load[{table}] failed after 1 try." in logged
    assert "Stale now: unknown — cannot read freshness from the warehouse" in logged


def test_twenty_failures_of_one_problem_send_one_email_a_reminder_and_one_when_it_recovers(pipeline, inbox,
                                                                                          monkeypatch):  # fmt: skip
    """A catch-up of 20 runs failing alike (and one an hour after) is one problem: one FAILED email;
    a reminder once the last email is older than MEDALLION_ALERT_REMINDER_HOURS; a different error
    of the same task is a new problem; the table loading again closes them with one email each."""
    stack, bag = pipeline
    dag, table = bag.get_dag("bronze_browser_infra"), "subscriptions"
    start = loaded_until(stack, table)
    load = dag.get_task("load")
    with retries(load, 0), unreadable(stack, table):
        run_ids = [dag.test(logical_date=start + timedelta(hours=n), run_conf={"tables": [table]}).run_id
                   for n in range(1, 21)]  # fmt: skip
    assert all(len(failed_batches(stack, table, run_id)) == 1 for run_id in run_ids)
    [mail] = inbox.take()
    assert mail.subject == f"[medallion] FAILED bronze_browser_infra.load[{table}] (1 run)"
    [problem] = rows(stack, f"select runs, emails, first_run_id, last_run_id from ops.failure_problems "
                            f"where table_name = '{table}' and closed_at is null")  # fmt: skip
    assert problem == {"runs": 20, "emails": 1, "first_run_id": run_ids[0], "last_run_id": run_ids[-1]}

    with warehouse(stack) as wh:  # four hours and a bit pass (the default reminder interval)
        wh.execute("update ops.failure_problems set last_emailed_at = last_emailed_at - interval '4 hours 1 minute'")
    with retries(load, 0), unreadable(stack, table):
        dag.test(logical_date=start + timedelta(hours=21), run_conf={"tables": [table]})
        dag.test(logical_date=start + timedelta(hours=22), run_conf={"tables": [table]})
    [mail] = inbox.take()
    assert re.fullmatch(rf"\[medallion\] STILL FAILING bronze_browser_infra\.load\[{table}\] \(21 runs since .+\)",
                        mail.subject), mail.subject  # fmt: skip
    assert_in_both(mail, "is still failing: 21 runs since", "permission denied", "Fix the cause")

    with monkeypatch.context() as m, retries(load, 0):  # another error: the source is unreachable
        m.setenv("AIRFLOW_CONN_BROWSER_INFRA_SOURCE", f"postgres://replicator@127.0.0.1:{free_port()}/source")
        run = dag.test(logical_date=start + timedelta(hours=23), run_conf={"tables": [table]})
    [mail] = inbox.take()
    assert mail.subject == f"[medallion] FAILED bronze_browser_infra.load[{table}] (1 run)"
    assert_in_both(mail, "Error: ConnectionFailed: cannot connect to connection 'browser_infra_source'")
    [failed] = failed_batches(stack, table, run.run_id)  # failed before its batch started: in the ledger too
    assert failed["error"].startswith("cannot connect to connection 'browser_infra_source'")

    assert dag.test(logical_date=start + timedelta(hours=1), run_conf={"tables": [table]}).state == "success"
    assert sorted(m.subject for m in inbox.take()) == [
        f"[medallion] RECOVERED bronze_browser_infra.load[{table}] after 1 run failed",
        f"[medallion] RECOVERED bronze_browser_infra.load[{table}] after 22 runs failed",
    ]
    assert rows(stack, f"select count(*) as n from ops.failure_problems where table_name = '{table}' "
                       "and closed_at is null") == [{"n": 0}]  # fmt: skip


def test_a_load_failing_before_its_batch_or_losing_its_warehouse_reaches_the_ledger_and_the_view(pipeline, inbox):
    stack, bag = pipeline
    dag, table = bag.get_dag("bronze_browser_infra"), "browser_sessions"
    logical = loaded_until(stack, table) + timedelta(hours=1)
    with psycopg.connect(stack.source.uri("browser_infra"), autocommit=True) as src:
        src.execute("alter table public.browser_sessions rename column updated_at to modified_at")
        try:
            with retries(dag.get_task("load"), 2):
                run = dag.test(logical_date=logical, run_conf={"tables": [table]})
        finally:
            src.execute("alter table public.browser_sessions rename column modified_at to updated_at")
    assert run.state == "failed"
    [failed] = failed_batches(stack, table, run.run_id)  # a bad declaration fails at once: one try, one row
    assert failed["mode"] == "incremental"
    assert failed["error"].startswith("cursor column 'updated_at' not found in source table public.browser_sessions")
    row = freshness_row(stack, "bronze", table)
    assert row["status"] == "fresh", "its last load is recent"
    assert row["failing_since"] is not None and row["last_error"] == failed["error"]
    assert row["run_id"] == run.run_id and row["link"].endswith(
        "/dags/bronze_browser_infra/runs/" + run.run_id.replace(":", "%3A").replace("+", "%2B")
    )
    assert [m.subject for m in inbox.take()] == [f"[medallion] FAILED bronze_browser_infra.load[{table}] (1 run)"]

    # the warehouse connection dies mid-batch (here: while it waits for the table's lock)
    lock = f"medallion:bronze_browser_infra.{table}"
    killed = []

    def kill_the_waiting_load():
        with warehouse(stack) as wh:
            for _ in range(300):
                pids = [r[0] for r in wh.execute(
                    "select pid from pg_stat_activity where application_name = 'medallion-bronze' "
                    "and wait_event_type = 'Lock'"
                )]  # fmt: skip
                if pids:
                    killed.extend(wh.execute("select pg_terminate_backend(%s)", (pids[0],)).fetchone())
                    return
                threading.Event().wait(0.1)

    with warehouse(stack) as holder, holder.transaction():
        holder.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
        killer = threading.Thread(target=kill_the_waiting_load)
        killer.start()
        with retries(dag.get_task("load"), 0):
            run = dag.test(logical_date=logical, run_conf={"tables": [table]})
        killer.join()
    assert killed == [True] and run.state == "failed"
    [failed] = failed_batches(stack, table, run.run_id)
    assert "terminat" in failed["error"], failed["error"]
    assert freshness_row(stack, "bronze", table)["last_error"] == failed["error"]
    subject = f"[medallion] FAILED bronze_browser_infra.load[{table}] (1 run)"
    assert [m.subject for m in inbox.take()] == [subject], "another error of the same task: a new problem"

    assert dag.test(logical_date=logical, run_conf={"tables": [table]}).state == "success"
    row = freshness_row(stack, "bronze", table)
    assert (row["failing_since"], row["last_error"]) == (None, None)
    recovered = f"[medallion] RECOVERED bronze_browser_infra.load[{table}] after 1 run failed"
    assert [m.subject for m in inbox.take()] == [recovered, recovered]


def test_the_view_is_worst_first_covers_silver_and_links_each_row(pipeline, inbox):
    stack, _ = pipeline
    age_ledger(stack, "invoices", timedelta(hours=30))  # warn
    age_ledger(stack, "session_events", timedelta(hours=5))  # error
    try:
        freshness.check()
        view = rows(stack, "select * from ops.table_freshness")
        measured = {r["table_name"]: r["measured_at"] for r in rows(stack, "select * from ops.gold_coverage")}
    finally:
        age_ledger(stack, "invoices", -timedelta(hours=30))
        age_ledger(stack, "session_events", -timedelta(hours=5))
        freshness.check()
        inbox.take()
    rank = {"error": 0, "warn": 1, "fresh": 2, None: 3}
    order = [(rank[r["status"]], -(timedelta.max if r["age"] is None else r["age"]).total_seconds()) for r in view]
    assert order == sorted(order), "worst first, oldest first"
    assert [r["table_name"] for r in view[:2]] == ["session_events", "invoices"]
    assert all(r["age"] is None or r["age"].microseconds == 0 for r in view), "ages in whole seconds"
    kinds = {r["kind"] for r in view}
    assert kinds == {"bronze", "silver", "gold"}
    silver = {r["table_name"]: r for r in view if r["kind"] == "silver"}
    assert set(silver) == {"core_sessions", "fct_browser_run", "fct_event", "fct_usage"}
    assert all(r["status"] == "fresh" and r["source"] == "silver_core" for r in silver.values())
    for r in view:
        if r["kind"] != "bronze":
            assert r["checked_at"] == measured[r["table_name"]], "when its coverage was measured"
            assert r["link"] == f"{alerts._base_url()}/dags/{r['kind']}/runs"
        else:
            assert r["link"].startswith(f"{alerts._base_url()}/dags/bronze_browser_infra/runs/")


def test_a_hole_in_the_loaded_intervals_is_emailed_once_with_the_backfill_that_fills_it(pipeline, inbox):
    from airflow.models.backfill import _get_info_list
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    stack, bag = pipeline
    dag, table = bag.get_dag("bronze_browser_infra"), "projects"
    start = loaded_until(stack, table)
    for hours in (1, 3):  # loads [start, +1h) and [+2h, +3h): nothing read [+1h, +2h) but the lookback
        assert dag.test(logical_date=start + timedelta(hours=hours), run_conf={"tables": [table]}).state == "success"
    [mail] = inbox.take()  # sent by the second run's check
    hole = start + timedelta(hours=1)
    iso = hole.isoformat()
    command = f"airflow backfill create --dag-id bronze_browser_infra --from-date {iso} --to-date {iso}"
    assert mail.subject == f"[medallion] HOLE bronze projects: 1 hour(s) never loaded, from {alerts.when(hole)[:16]}"
    never = alerts.interval(hole, hole + timedelta(minutes=45))  # the next run re-read 15 minutes (its lookback)
    assert_in_both(
        mail, "Table: bronze_browser_infra.projects", command, f"bronze projects was never loaded for {never}"
    )
    [gap] = rows(stack, "select * from ops.replication_gaps where table_name = 'projects'")
    assert (gap["gap_start"], gap["gap_end"], gap["intervals"]) == (hole, hole + timedelta(minutes=45), 1)
    assert gap["backfill_command"] == command
    # Airflow 3.3's backfill runs exactly that interval for those dates (its own planning code)
    with create_session() as session:
        serialized = DBDagBag().get_latest_version_of_dag("bronze_browser_infra", session=session)
        infos = _get_info_list(from_date=hole, to_date=hole, reverse=False, dag=serialized)
    assert [(i.data_interval.start, i.data_interval.end) for i in infos] == [(hole, hole + timedelta(hours=1))]

    assert freshness.check()["gaps"] == [] and inbox.take() == [], "once"
    assert dag.test(logical_date=start + timedelta(hours=2), run_conf={"tables": [table]}).state == "success"
    [mail] = inbox.take()
    assert mail.subject == "[medallion] RECOVERED hole in bronze projects"
    assert rows(stack, "select * from ops.replication_gaps where table_name = 'projects'") == []


def test_failures_are_one_problem_when_only_numbers_ids_and_times_differ():
    same = [
        "ReplicationError: bronze_browser_infra.plans: load failed: "
        "canceling statement due to lock timeout after 5000 ms",
        "ReplicationError: bronze_browser_infra.plans: load failed: "
        "canceling statement due to lock timeout after 12 ms",
    ]
    assert alerts.signature(same[0]) == alerts.signature(same[1])
    batch = "batch 9f2c4e0a1b3d4c5e6f708192a3b4c5d6 at 2026-11-01T03:00:00+00:00 read 1,234 rows"
    assert alerts.signature(batch) == alerts.signature(batch.replace("9f2c", "0000").replace("03:00", "04:00"))
    other = "SchemaDriftError: schema drift in bronze_browser_infra.plans.price: numeric -> text"
    assert alerts.signature(other) != alerts.signature(same[0]), "another error class or text: another problem"
    assert alerts.signature(other.replace("price", "name")) != alerts.signature(other), "another column"


def test_a_deadline_alert_that_cannot_be_sent_waits_in_the_outbox(pipeline, inbox, monkeypatch):
    stack, _ = pipeline
    run = {"dag_id": "gold", "dag_run_id": "scheduled__x", "state": "running", "run_type": "scheduled"}
    context = {"dag_run": run, "deadline": {"deadline_time": datetime.now(UTC) - timedelta(minutes=5)}}
    with monkeypatch.context() as m:
        smtp_down(m)
        with pytest.raises(outbox.AlertsUndelivered, match="kept in ops.alert_outbox"):
            oncall.deadline_alert(context, 60)  # what the triggerer runs
    [kept] = rows(stack, "select kind, subject from ops.alert_outbox where state = 'failed'")
    assert kept["kind"] == "deadline" and kept["subject"].startswith("[medallion] LATE gold ")
    backoff_elapsed(stack)
    assert freshness.check()["alerts_sent"] == 1
    assert [m.subject for m in inbox.take()] == [kept["subject"]]


def test_alert_routing_sends_each_products_alerts_to_its_on_call(pipeline, inbox, monkeypatch):
    """A product's alerts go to the Variable alert_emails_<product>, else its YAML's alert_emails, else the
    global list (Variable alert_emails, else env); a freshness check sends one email per product."""
    from dataclasses import replace

    stack, bag = pipeline
    monkeypatch.setenv("AIRFLOW_VAR_ALERT_EMAILS", "everyone@example.com")
    bronze = bag.get_dag("bronze_browser_infra")

    # 1. the product's Variable overrides everything: a FAILED email of its bronze DAG
    monkeypatch.setenv("AIRFLOW_VAR_ALERT_EMAILS_BROWSER_INFRA", "browser-oncall@example.com; lead@example.com")
    with retries(bronze.get_task("load"), 0), unreadable(stack, "projects"):
        run = bronze.test(logical_date=AS_OF + timedelta(hours=5), run_conf={"tables": ["projects"]})
    assert run.state == "failed"
    [mail] = inbox.take()
    assert mail.subject == "[medallion] FAILED bronze_browser_infra.load[projects] (1 run)"
    assert mail.to == ["browser-oncall@example.com", "lead@example.com"]

    # 2. no Variable: the product's YAML list; a stale table's email (the freshness DAG) goes there
    monkeypatch.delenv("AIRFLOW_VAR_ALERT_EMAILS_BROWSER_INFRA")
    declared, product = config.product("browser_infra"), config.product
    monkeypatch.setattr(config, "product", lambda p: replace(declared, alert_emails=("yaml-oncall@example.com",))
                        if p == "browser_infra" else product(p))  # fmt: skip
    age_ledger(stack, "usage_records", timedelta(hours=60))  # error_after is 50h
    assert bag.get_dag("freshness").test().state == "success"
    [mail] = inbox.take()
    assert mail.subject == "[medallion] STALE usage_records" and mail.to == ["yaml-oncall@example.com"]

    # 3. neither: the global list (its RECOVERED email, sent by the bronze run's own check)
    monkeypatch.setattr(config, "product", product)
    assert config.product("browser_infra").alert_emails == ()
    run = bronze.test(logical_date=AS_OF + timedelta(hours=6), run_conf={"tables": ["usage_records"]})
    assert run.state == "success"
    recovered = [m for m in inbox.take() if m.subject == "[medallion] RECOVERED usage_records"]
    assert [m.to for m in recovered] == [["everyone@example.com"]]

    # 4. one check's news about two products: two emails, each to its own on-call, each naming only its tables
    monkeypatch.setenv("AIRFLOW_VAR_ALERT_EMAILS_OTHER", "other-oncall@example.com")
    now = datetime.now(UTC)

    def row(source: str, table: str) -> freshness.TableFreshness:
        age, warn, error = timedelta(days=5), timedelta(hours=1), timedelta(hours=2)
        return freshness.TableFreshness("bronze", source, table, now - age, age, warn, error, "error", 1, "b",
                                        None, None, now)  # fmt: skip

    mine, theirs = row("browser_infra", "plans"), row("other", "widgets")
    parts = freshness.by_product(freshness.Change(rows=[mine, theirs], opened=[mine, theirs]))
    assert {p: [r.table_name for r in c.rows] for p, c in parts.items()} == {"browser_infra": ["plans"],
                                                                           "other": ["widgets"]}  # fmt: skip
    for product_id, news in parts.items():
        outbox.deliver(alerts.freshness_email(news, product_id), "freshness")
    got = {m.subject: m.to for m in inbox.take()}
    assert got == {"[medallion] STALE plans": ["everyone@example.com"],
                   "[medallion] STALE widgets": ["other-oncall@example.com"]}  # fmt: skip
    with warehouse(stack) as wh:
        routed = wh.execute(
            "select product, sent_to from ops.alert_outbox_messages where subject in "
            "('[medallion] STALE plans', '[medallion] STALE widgets') order by product"
        ).fetchall()
    assert routed == [("browser_infra", ["everyone@example.com"]), ("other", ["other-oncall@example.com"])]
