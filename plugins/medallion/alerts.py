"""On-call emails: compose them (plain text and HTML, phone first) and send them through Airflow's SMTP connection.

One email per problem, each with the facts first and the command that fixes it:
- a task failed after its last retry: `failure_email` (and `reminder_email`), sent by `oncall.on_task_failure`,
  every DAG's on_failure_callback (dagkit).
  Failures are grouped into problems (ops.failure_problems: dag, task, table and the normalised
  error): one FAILED email when a problem starts, a short STILL FAILING reminder at most every
  MEDALLION_ALERT_REMINDER_HOURS (default 4) while it keeps failing, one RECOVERED when the table
  loads again; subjects count the failed runs;
- tables (bronze: last load, silver and gold: what the data covers) went stale, got worse or
  recovered: `freshness_email`, sent by `freshness.check()`;
- a bronze table has a hole in its loaded intervals, or the hole was loaded: `gap_email`;
- a layer's run (bronze, silver, gold) missed its deadline: `deadline_email`, sent by
  `oncall.on_deadline_missed`, the DeadlineAlert callback (run by the triggerer).

Every alert goes through the outbox (medallion.outbox, ops.alert_outbox): kept and retried until
sent. This module composes and sends (`send`); the outbox, above it, keeps and retries, so the
callers (oncall, freshness, quality, bronze) put the emails written here into the outbox.
Recipients: Airflow Variable `alert_emails`, else env MEDALLION_ALERT_EMAILS (comma-separated),
read when sending, never at parse time. Mail goes out with providers-smtp's SmtpNotifier over the
connection `smtp_default` (config.SMTP_CONN_ID). Heavy imports stay inside functions: DAG files
import this module (through dagkit and oncall).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shlex
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import quote

from medallion import config

if TYPE_CHECKING:
    from medallion.freshness import Change, Gap, TableFreshness

log = logging.getLogger(__name__)

PREFIX = "[medallion]"
RECIPIENTS_VARIABLE = "alert_emails"
RECIPIENTS_ENV = "MEDALLION_ALERT_EMAILS"
REMINDER_ENV = "MEDALLION_ALERT_REMINDER_HOURS"
DEFAULT_REMINDER = timedelta(hours=4)
# Where the recipients come from, for the DAGs' docs (the env var is invisible in the UI).
RECIPIENTS_DOC = (
    f"A product's alert emails go to the Airflow Variable `{RECIPIENTS_VARIABLE}_<product>`, else the product's "
    "`alert_emails` (include/products/<product>.yml), else to the Airflow Variable "
    f"`{RECIPIENTS_VARIABLE}` (Admin → Variables; comma-separated), "
    f"else to env `{RECIPIENTS_ENV}` of the workers and triggerer. Undelivered alerts wait in "
    "`ops.alert_outbox` (`select * from ops.alert_outbox_status`) and are retried by every freshness check."
)


# --- the message model: one structure, rendered as text and as HTML ---------------------------


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str
    product: str | None = None  # whose on-call gets it (recipients); None: the global list


@dataclass
class Item:
    headline: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Doc:
    """An alert's content, key facts first; rendered into both bodies so they state the same facts."""

    lead: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    sections: list[tuple[str, list[Item]]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    footer: str = ""

    def email(self, subject: str, product: str | None = None) -> Email:
        return Email(subject=subject, text=self.text(), html=self.html(), product=product)

    def text(self) -> str:
        out = [self.lead, ""]
        if self.facts:
            out += [f"{label}: {value}" for label, value in self.facts] + [""]
        for title, items in self.sections:
            out.append(f"{title}:")
            for item in items:
                out.append(f"- {item.headline}")
                out += [f"  {line}" for line in item.lines]
            out.append("")
        if self.steps:
            out.append("What to do:")
            out += [f"{n}. {step}" for n, step in enumerate(self.steps, 1)]
            out += [f"   {command}" for command in self.commands]
            out.append("")
        if self.footer:
            out.append(self.footer)
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        e = html.escape
        parts = [
            '<!doctype html><html><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            '<body style="margin:0;padding:12px;max-width:640px;font-family:-apple-system,Segoe UI,Roboto,'
            'Helvetica,Arial,sans-serif;font-size:15px;line-height:1.45;color:#1a1a1a">',
            f'<p style="font-size:17px;margin:0 0 12px"><strong>{e(self.lead)}</strong></p>',
        ]
        if self.facts:
            lines = [f"<b>{e(label)}:</b> {_html_value(value)}" for label, value in self.facts]
            parts.append(f'<p style="margin:0 0 12px">{"<br>".join(lines)}</p>')
        for title, items in self.sections:
            parts.append(f'<p style="margin:12px 0 4px"><b>{e(title)}</b></p><ul style="margin:0;padding-left:20px">')
            for item in items:
                body = "".join(f"<br>{e(line)}" for line in item.lines)
                parts.append(f'<li style="margin-bottom:6px"><b>{e(item.headline)}</b>{body}</li>')
            parts.append("</ul>")
        if self.steps:
            parts.append('<p style="margin:12px 0 4px"><b>What to do</b></p><ol style="margin:0;padding-left:20px">')
            parts += [f"<li>{e(step)}</li>" for step in self.steps]
            parts.append("</ol>")
            parts += [
                '<pre style="white-space:pre-wrap;word-break:break-all;background:#f3f3f3;padding:8px;'
                f'font-size:13px;margin:8px 0">{e(command)}</pre>'
                for command in self.commands
            ]
        if self.footer:
            parts.append(f'<p style="color:#666;font-size:13px;margin-top:16px">{e(self.footer)}</p>')
        parts.append("</body></html>")
        return "".join(parts)


def _html_value(value: str) -> str:
    if value.startswith(("http://", "https://")):
        return f'<a href="{html.escape(value, quote=True)}">{html.escape(value)}</a>'
    return html.escape(value)


# --- formatting ----------------------------------------------------------------------------


def when(ts: datetime | str | None) -> str:
    """A timestamp as on-call reads it: 2026-11-23 14:05 UTC."""
    if ts is None:
        return "-"
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def span(td: timedelta | None) -> str:
    """A duration, short: 45m, 2h, 80h 5m, 5d 3h."""
    if td is None:
        return "-"
    minutes = max(0, int(td.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 100:
        return f"{hours}h" + (f" {minutes}m" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days}d" + (f" {hours}h" if hours else "")


def interval(start: datetime | str | None, end: datetime | str | None) -> str:
    if start is None or end is None:
        return "none (manual run)"
    first, last = when(start), when(end)
    return f"{first[:16]} → {last[11:] if first[:10] == last[:10] else last}"  # 2026-11-23 13:00 → 14:00 UTC


def first_line(error: BaseException | str | None) -> str:
    if error is None:
        return "unknown (no exception in the task context; see the log)"
    if isinstance(error, BaseException):
        text = str(error).strip()
        line = text.splitlines()[0] if text else ""
        return f"{type(error).__name__}: {line}" if line else type(error).__name__
    return (str(error).strip().splitlines() or ["unknown"])[0]


def _names(names: list[str], keep: int = 3) -> str:
    shown = ", ".join(names[:keep])
    return shown + (f" +{len(names) - keep}" if len(names) > keep else "")


def _base_url() -> str:
    from airflow.providers.common.compat.sdk import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")


def seen(row: TableFreshness) -> str:
    """What a table's age is measured from: its last load (bronze) or the end of what it covers (gold)."""
    if row.kind == "bronze":
        return f"last load {when(row.last_load_at)} ({span(row.age)} ago)" if row.last_load_at else "never loaded"
    if row.last_load_at is None:  # never built, empty or not measurable: the reason says which
        return row.last_error or "covers nothing yet"
    if row.last_load_at > row.checked_at:
        return f"covers until {when(row.last_load_at)} (its newest period is in progress)"
    return f"covers until {when(row.last_load_at)} ({span(row.age)} ago)"


def freshness_item(row: TableFreshness, note: str = "") -> Item:
    """One table's freshness: the facts of its ops.table_freshness row."""
    status = (row.status or "no SLA").upper()
    lines = [seen(row), f"SLA: warn after {span(row.warn_after)}, error after {span(row.error_after)}"]
    if row.last_batch_rows is not None:
        lines.append(f"last batch: {row.last_batch_rows:,} rows")
    if row.failing_since is not None and (row.kind == "bronze" or row.last_load_at is not None):
        lines.append(f"failing since {when(row.failing_since)}: {row.last_error}")
    elif row.failing_since is not None:
        lines.append(f"first seen {when(row.failing_since)}")
    return Item(f"{row.label} — {status}{note}", lines)


# --- sending ---------------------------------------------------------------------------------


def _variable(name: str) -> str | None:
    from airflow.sdk import Variable

    try:
        return Variable.get(name, default=None)
    except Exception as exc:  # the API server or secrets backend is down: still alert from what is left
        log.warning("could not read Variable %s (%s)", name, exc)
        return None


def recipients(product: str | None = None) -> list[str]:
    """Who gets an alert: comma, semicolon or space separated.

    A product's on-call first: the Airflow Variable `alert_emails_<product>` (set in the UI, overrides
    the file), else `alert_emails` of include/products/<product>.yml; then the global list: the
    Variable `alert_emails`, else env MEDALLION_ALERT_EMAILS.
    """
    raw = None
    if product:
        raw = _variable(f"{RECIPIENTS_VARIABLE}_{product}")
        if not raw:
            try:
                raw = ",".join(config.product(product).alert_emails)
            except config.ConfigError as exc:  # a broken declaration still alerts: the global list
                log.warning("recipients of product %s unreadable (%s); using the global list", product, exc)
    raw = raw or _variable(RECIPIENTS_VARIABLE) or os.environ.get(RECIPIENTS_ENV, "")
    return [a for a in re.split(r"[,;\s]+", raw) if a]


@cache
def _notifier_class():
    """SmtpNotifier that sends a plain-text part beside the HTML one (providers-smtp sends HTML only)."""
    from email.mime.text import MIMEText
    from functools import cached_property

    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    class TextAndHtmlSmtpHook(SmtpHook):
        text_content: str | None = None

        def _build_mime_message(self, *args, **kwargs):
            msg, recipients = super()._build_mime_message(*args, **kwargs)
            if self.text_content is not None:  # first: in multipart/alternative the last part is preferred
                charset = kwargs.get("mime_charset", "utf-8")
                msg.get_payload().insert(0, MIMEText(self.text_content, "plain", charset))
            return msg, recipients

    class AlertNotifier(SmtpNotifier):
        def __init__(self, *, text_content: str, **kwargs):
            super().__init__(mime_subtype="alternative", **kwargs)
            self.text_content = text_content

        @cached_property
        def hook(self) -> SmtpHook:
            hook = TextAndHtmlSmtpHook(smtp_conn_id=self.smtp_conn_id, auth_type=self.auth_type)
            hook.text_content = self.text_content
            return hook

    return AlertNotifier


def _sender() -> str:
    """The connection's from_email, else Airflow's [email] from_email, else airflow@<this host>."""
    from airflow.providers.common.compat.sdk import conf
    from airflow.sdk import BaseHook

    configured = BaseHook.get_connection(config.SMTP_CONN_ID).extra_dejson.get("from_email")
    return configured or conf.get("email", "from_email", fallback=None) or f"airflow@{socket.gethostname()}"


def send(email: Email) -> list[str]:
    """Send through the SMTP connection to its product's on-call (recipients); returns them. Raises when it cannot."""
    to = recipients(email.product)
    if not to:
        raise config.ConfigError(
            f"no alert recipients: set the Airflow Variable {RECIPIENTS_VARIABLE} or env {RECIPIENTS_ENV} "
            f"(comma-separated); not sent: {email.subject}"
        )
    notifier = _notifier_class()(
        to=to, from_email=_sender(), subject=email.subject, html_content=email.html, text_content=email.text,
        smtp_conn_id=config.SMTP_CONN_ID,
    )  # fmt: skip
    notifier.notify({})  # subject and bodies are final: nothing is rendered with a context
    log.info("alert sent to %s: %s", ", ".join(to), email.subject)
    return to


# --- task failure (after the last retry) -----------------------------------------------------


@dataclass(frozen=True)
class Failure:
    dag_id: str
    product: str | None  # the DAG's product (config.product_of_dag), None for shared DAGs (freshness)
    task_id: str
    label: str  # task_id, or task_id[table] for a mapped task
    table: str | None
    run_id: str
    logical_date: datetime | None
    interval_start: datetime | None
    interval_end: datetime | None
    tries: int
    error: str
    log_url: str


def failure_from_context(context: dict) -> Failure:
    ti = context["ti"]
    dag_run = context.get("dag_run")
    map_index = getattr(ti, "map_index", -1)
    mapped = map_index is not None and map_index >= 0
    name = (getattr(ti, "rendered_map_index", None) or context.get("table") or str(map_index)) if mapped else None
    product = config.product_of_dag(ti.dag_id)
    table = name if config.find_table(product, name) else context.get("table")
    return Failure(
        dag_id=ti.dag_id,
        product=product,
        task_id=ti.task_id,
        label=f"{ti.task_id}[{name}]" if mapped else ti.task_id,
        table=table,
        run_id=ti.run_id,
        logical_date=context.get("logical_date") or getattr(dag_run, "logical_date", None),
        interval_start=context.get("data_interval_start") or getattr(dag_run, "data_interval_start", None),
        interval_end=context.get("data_interval_end") or getattr(dag_run, "data_interval_end", None),
        tries=getattr(ti, "try_number", None) or 1,
        error=first_line(context.get("exception")),
        log_url=getattr(ti, "log_url", ""),
    )


def rerun_command(failure: Failure) -> str:
    """The exact command that re-runs what failed (safe: every load is idempotent).

    Airflow 3.3's `tasks clear -t` keeps the tasks whose id *contains* the text (no regex: '^load$'
    matched nothing and the command silently did nothing), so -t is the plain task id; -f clears only
    failed (and upstream-failed) task instances, -d what follows them, in the run of that logical date.
    """
    if failure.logical_date is not None:
        ts = failure.logical_date.isoformat()
        task = shlex.quote(failure.task_id)
        return f"airflow tasks clear {failure.dag_id} -t {task} -s {ts} -e {ts} -f -d -y"
    # a run without a logical date continues from the last loaded window: trigger another one
    if failure.table and failure.dag_id.startswith("bronze_"):
        return f"airflow dags trigger {failure.dag_id} -c '{json.dumps({'tables': [failure.table]})}'"
    return f"airflow dags trigger {failure.dag_id}"


def failure_email(failure: Failure, stale: list[TableFreshness] | None, freshness_error: str | None = None) -> Email:
    tries = "1 try" if failure.tries == 1 else f"{failure.tries} tries"
    doc = Doc(lead=f"{failure.dag_id}.{failure.label} failed after {tries}.")
    doc.facts.append(("Error", failure.error))
    doc.facts += [("DAG", failure.dag_id), ("Task", failure.label)]
    if failure.table:
        spec = config.find_table(failure.product, failure.table)
        doc.facts.append(("Table", spec.qualified if spec else failure.table))
    doc.facts += [
        ("Interval", interval(failure.interval_start, failure.interval_end)),
        ("Run", failure.run_id),
        ("Log", failure.log_url),
    ]
    if stale is None:
        doc.facts.append(("Stale now", f"unknown — {freshness_error}"))
    elif not stale:
        doc.facts.append(("Stale now", "nothing — every table is within its SLA"))
    else:
        doc.sections.append((f"Stale now ({len(stale)})", [freshness_item(r) for r in stale]))
    doc.steps = [
        "Read the log (link above); the DAG's docs list the usual causes and their fixes.",
        "Fix the cause, then re-run what failed (safe: loads are idempotent):",
    ]
    doc.commands = [rerun_command(failure)]
    end = "one email when the table loads again" if failure.table else "it is closed after a quiet period"
    doc.footer = (f"One email per problem: the same error again sends nothing, a reminder at most every "
                  f"{span(reminder_interval())} while it lasts, {end}. "
                  "Freshness: select * from ops.table_freshness;")  # fmt: skip
    return doc.email(f"{PREFIX} FAILED {failure.dag_id}.{failure.label} ({runs(1)})", failure.product)


def runs(n: int) -> str:
    return "1 run" if n == 1 else f"{n} runs"


# --- failures grouped by problem ---------------------------------------------------------------


def reminder_interval() -> timedelta:
    """MEDALLION_ALERT_REMINDER_HOURS: how often a problem that keeps failing is reminded (default 4h)."""
    value = os.environ.get(REMINDER_ENV)
    if not value:
        return DEFAULT_REMINDER
    try:
        hours = float(value)
    except ValueError:
        raise config.ConfigError(f"{REMINDER_ENV} must be a number of hours, got {value!r}") from None
    if hours <= 0:
        raise config.ConfigError(f"{REMINDER_ENV} must be a positive number of hours, got {value!r}")
    return timedelta(hours=hours)


# What varies between failures of one problem: ids, timestamps, numbers (durations, pids, ports, rows).
_VARYING = [
    (re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.I), "<id>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?"), "<time>"),
    (re.compile(r"\d+(\.\d+)?"), "#"),
]


def signature(error: str) -> str:
    """A failure's error with what varies between runs blanked: equal signatures are one problem."""
    for pattern, blank in _VARYING:
        error = pattern.sub(blank, error)
    return " ".join(error.split())[:500]


@dataclass
class Problem:
    """A row of ops.failure_problems, and what this failure made of it."""

    problem_id: int
    label: str
    error: str
    runs: int
    opened_at: datetime
    first_run_id: str | None
    last_run_id: str | None
    log_url: str | None
    news: str | None = None  # failure (a new problem) | reminder | None (nothing to send)


def record_failure(wh, failure: Failure, reminder: timedelta | None = None) -> Problem:
    """Count a failure into its open problem, or open one (caller's transaction, serialized by it).

    news = 'failure' for a new problem, 'reminder' when its last email is older than `reminder`.
    """
    from psycopg.rows import class_row

    reminder = reminder or reminder_interval()
    key = (failure.dag_id, failure.task_id, failure.table or "", signature(failure.error))
    returning = """returning problem_id, label, error, runs, opened_at, first_run_id, last_run_id, log_url,
                             case when runs = 1 then 'failure' when last_emailed_at = now() then 'reminder' end
                             as news"""
    with wh.cursor(row_factory=class_row(Problem)) as cur:
        problem = cur.execute(
            f"""update {config.OPS_SCHEMA}.failure_problems
                   set runs = runs + 1, error = %(error)s, last_run_id = %(run)s, log_url = %(log)s,
                       last_failed_at = now(),
                       emails = emails + (last_emailed_at < now() - %(reminder)s)::int,
                       last_emailed_at = case when last_emailed_at < now() - %(reminder)s then now()
                                              else last_emailed_at end
                 where (dag_id, task_id, table_name, signature) = (%(dag)s, %(task)s, %(table)s, %(signature)s)
                   and closed_at is null
             {returning}""",
            {"error": failure.error, "run": failure.run_id, "log": failure.log_url, "reminder": reminder,
             "dag": key[0], "task": key[1], "table": key[2], "signature": key[3]},
        ).fetchone()  # fmt: skip
        if problem is None:
            problem = cur.execute(
                f"""insert into {config.OPS_SCHEMA}.failure_problems
                        (dag_id, task_id, table_name, signature, label, error, first_run_id, last_run_id, log_url)
                    values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                 {returning}""",
                (*key, failure.label, failure.error, failure.run_id, failure.run_id, failure.log_url),
            ).fetchone()
    return problem


def reminder_email(failure: Failure, problem: Problem) -> Email:
    """Short: the problem goes on; the first FAILED email had the details."""
    doc = Doc(lead=f"{failure.dag_id}.{failure.label} is still failing: {runs(problem.runs)} "
                   f"since {when(problem.opened_at)}, with the same error.")  # fmt: skip
    doc.facts = [("Error", failure.error), ("First run", problem.first_run_id or "-"),
                 ("Latest run", failure.run_id), ("Log", failure.log_url)]  # fmt: skip
    doc.steps = ["Fix the cause (the first FAILED email and the DAG's docs say how), then re-run:"]
    doc.commands = [rerun_command(failure)]
    doc.footer = (f"A reminder at most every {span(reminder_interval())} while the problem lasts; "
                  "one email when the table loads again.")  # fmt: skip
    return doc.email(f"{PREFIX} STILL FAILING {failure.dag_id}.{failure.label} ({runs(problem.runs)} "
                     f"since {when(problem.opened_at)[5:16]})", failure.product)  # fmt: skip


def close_recovered_problems(wh) -> list[tuple[str, Email]]:
    """Close the problems that are over (caller's transaction); returns (dag.label, RECOVERED email) of
    each, for the caller to put in the outbox.

    A bronze load's problem is over when its table loaded successfully after the last failure
    (the ledger). A problem of any other task is closed quietly once it has not failed for the
    reminder interval: its next failure is a new problem, with a new FAILED email.
    """
    reminder = reminder_interval()
    recovered = wh.execute(
        f"""with ok as (
                select p.problem_id, b.finished_at, b.run_id
                  from {config.OPS_SCHEMA}.failure_problems as p
                 cross join lateral (
                       select b.finished_at, b.run_id
                         from {config.OPS_SCHEMA}.replication_batches as b
                        where 'bronze_' || b.source = p.dag_id and b.table_name = p.table_name
                          and b.status = 'success' and b.mode <> 'reconcile' and b.finished_at > p.last_failed_at
                        order by b.finished_at
                        limit 1
                 ) as b
                 where p.closed_at is null and p.table_name <> ''
            )
            update {config.OPS_SCHEMA}.failure_problems as p
               set closed_at = now(), closed_because = 'loaded by ' || coalesce(ok.run_id, 'a manual load')
              from ok
             where p.problem_id = ok.problem_id
         returning p.dag_id, p.label, p.error, p.runs, p.opened_at, p.last_failed_at, ok.finished_at, ok.run_id"""
    ).fetchall()
    wh.execute(
        f"""update {config.OPS_SCHEMA}.failure_problems
               set closed_at = now(), closed_because = 'no failure for ' || %s::interval::text
             where closed_at is null and last_failed_at < now() - %s
               and (table_name = '' or dag_id not in (select distinct 'bronze_' || source
                                                        from {config.OPS_SCHEMA}.replication_batches))""",
        (reminder, reminder),
    )
    emails = []
    for dag_id, label, error, n, opened_at, last_failed_at, loaded_at, run_id in recovered:
        doc = Doc(lead=f"{dag_id}.{label} works again: the table loaded at {when(loaded_at)}.")
        doc.facts = [("Was failing", f"{runs(n)}, {when(opened_at)} → {when(last_failed_at)}"), ("Error was", error),
                     ("Loaded by", run_id or "-")]  # fmt: skip
        doc.footer = "The runs that failed are loaded by the next runs (each continues from the last loaded window)."
        email = doc.email(f"{PREFIX} RECOVERED {dag_id}.{label} after {runs(n)} failed", config.product_of_dag(dag_id))
        emails.append((f"{dag_id}.{label}", email))
    return emails


# --- freshness -------------------------------------------------------------------------------


def catch_up_command(kind: str, source: str, tables: list[str], product: str | None = None) -> str:
    """The command that brings stale tables of one kind and source up to date (`product`: the one
    freshness.by_product found for silver/gold; None for a shared DAG)."""
    if kind == "bronze":  # a manual run continues each table from its last loaded window up to now
        return f"airflow dags trigger bronze_{source} -c '{json.dumps({'tables': sorted(tables)})}'"
    if kind in ("silver", "gold"):  # a manual run rebuilds the layer from the one below as it is now
        return f"airflow dags trigger {kind}_{product}" if product else f"airflow dags trigger {kind}"
    raise ValueError(f"no catch-up command for kind {kind!r}")


def freshness_email(change: Change, product: str | None = None) -> Email:
    """Tables went stale or got worse (WARN/STALE), or recovered (RECOVERED): one email per check and
    product (freshness.by_product splits a check's news), to the product's on-call."""
    stale, new = change.stale, change.opened + change.worse
    notes = {r.key: " (new)" for r in change.opened} | {r.key: " (worse)" for r in change.worse}
    doc = Doc(lead="")
    if new:
        severity = "STALE" if any(r.status == "error" for r in new) else "WARN"
        subject = f"{PREFIX} {severity} {_names([r.label for r in new])}"
        if len(stale) == 1:
            r = stale[0]
            if r.kind == "bronze":
                age = f"last load {span(r.age)} ago" if r.last_load_at else "never loaded"
            else:
                age = (f"covers until {when(r.last_load_at)}, {span(r.age)} ago" if r.last_load_at
                       else (r.last_error or "covers nothing yet").split(":")[0])  # fmt: skip
            limit = r.error_after if r.status == "error" else r.warn_after
            doc.lead = f"{r.label} is stale ({r.status}): {age}, SLA {r.status} after {span(limit)}."
        else:
            doc.lead = f"{len(stale)} tables are stale ({len(new)} new): {_names([r.label for r in stale], 6)}."
    else:
        names = [rec.label for rec in change.recovered]
        subject = f"{PREFIX} RECOVERED {_names(names)}"
        doc.lead = (f"{names[0]} is fresh again." if len(names) == 1
                    else f"{len(names)} tables are fresh again: {_names(names, 6)}.")  # fmt: skip
    if stale:
        doc.sections.append((f"Stale now ({len(stale)})", [freshness_item(r, notes.get(r.key, "")) for r in stale]))
    if change.recovered:
        items = []
        for rec in change.recovered:
            item = freshness_item(rec.row) if rec.row else Item(f"{rec.label} — no longer declared")
            item.lines.append(f"was stale ({rec.worst}) since {when(rec.opened_at)}")
            items.append(item)
        doc.sections.append((f"Fresh again ({len(items)})", items))
    if new:
        kinds = {r.kind for r in stale}
        dags = sorted({f"bronze_{r.source}" for r in stale if r.kind == "bronze"})
        layers = ["silver", "gold"] if "gold" in kinds else ["silver"] if "silver" in kinds else []
        dags += [f"{layer}_{product}" if product else layer for layer in layers]
        runs = ", ".join(f"{_base_url()}/dags/{d}/runs" for d in dags)
        doc.steps = [f"Are the runs failing (FAILED emails) or not running at all (DAG paused, scheduler down)? {runs}"]
        if kinds - {"bronze"}:
            doc.steps.append(
                "Gold is rebuilt from silver, silver from bronze: a stale bronze table (in this list or in "
                "select * from ops.table_freshness) or a failed silver run comes first; silver's run then starts gold."
            )
        what = {"bronze": "a manual run continues each table from its last load",
                "silver": "a manual silver run rebuilds silver from bronze as it is now",
                "gold": "a manual gold run rebuilds the marts from silver as it is now"}  # fmt: skip
        doc.steps.append(f"Once fixed, catch up now ({'; '.join(what[k] for k in sorted(kinds))}; safe to repeat):")
        groups: dict[tuple[str, str], list[str]] = {}
        for r in stale:
            groups.setdefault((r.kind, r.source), []).append(r.table_name)
        doc.commands = [catch_up_command(k, s, t, product) for (k, s), t in sorted(groups.items())]
    elif not stale:
        doc.facts.append(("Stale now", "nothing — every table is within its SLA"))
    checked = change.rows[0].checked_at if change.rows else None
    doc.footer = f"Checked {when(checked)}. The same facts: select * from ops.table_freshness;"
    return doc.email(subject, product)


# --- holes in bronze's loaded intervals -------------------------------------------------------


def gap_email(source: str, table: str, holes: list[Gap]) -> Email:
    """A bronze table has intervals no successful load read (ops.replication_gaps): name them and the backfill."""
    hours = sum(g.intervals for g in holes)
    first = holes[0]
    doc = Doc(lead=(f"bronze {table} was never loaded for {interval(first.gap_start, first.gap_end)}"
                    + (f" and {len(holes) - 1} more hole(s)" if len(holes) > 1 else "")
                    + f": {hours} hourly interval(s) to backfill."))  # fmt: skip
    doc.facts = [("Table", f"bronze_{source}.{table}"), ("DAG", f"{_base_url()}/dags/bronze_{source}/runs")]
    doc.sections.append((f"Holes ({len(holes)})", [
        Item(interval(g.gap_start, g.gap_end),
             [f"intervals {when(g.first_interval)} to {when(g.last_interval)} (their start), {g.intervals} run(s)"])
        for g in holes
    ]))  # fmt: skip
    doc.steps = [
        "Usual cause: runs never created (scheduler skipped them during a backfill or a pause) or failed and "
        "never re-run. Loads of later intervals do not re-read these hours (only their lookback).",
        "Backfill exactly these intervals (safe: loads are idempotent; --from-date and --to-date are the first "
        "and last interval's start, both included):",
    ]
    doc.commands = [g.backfill_command for g in holes]
    doc.footer = "Sent once per hole, and once when all are loaded. Details: select * from ops.replication_gaps;"
    return doc.email(f"{PREFIX} HOLE bronze {table}: {hours} hour(s) never loaded, "
                     f"from {when(first.first_interval)[:16]}", source)  # fmt: skip


def gap_recovered_email(source: str, table: str, opened_at: datetime) -> Email:
    doc = Doc(lead=f"bronze {table} has no hole any more: every interval since its first load is loaded.")
    doc.facts = [("Table", f"bronze_{source}.{table}"), ("Hole seen since", when(opened_at))]
    doc.footer = "The same facts: select * from ops.replication_gaps;"
    return doc.email(f"{PREFIX} RECOVERED hole in bronze {table}", source)


# --- deadline miss ---------------------------------------------------------------------------


def deadline_email(context: dict, within_minutes: float | None = None, now: datetime | None = None) -> Email | None:
    """The email for a missed deadline, from the context the scheduler gives the callback; None: stay quiet.

    Quiet for a failed run (its FAILED email was the alert) and for backfills (an operator started them).
    """
    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    dag_id, run_id, state = run.get("dag_id", "?"), run.get("dag_run_id", "?"), run.get("state", "?")
    if state == "failed" or run.get("run_type") == "backfill":
        log.info("deadline of %s %s missed; no email: the run is a %s", dag_id, run_id,
                 "failed run (alerted already)" if state == "failed" else "backfill")  # fmt: skip
        return None
    due = deadline.get("deadline_time")
    due = datetime.fromisoformat(due) if isinstance(due, str) else due
    now = now or datetime.now(UTC)
    late = span(now - due) if due else "?"
    start, end = run.get("data_interval_start"), run.get("data_interval_end")
    label = f"{when(start)[11:16]}–{when(end)[11:16]} UTC" if start and end else when(run.get("queued_at"))
    finished = state == "success"
    doc = Doc(lead=(f"{dag_id} finished {late} after its deadline." if finished
                    else f"{dag_id} is {late} past its deadline and not done (state: {state})."))  # fmt: skip
    allowed = f" ({span(timedelta(minutes=within_minutes))} after queued)" if within_minutes else ""
    doc.facts = [
        ("DAG", dag_id),
        ("Run", run_id),
        ("Interval", interval(start, end)),
        ("State", state),
        ("Queued", when(run.get("queued_at"))),
        ("Deadline", when(due) + allowed),
        ("Late by", late),
        ("Run page", f"{_base_url()}/dags/{dag_id}/runs/{quote(run_id, safe='')}"),
    ]
    if not finished:
        work = "a long COPY" if dag_id.startswith("bronze_") else "a long dbt build (the dbt_producer_watcher log)"
        doc.steps = [
            f"Open the run page: which task is still running or queued? Usual reasons: {work}, a lock "
            "wait, no free worker slot, or a pool slot held by another run.",
            "Nothing to re-run while it runs; if a task fails you get a FAILED email with the command.",
        ]
    doc.footer = ("Deadline alert: a run must be done within its allowance after it is queued (a scheduled run "
                  "at its interval end, an asset-triggered one when its upstream layer published).")  # fmt: skip
    return doc.email(f"{PREFIX} LATE {dag_id} {label} run, {late} past deadline", config.product_of_dag(dag_id))


# --- reconciliation repaired bronze ----------------------------------------------------------

# A lookback shorter than this is named as the likely cause of late commits.
SHORT_LOOKBACK_MINUTES = 5


def reconciliation_email(results: list[dict], run_id: str | None = None, product: str | None = None) -> Email | None:
    """Bronze had to be repaired: versions no load copied were appended (one email per run); None: quiet.

    `results` are medallion.reconcile.Reconciliation.as_dict() of the run's tables. Hard deletes
    alone (tombstones) are routine and send nothing: incremental loads cannot see them by design.
    """
    repaired = sorted((r for r in results if r and r.get("appended")), key=lambda r: r["table"])
    if not repaired:
        return None
    declared = {r["table"]: config.find_table(product, r["table"]) for r in repaired}
    declared = {name: spec for name, spec in declared.items() if spec}
    labels = [declared[r["table"]].qualified if r["table"] in declared else r["table"] for r in repaired]
    total = sum(r["appended"] for r in repaired)
    rows = "1 row version" if total == 1 else f"{total:,} row versions"
    doc = Doc(lead=f"Reconciliation repaired bronze: {rows} that no load had copied"
                   + (f" in {labels[0]}." if len(labels) == 1 else f" in {len(labels)} tables."))  # fmt: skip
    items, advice = [], []
    for label, r in zip(labels, repaired, strict=True):
        spec = declared.get(r["table"])
        cursor = spec.cursor if spec else "the cursor"
        declared_in = spec.declared_at if spec else f"include/dbt/models/staging/{product}/_{product}__sources.yml"
        lines = [
            f"{r['method']} check of {r['rows_checked']:,} source rows (cursor before {when(r['checked_until'])}): "
            f"missing {r['missing']:,}, stale {r['stale']:,}, hard-deleted {r['deleted']:,}",
            f"repaired: {r['appended']:,} versions appended, {r['tombstoned']:,} tombstones",
        ]
        if r["late"]:
            lookback = r["lookback_minutes"]
            cause = (f"lookback too short (lookback_minutes is {lookback:g})" if lookback < SHORT_LOOKBACK_MINUTES
                     else "late commits")  # fmt: skip
            lines.append(
                f"likely cause: {cause}: {r['late']:,} versions with {cursor} between {when(r['late_oldest'])} and "
                f"{when(r['late_newest'])}, in windows already loaded: their transactions committed after the load "
                f"read those windows"
            )
            advice.append(
                f"{label}: if late commits recur, raise lookback_minutes (now {lookback:g}) above your longest "
                f"write transaction, in the table's declaration ({declared_in})."
            )
        if r["null_cursor"]:
            lines.append(f"likely cause: NULL cursors: {r['null_cursor']:,} rows whose {cursor} is NULL, "
                         "which no incremental window selects")  # fmt: skip
            advice.append(
                f"{label}: give {cursor} a value on insert (default now(), NOT NULL) or declare another cursor."
            )
        if r["unbumped"]:
            lines.append(f"likely cause: {r['unbumped']:,} rows changed without their {cursor} moving "
                         "(an UPDATE that does not set it)")  # fmt: skip
            advice.append(f"{label}: find the writer that updates rows without setting {cursor} (a trigger can).")
        items.append(Item(f"{label} — {r['appended']:,} versions appended", lines))
    doc.facts = [("Tables", ", ".join(labels))] + ([("Run", run_id)] if run_id else [])
    doc.sections.append((f"Repaired ({len(items)})", items))
    doc.steps = [
        "Nothing to re-run: bronze equals the source again, and silver re-reads every key on its next run.",
        *advice,
    ]
    doc.footer = ("Hard deletes alone are routine (tombstoned, no email). What each reconciliation found: "
                  "select * from ops.table_reconciliation;")  # fmt: skip
    subject = labels[0] if len(labels) == 1 else f"{len(labels)} tables ({_names(labels)})"
    return doc.email(f"{PREFIX} REPAIRED {subject}: {rows} no load had copied", product)
