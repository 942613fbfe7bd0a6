"""On-call emails end to end: a real SMTP server (aiosmtpd), real Postgres, real Airflow (dag.test()).

Every assertion is on the messages the SMTP server received: subject, recipients, both bodies.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import re
import socket
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from conftest import AS_OF, STACK, reset_connection_databases
from psycopg import sql

from medallion import alerts, config, freshness

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
    """These tests check the browser-infra product alone (the `source` database its DAGs load): other
    products' tables and marts are declared too but never loaded here, so every check would call them
    stale. Scope the declarations to it until freshness is checked per product (issue 11)."""
    patch = pytest.MonkeyPatch()
    tables, gold_slas = config.tables, freshness.gold_slas
    patch.setattr(config, "tables", lambda: {n: t for n, t in tables().items() if t.source == "supabase"})
    scoped_gold = lambda *a, **kw: [s for s in gold_slas(*a, **kw) if s.source == "gold_marts"]  # noqa: E731
    patch.setattr(freshness, "gold_slas", scoped_gold)
    patch.setitem(freshness.SLA_DECLARATIONS, "gold", scoped_gold)
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

    with warehouse(stack) as wh:  # gold as dbt would leave it, covering today: fresh
        for sla in freshness.gold_slas():
            build_gold(wh, sla, newest_period(sla))
    bag = DagBag(dag_folder=str(config.ROOT / "dags"))
    assert not bag.import_errors
    assert bag.get_dag("bronze_supabase").test(logical_date=AS_OF).state == "success"
    assert inbox.take() == [], "every table was just loaded: nothing is stale, nothing failed"
    return stack, bag


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    with psycopg.connect(stack.source.uri("source"), autocommit=True) as conn:
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
    dag = bag.get_dag("bronze_supabase")
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
    assert mail.subject == "[medallion] FAILED bronze_supabase.load[api_keys]"
    assert mail.to == [RECIPIENT]
    assert mail.content_type == "multipart/alternative" and mail.text and mail.html
    command = (
        "airflow tasks clear bronze_supabase -t '^load$' -s 2026-11-01T01:00:00+00:00 "
        "-e 2026-11-01T01:00:00+00:00 -f -d -y"
    )
    assert_in_both(
        mail,
        "bronze_supabase.load[api_keys] failed after 2 tries.",
        "Error: ReplicationError: bronze_supabase.api_keys: load failed: permission denied for table api_keys",
        "Table: bronze_supabase.api_keys",
        "Interval: 2026-11-01 00:00 → 01:00 UTC",
        f"Run: {run.run_id}",
        "Stale now: nothing — every table is within its SLA",
        command,
    )
    assert mail.text.index("Error:") < mail.text.index("Interval:") < mail.text.index("What to do:")
    log_url = re.search(r"^Log: (\S+)$", mail.text, re.M).group(1)
    assert "/dags/bronze_supabase/runs/" in log_url and "/tasks/load/mapped/" in log_url
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
        """airflow dags trigger bronze_supabase -c '{"tables": ["invoices"]}'""",
    )

    assert checker.test().state == "success"
    assert inbox.take() == [], "still stale: nothing new to say"
    other = bag.get_dag("bronze_supabase").test(logical_date=AS_OF + timedelta(hours=2), run_conf={"tables": ["plans"]})
    assert other.state == "success", "stale data does not fail a bronze run"
    assert inbox.take() == [], "nor does its check_freshness repeat the email"

    run = bag.get_dag("bronze_supabase").test(
        logical_date=AS_OF + timedelta(hours=3), run_conf={"tables": ["invoices"]}
    )
    assert run.state == "success"
    [mail] = inbox.take()  # sent by the bronze run's own check_freshness
    assert mail.subject == "[medallion] RECOVERED invoices"
    assert_in_both(mail, "invoices is fresh again.", "invoices — FRESH", "was stale (error) since",
                   "Stale now: nothing — every table is within its SLA")  # fmt: skip
    with warehouse(stack) as wh:
        incidents = wh.execute(
            "select table_name, status, notified_by, closed_at is not null from ops.freshness_incidents"
        ).fetchall()
    assert incidents == [("invoices", "error", "freshness check", True)]


@pytest.mark.parametrize(("dag_id", "allowed", "work"), [
    ("bronze_supabase", 45, "a long COPY"),  # MEDALLION_BRONZE_DEADLINE_MINUTES' default
    ("silver", 60, "a long dbt build"),  # MEDALLION_SILVER_DEADLINE_MINUTES'
    ("gold", 60, "a long dbt build"),  # MEDALLION_GOLD_DEADLINE_MINUTES'
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
    declared = config.tables()
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


def test_news_that_could_not_be_emailed_is_emailed_by_the_next_check(pipeline, inbox, monkeypatch):
    stack, _ = pipeline
    age_ledger(stack, "users", timedelta(hours=3))  # warn 2h, error 6h
    with monkeypatch.context() as m:  # SMTP is down: nothing listens on that port
        m.setenv("AIRFLOW_CONN_SMTP_DEFAULT", f"smtp://127.0.0.1:{free_port()}?disable_ssl=true&disable_tls=true")
        assert "error" in freshness.check(strict=False)  # the check after a load: logs, does not fail
        with pytest.raises(OSError):
            freshness.check()  # the freshness DAG's check fails (and retries)
    with warehouse(stack) as wh:
        assert wh.execute("select count(*) from ops.freshness_incidents where closed_at is null").fetchone()[0] == 0
    assert freshness.check()["opened"] == ["users"]  # SMTP is back: the news was not lost
    [mail] = inbox.take()
    assert mail.subject == "[medallion] WARN users"
    age_ledger(stack, "users", -timedelta(hours=3))
    freshness.check()
    assert [m.subject for m in inbox.take()] == ["[medallion] RECOVERED users"]


# --- gold: how old is the newest interval a table covers -------------------------------------


def test_a_gold_table_behind_its_sla_sends_one_email_then_nothing_then_one_when_caught_up(pipeline, inbox):
    """Gold rebuilt just now but with nothing after the day before yesterday is stale: its age runs
    from the end of the newest day it covers, not from its rebuild."""
    stack, bag = pipeline
    sla = gold("fct_daily_sessions")  # covered_by session_date (day): the model's override of the folder's date_day
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
    assert mail.subject == "[medallion] STALE gold_marts.fct_daily_sessions"
    lead = re.match(r"gold_marts\.fct_daily_sessions is stale \(error\): covers until (.+ UTC), (\d+)h(?: (\d+)m)? "
                    r"ago, SLA error after 8h\.\n", mail.text)  # fmt: skip
    assert lead, mail.text
    assert lead.group(1) == f"{covered_until:%Y-%m-%d} 00:00 UTC"
    shown = timedelta(hours=int(lead.group(2)), minutes=int(lead.group(3) or 0))
    assert abs(shown - age) < timedelta(minutes=2)
    assert_in_both(
        mail,
        "gold_marts.fct_daily_sessions — ERROR (new)",
        f"covers until {covered_until:%Y-%m-%d} 00:00 UTC (",
        "SLA: warn after 4h, error after 8h",
        "Gold is rebuilt from silver, silver from bronze",
        "/dags/gold/runs",
        "airflow dags trigger gold",
    )
    assert "bronze_supabase -c" not in mail.text, "no bronze table is stale: no bronze catch-up command"
    row = freshness_row(stack, "gold", "fct_daily_sessions")
    assert (row["source"], row["last_load_at"], row["status"]) == ("gold_marts", covered_until, "error")
    assert abs(row["age"] - age) < timedelta(minutes=2)

    assert checker.test().state == "success"
    assert inbox.take() == [], "still stale: nothing new to say"

    with warehouse(stack) as wh:  # gold catches up: today's sessions arrive
        wh.execute("insert into gold_marts.fct_daily_sessions values (%s)", (newest_period(sla),))
    assert freshness.check()["recovered"] == ["gold_marts.fct_daily_sessions"]
    [mail] = inbox.take()
    assert mail.subject == "[medallion] RECOVERED gold_marts.fct_daily_sessions"
    tomorrow = newest_period(sla) + timedelta(days=1)
    assert_in_both(mail, "gold_marts.fct_daily_sessions is fresh again.", "gold_marts.fct_daily_sessions — FRESH",
                   f"covers until {tomorrow:%Y-%m-%d} 00:00 UTC (its newest period is in progress)",
                   "was stale (error) since", "Stale now: nothing — every table is within its SLA")  # fmt: skip


def test_a_gold_table_never_built_or_not_measurable_reads_as_stale_and_says_why(pipeline, inbox):
    stack, _ = pipeline
    names = ["fct_growth_daily", "fct_monthly_revenue", "fct_ops_daily", "fct_org_daily"]
    labels = [f"gold_marts.{name}" for name in names]
    with warehouse(stack) as wh:
        wh.execute("drop table gold_marts.fct_growth_daily")  # gold never ran (or a new mart not built yet)
        build_gold(wh, gold("fct_monthly_revenue"))  # built, no rows
        wh.execute("alter table gold_marts.fct_ops_daily rename column date_day to day")  # declaration is wrong
        wh.execute("drop table gold_marts.fct_org_daily")  # the query fails (stands for e.g. a missing privilege)
        wh.execute("create view gold_marts.fct_org_daily as select current_date + 1 / 0 as date_day")
    assert freshness.check()["opened"] == labels, "one check, every problem; nothing crashed"
    [mail] = inbox.take()
    assert mail.subject == f"[medallion] STALE {', '.join(labels[:3])} +1"
    assert_in_both(
        mail,
        f"4 tables are stale (4 new): {', '.join(labels)}.",
        "gold_marts.fct_growth_daily — ERROR (new)",
        "never built: gold_marts.fct_growth_daily does not exist",
        "no rows: gold_marts.fct_monthly_revenue is empty",
        "cannot measure: gold_marts.fct_ops_daily has no column date_day (meta.covered_by)",
        "cannot measure gold_marts.fct_org_daily: division by zero",
        "airflow dags trigger gold",
    )
    row = freshness_row(stack, "gold", "fct_growth_daily")
    assert (row["last_load_at"], row["age"], row["status"]) == (None, None, "error")
    assert row["last_error"] == "never built: gold_marts.fct_growth_daily does not exist"
    bronze = rows(stack, "select table_name from ops.table_freshness where kind = 'bronze' and status = 'fresh'")
    assert {r["table_name"] for r in bronze} == set(config.tables()), "bronze is still checked, and fresh"

    with warehouse(stack) as wh:  # gold builds them
        wh.execute("drop view gold_marts.fct_org_daily")
        for name in names:
            build_gold(wh, gold(name), newest_period(gold(name)))
    assert freshness.check()["recovered"] == labels
    assert [m.subject for m in inbox.take()] == [f"[medallion] RECOVERED {', '.join(labels[:3])} +1"]
    row = freshness_row(stack, "gold", "fct_growth_daily")
    assert (row["status"], row["last_error"], row["failing_since"]) == ("fresh", None, None)


def test_gold_measurement_never_blocks_dbt_nor_is_blocked_by_it(pipeline, inbox):
    """dbt swaps a rebuilt table in under an exclusive lock. A check meanwhile waits a moment and
    keeps the table's last measurement; and a check holds no lock on gold while it sends email
    (SMTP can take long), so it never stalls a gold build."""
    stack, _ = pipeline
    sla = gold("fct_product_daily")
    before = freshness_row(stack, "gold", "fct_product_daily")["last_load_at"]
    locked, release = threading.Event(), threading.Event()

    def dbt_swapping():
        with warehouse(stack) as wh, wh.transaction():
            wh.execute("lock table gold_marts.fct_product_daily in access exclusive mode")
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
    assert freshness_row(stack, "gold", "fct_product_daily")["last_load_at"] == before

    swaps = []

    def dbt_swaps_while_the_email_is_sent():
        with warehouse(stack) as wh:
            wh.execute("set lock_timeout = '2s'")
            wh.execute("alter table gold_marts.fct_product_daily rename to fct_product_daily__dbt_backup")
            wh.execute("alter table gold_marts.fct_product_daily__dbt_backup rename to fct_product_daily")
            swaps.append("done")

    with warehouse(stack) as wh:
        build_gold(wh, sla, newest_period(sla, back=3))
    inbox.while_sending = dbt_swaps_while_the_email_is_sent
    try:
        assert freshness.check()["opened"] == ["gold_marts.fct_product_daily"]
    finally:
        inbox.while_sending = None
    assert swaps == ["done"], "dbt could swap the table in while the check was emailing"
    assert [m.subject for m in inbox.take()] == ["[medallion] STALE gold_marts.fct_product_daily"]
    with warehouse(stack) as wh:
        build_gold(wh, sla, newest_period(sla))
    freshness.check()
    assert [m.subject for m in inbox.take()] == ["[medallion] RECOVERED gold_marts.fct_product_daily"]
