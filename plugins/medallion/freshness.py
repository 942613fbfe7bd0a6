"""Freshness of the warehouse's tables against their SLAs: compute it, sync the SLAs, track incidents.

A table's SLA (warn/error age) is declared once, in the dbt sources YAML (`TableSpec.freshness`).
Every check copies the SLAs into `ops.table_slas` and reads `ops.table_freshness`, the view on-call
queries too, so an email and the view always state the same facts. Incidents live in
`ops.freshness_incidents` (one open row per stale table): a check emails only when tables go stale
or get worse, and when they recover; state survives restarts and is shared by every worker.

Kinds of table: each kind declares its SLAs with one function here (`SLA_DECLARATIONS`) and its
freshness with one view in `include/sql/warehouse/002_freshness.sql`. Only bronze exists so far.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import class_row

from medallion import config, connections
from medallion.config import OPS_SCHEMA, SQL_DIR, ConfigError

log = logging.getLogger(__name__)

STALE = ("warn", "error")


@dataclass(frozen=True)
class Sla:
    kind: str
    source: str
    table_name: str
    warn_after: timedelta | None
    error_after: timedelta | None
    declared_at: str


@dataclass(frozen=True)
class TableFreshness:
    """One row of ops.table_freshness."""

    kind: str
    source: str
    table_name: str
    last_load_at: datetime | None
    age: timedelta | None
    warn_after: timedelta | None
    error_after: timedelta | None
    status: str | None  # fresh | warn | error; None: no SLA declared
    last_batch_rows: int | None
    last_batch_id: str | None
    failing_since: datetime | None
    last_error: str | None
    checked_at: datetime

    @property
    def stale(self) -> bool:
        return self.status in STALE

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.source, self.table_name


@dataclass(frozen=True)
class Recovery:
    """A closed incident: the table is fresh again (or no longer declared: row is None)."""

    key: tuple[str, str, str]
    opened_at: datetime
    worst: str
    row: TableFreshness | None


@dataclass
class Change:
    """What one check found, compared with the open incidents."""

    rows: list[TableFreshness]
    opened: list[TableFreshness] = field(default_factory=list)  # stale now, not before
    worse: list[TableFreshness] = field(default_factory=list)  # warn before, error now
    recovered: list[Recovery] = field(default_factory=list)

    @property
    def stale(self) -> list[TableFreshness]:
        return [r for r in self.rows if r.stale]

    @property
    def news(self) -> bool:
        return bool(self.opened or self.worse or self.recovered)


class FreshnessUnavailable(RuntimeError):
    """The warehouse could not be asked (down, unreachable, misconfigured)."""


# --- the declarations, one function per kind -------------------------------------------------


def bronze_slas() -> list[Sla]:
    return [
        Sla("bronze", t.source, t.name, t.freshness.warn_after, t.freshness.error_after, t.declared_at)
        for t in config.tables().values()
    ]


SLA_DECLARATIONS: dict[str, Callable[[], list[Sla]]] = {"bronze": bronze_slas}


def catch_up_command(kind: str, source: str, tables: list[str]) -> str:
    """The command that brings stale tables of one kind and source up to date."""
    if kind == "bronze":  # a manual run continues each table from its last loaded window up to now
        return f"airflow dags trigger bronze_{source} -c '{json.dumps({'tables': sorted(tables)})}'"
    raise ValueError(f"no catch-up command for kind {kind!r}")


# --- the warehouse side ----------------------------------------------------------------------


def prepare(wh: psycopg.Connection) -> None:
    """Create or update the ops tables and views, then sync the SLAs from the declarations (committed)."""
    with wh.transaction():
        wh.execute("select pg_advisory_xact_lock(hashtextextended('medallion:ddl', 0))")
        wh.execute((SQL_DIR / "warehouse" / "001_ops.sql").read_text())
        wh.execute((SQL_DIR / "warehouse" / "002_freshness.sql").read_text())
        sync_slas(wh)


def sync_slas(wh: psycopg.Connection) -> int:
    """Make ops.table_slas equal the declarations: upsert each SLA, drop tables no longer declared."""
    slas = [sla for declare in SLA_DECLARATIONS.values() for sla in declare()]
    with wh.cursor() as cur:
        cur.executemany(
            f"""insert into {OPS_SCHEMA}.table_slas
                    (kind, source, table_name, warn_after, error_after, declared_at, synced_at)
                values (%s, %s, %s, %s, %s, %s, now())
                on conflict (kind, source, table_name) do update
                   set warn_after = excluded.warn_after, error_after = excluded.error_after,
                       declared_at = excluded.declared_at, synced_at = excluded.synced_at""",
            [(s.kind, s.source, s.table_name, s.warn_after, s.error_after, s.declared_at) for s in slas],
        )
    wh.execute(
        f"""delete from {OPS_SCHEMA}.table_slas as t
             where t.kind = any(%s)
               and not exists (select from unnest(%s::text[], %s::text[], %s::text[]) as d(kind, source, table_name)
                                where (d.kind, d.source, d.table_name) = (t.kind, t.source, t.table_name))""",
        (list(SLA_DECLARATIONS), [s.kind for s in slas], [s.source for s in slas], [s.table_name for s in slas]),
    )
    return len(slas)


def read(wh: psycopg.Connection) -> list[TableFreshness]:
    """ops.table_freshness: every declared table."""
    with wh.cursor(row_factory=class_row(TableFreshness)) as cur:
        return cur.execute(
            f"""select kind, source, table_name, last_load_at, age, warn_after, error_after, status,
                       last_batch_rows, last_batch_id, failing_since, last_error, checked_at
                  from {OPS_SCHEMA}.table_freshness
                 order by kind, source, table_name"""
        ).fetchall()


def record(wh: psycopg.Connection, rows: list[TableFreshness], notified_by: str,
           close_recovered: bool = True) -> Change:  # fmt: skip
    """Open, worsen and close incidents to match `rows`; returns what changed (caller owns the transaction).

    close_recovered=False leaves recovered tables' incidents open, for a caller whose email does not
    announce recoveries (the failure email): the next check does, with a RECOVERED email.
    """
    change = Change(rows=rows)
    open_incidents = {
        (k, s, t): (status, opened_at)
        for k, s, t, status, opened_at in wh.execute(
            f"""select kind, source, table_name, status, opened_at from {OPS_SCHEMA}.freshness_incidents
                 where closed_at is null for update"""
        )
    }
    by_key = {r.key: r for r in rows}
    for row in rows:
        if not row.stale:
            continue
        before = open_incidents.get(row.key)
        if before is None:
            wh.execute(
                f"""insert into {OPS_SCHEMA}.freshness_incidents
                        (kind, source, table_name, status, last_load_at, notified_by)
                    values (%s, %s, %s, %s, %s, %s)""",
                (*row.key, row.status, row.last_load_at, notified_by),
            )
            change.opened.append(row)
        elif before[0] == "warn" and row.status == "error":
            wh.execute(
                f"""update {OPS_SCHEMA}.freshness_incidents set status = 'error', notified_by = %s
                     where (kind, source, table_name) = (%s, %s, %s) and closed_at is null""",
                (notified_by, *row.key),
            )
            change.worse.append(row)
    for key, (worst, opened_at) in sorted(open_incidents.items()):
        row = by_key.get(key)
        if close_recovered and (row is None or not row.stale):
            wh.execute(
                f"""update {OPS_SCHEMA}.freshness_incidents set closed_at = now()
                     where (kind, source, table_name) = (%s, %s, %s) and closed_at is null""",
                key,
            )
            change.recovered.append(Recovery(key, opened_at, worst, row))
    return change


@contextmanager
def tracking(notified_by: str, close_recovered: bool = True) -> Iterator[Change]:
    """Evaluate freshness and record incidents in one transaction, serialized across workers.

    Send the email inside the `with` block: if sending fails, the incident changes roll back and
    the next check reports them again (at least once, never silently dropped). Raises
    FreshnessUnavailable, before the block runs, when the warehouse cannot answer.
    """
    with ExitStack() as stack:
        try:
            wh = stack.enter_context(connections.connect_airflow(config.WAREHOUSE_CONN_ID, "medallion-freshness"))
            prepare(wh)
            stack.enter_context(wh.transaction())
            wh.execute("select pg_advisory_xact_lock(hashtextextended('medallion:freshness', 0))")
            change = record(wh, read(wh), notified_by, close_recovered)
        except (psycopg.Error, connections.ConnectionFailed, ConfigError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise FreshnessUnavailable(f"cannot read freshness from the warehouse: {reason}") from exc
        yield change


def check(strict: bool = True) -> dict:
    """The freshness task: email when tables go stale, get worse or recover; log a warning while stale.

    Stale data never fails the task (that would mark a successful load failed). A check that cannot
    run or email (warehouse or SMTP down) fails when strict, so it retries and shows; with
    strict=False (the check at the end of a load) it only logs: nothing was recorded, so the
    `freshness` DAG's next check reports the same news.
    """
    from medallion import alerts

    try:
        with tracking(notified_by="freshness check") as change:
            if change.news:
                alerts.send(alerts.freshness_email(change))
    except Exception as exc:
        if strict:
            raise
        log.error("freshness not checked or not emailed, left to the next check: %s", alerts.first_line(exc))
        return {"error": alerts.first_line(exc)}
    for row in change.stale:
        log.warning("%s.%s is stale (%s): last load %s, age %s, SLA warn %s / error %s", row.source,
                    row.table_name, row.status, row.last_load_at, row.age, row.warn_after, row.error_after)  # fmt: skip
    if not change.stale:
        log.info("all %d tables are within their SLA", len(change.rows))
    return {
        "stale": [r.table_name for r in change.stale],
        "opened": [r.table_name for r in change.opened],
        "worse": [r.table_name for r in change.worse],
        "recovered": [r.key[2] for r in change.recovered],
        "emailed": change.news,
    }
