"""Bronze replication: stream a source table into its warehouse bronze table with binary COPY.

One call loads one table for one window, in one warehouse transaction together with its ledger row
(ops.replication_batches), so a batch is either all there or not there at all.

- incremental: rows whose cursor is in [interval start - lookback, interval end). Bronze keeps one
  row per (primary key, cursor) version; re-reading a version writes nothing (idempotent re-runs).
  When bronze holds nothing at or after the window start (first load, or the next interval of a
  caught-up table) rows are COPYed straight into bronze; otherwise they go through a temp stage and
  only unseen versions are appended.
- full: the whole table is staged and swapped in atomically (small tables; also `full_refresh`).
- proving bronze equals the source, and repairing it, is medallion.reconcile's job.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from medallion import warehouse
from medallion.config import OPS_SCHEMA, SQL_DIR, ConfigError, TableSpec

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0
WRITE_BUFFER_BYTES = 128 * 1024
METADATA_COLUMNS = ("_loaded_at", "_batch_id", "_cursor", "_deleted_at")
CURSOR_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")


class ReplicationError(RuntimeError):
    """A load failed for a reason worth retrying (connection lost, lock timeout...)."""


class SchemaDriftError(ConfigError):
    """The source schema changed in a way bronze cannot follow; retrying will not help."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(), e.g. "character varying(64)"


@dataclass
class BatchResult:
    batch_id: str
    table: str
    mode: str
    window_start: datetime | None
    window_end: datetime | None
    rows_read: int = 0
    rows_written: int = 0
    seconds: float = 0.0
    path: str = ""  # direct | staged | snapshot | reconcile
    schema_changes: list[str] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        window = f"[{_fmt(self.window_start)}, {_fmt(self.window_end)})"
        return (
            f"{self.table}: {self.mode} {window} read {self.rows_read:,} rows, wrote {self.rows_written:,} "
            f"in {self.seconds:.2f}s ({self.rows_per_s:,.0f} rows/s, {self.path})"
        )


def _fmt(ts: datetime | None) -> str:
    return ts.isoformat() if ts else "-inf"


def _template(name: str) -> sql.SQL:
    return sql.SQL((SQL_DIR / "replication" / f"{name}.sql").read_text())


# --- schema -----------------------------------------------------------------------------------


def source_columns(src: psycopg.Connection, spec: TableSpec) -> list[Column]:
    """The source table's columns in order; clear errors for a missing table or column."""
    rows = src.execute(
        """select a.attname, format_type(a.atttypid, a.atttypmod)
             from pg_attribute a
             join pg_class c on c.oid = a.attrelid
             join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
            order by a.attnum""",
        (spec.source_schema, spec.name),
    ).fetchall()
    src.rollback()  # do not hold a transaction (or a snapshot) open on the source
    if not rows:
        raise ConfigError(
            f"table {spec.source_schema}.{spec.name} not found in source connection {spec.source_conn_id!r} "
            f"(declared at {spec.declared_at})"
        )
    columns = [Column(n, t) for n, t in rows]
    names = {c.name for c in columns}
    for col in spec.primary_key:
        if col not in names:
            raise ConfigError(
                f"primary key column {col!r} not found in source table {spec.source_schema}.{spec.name} "
                f"(declared at {spec.declared_at})"
            )
    if spec.cursor:
        if spec.cursor not in names:
            raise ConfigError(
                f"cursor column {spec.cursor!r} not found in source table {spec.source_schema}.{spec.name} "
                f"(declared at {spec.declared_at}; columns: {', '.join(sorted(names))})"
            )
        ctype = next(c.type for c in columns if c.name == spec.cursor)
        if ctype not in CURSOR_TYPES:
            raise ConfigError(
                f"cursor column {spec.name}.{spec.cursor} is {ctype}; it must be a timestamp or date "
                f"(declared at {spec.declared_at})"
            )
    clash = names & set(METADATA_COLUMNS)
    if clash:
        raise ConfigError(f"source table {spec.name} has columns reserved for bronze metadata: {', '.join(clash)}")
    return columns


def bronze_columns(wh: psycopg.Connection, spec: TableSpec) -> list[Column] | None:
    rows = wh.execute(
        """select a.attname, format_type(a.atttypid, a.atttypmod)
             from pg_attribute a
            where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped
            order by a.attnum""",
        (sql.Identifier(spec.bronze_schema, spec.name).as_string(wh),),
    ).fetchall()
    return [Column(n, t) for n, t in rows if n not in METADATA_COLUMNS] or None


_INT_RANK = {"smallint": 1, "integer": 2, "bigint": 3}
_FLOAT_RANK = {"real": 1, "double precision": 2}
_VARCHAR = re.compile(r"character varying\((\d+)\)")
_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")


def widens(old: str, new: str) -> bool:
    """True when every value of type `old` fits type `new` unchanged (bronze may widen to it)."""
    if old == new:
        return True
    for rank in (_INT_RANK, _FLOAT_RANK):
        if old in rank and new in rank:
            return rank[new] >= rank[old]
    if new == "text" and (old.startswith("character varying") or old.startswith("character(")):
        return True
    if (m_old := _VARCHAR.fullmatch(old)) and (m_new := _VARCHAR.fullmatch(new)):
        return int(m_new[1]) >= int(m_old[1])
    if old.startswith("character varying") and new == "character varying":
        return True
    if (m_old := _NUMERIC.fullmatch(old)) and new == "numeric":
        return True
    if (m_old := _NUMERIC.fullmatch(old)) and (m_new := _NUMERIC.fullmatch(new)):
        return int(m_new[2]) == int(m_old[2]) and int(m_new[1]) >= int(m_old[1])
    return False


def sync_bronze_schema(
    wh: psycopg.Connection, spec: TableSpec, src_cols: list[Column]
) -> tuple[dict[str, sql.Composable], list[str]]:
    """Create or evolve the bronze table to hold the source columns; commit the DDL.

    Returns the source select expression by column name (a cast where bronze is wider than the
    source) and the list of changes made. New source columns are added; widened types are
    widened; any other type change raises SchemaDriftError naming table, column, old and new type.
    """
    bronze = sql.Identifier(spec.bronze_schema, spec.name)
    changes: list[str] = []
    with wh.transaction():
        # One DDL lock for the whole warehouse: concurrent "create schema if not exists" races otherwise.
        warehouse.migrate(wh)
        wh.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (warehouse.DDL_LOCK,))
        wh.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(spec.bronze_schema)))
        existing = bronze_columns(wh, spec)
        if existing is None:
            cols = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in src_cols
            )
            wh.execute(
                sql.SQL(
                    "create table {bronze} ({cols}, "
                    "_loaded_at timestamptz not null default now(), "
                    "_batch_id text default current_setting('medallion.batch_id', true), "
                    "_cursor timestamptz, _deleted_at timestamptz)"
                ).format(bronze=bronze, cols=cols)
            )
            # BRIN: near-free to maintain during COPY, and bronze is appended in cursor order, so it
            # narrows "rows at or after the window start" to a few block ranges. New ranges are
            # summarized by autovacuum (autosummarize), not inside the load's transaction.
            wh.execute(
                sql.SQL("create index {} on {} using brin (_cursor) with (autosummarize = on)").format(
                    sql.Identifier(_brin_name(spec)), bronze
                )
            )
            changes.append(f"created {spec.qualified} with {len(src_cols)} columns")
            return {c.name: sql.Identifier(c.name) for c in src_cols}, changes
        have = {c.name: c.type for c in existing}
        exprs: dict[str, sql.Composable] = {}
        for col in src_cols:
            ident = sql.Identifier(col.name)
            old = have.get(col.name)
            if old is None:
                wh.execute(sql.SQL("alter table {} add column {} {}").format(bronze, ident, sql.SQL(col.type)))
                changes.append(f"added column {col.name} {col.type}")
                exprs[col.name] = ident
            elif old == col.type:
                exprs[col.name] = ident
            elif widens(old, col.type):
                wh.execute(sql.SQL("alter table {} alter column {} type {}").format(bronze, ident, sql.SQL(col.type)))
                changes.append(f"widened column {col.name} from {old} to {col.type}")
                exprs[col.name] = ident
            elif widens(col.type, old):
                exprs[col.name] = sql.SQL("{}::{}").format(
                    ident, sql.SQL(old)
                )  # source narrowed: bronze keeps its type
            else:
                raise SchemaDriftError(
                    f"schema drift in {spec.qualified}.{col.name}: source type changed from {old} to {col.type}, "
                    f"which bronze cannot hold; alter {spec.qualified}.{col.name} by hand, then re-run"
                )
        for gone in set(have) - {c.name for c in src_cols}:
            log.warning(
                "%s: column %s no longer exists in the source; bronze keeps it (NULL from now on)", spec.qualified, gone
            )
    return exprs, changes


# --- copy -------------------------------------------------------------------------------------


def copy_stream(
    src: psycopg.Connection, wh: psycopg.Connection, select: sql.Composable, target: sql.Composable, label: str
) -> int:
    """Stream `COPY (select) TO STDOUT` from the source into `COPY target FROM STDIN`, binary.

    Blocks are forwarded as libpq hands them over, never parsed into Python rows, so memory stays
    flat whatever the table size. Logs progress (rows, rows/s) every few seconds.
    """
    t0 = last = time.monotonic()
    blocks = 0
    buffer = bytearray()
    with src.cursor() as rc, wh.cursor() as wc:
        with rc.copy(sql.SQL("copy ({}) to stdout (format binary)").format(select)) as cin:
            with wc.copy(sql.SQL("copy {} from stdin (format binary)").format(target)) as cout:
                for block in cin:  # one block per row: batch them, a write per row costs 2x the CPU
                    buffer += block
                    blocks += 1
                    if len(buffer) >= WRITE_BUFFER_BYTES:
                        cout.write(buffer)
                        buffer = bytearray()
                        if (now := time.monotonic()) - last >= PROGRESS_EVERY_S:
                            log.info(
                                "%s: %s rows copied so far (%s rows/s)",
                                label,
                                f"{blocks:,}",
                                f"{blocks / (now - t0):,.0f}",
                            )
                            last = now
                if buffer:
                    cout.write(buffer)
        rows = wc.rowcount
    src.rollback()
    return rows


def _select_sql(
    spec: TableSpec, exprs: dict[str, sql.Composable], start: datetime | None, end: datetime | None
) -> sql.Composable:
    cursor = (
        sql.SQL("{}::timestamptz").format(sql.Identifier(spec.cursor)) if spec.cursor else sql.SQL("null::timestamptz")
    )
    where = []
    if spec.cursor and start is not None:
        where.append(sql.SQL("{} >= {}").format(sql.Identifier(spec.cursor), sql.Literal(start)))
    if spec.cursor and end is not None:
        where.append(sql.SQL("{} < {}").format(sql.Identifier(spec.cursor), sql.Literal(end)))
    query = sql.SQL("select {cols}, {cursor} from {table}").format(
        cols=sql.SQL(", ").join(exprs.values()), cursor=cursor, table=sql.Identifier(spec.source_schema, spec.name)
    )
    if where:
        query = sql.SQL("{} where {}").format(query, sql.SQL(" and ").join(where))
    return query


def _pk_match(spec: TableSpec, left: str, right: str) -> sql.Composable:
    return sql.SQL(" and ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, c), sql.Identifier(right, c)) for c in spec.primary_key
    )


# --- windows and ledger -----------------------------------------------------------------------


def load_bounds(wh: psycopg.Connection, spec: TableSpec) -> tuple[datetime | None, datetime | None]:
    """From the ledger: (end of the newest loaded window, bound of every _cursor bronze holds).

    The first decides where the next window starts (None: never loaded). The second is the newest
    cursor any successful batch may have written (tombstones carry their detection time); a window
    starting at or after it cannot meet rows already in bronze, so it may be COPYed in directly.
    """
    row = wh.execute(
        f"""select max(coalesce(window_end, finished_at)) filter (where mode <> 'reconcile'),
                   max(case when mode = 'incremental' then window_end else finished_at end)
              from {OPS_SCHEMA}.replication_batches
             where source = %s and table_name = %s and status = 'success'""",
        (spec.source, spec.name),
    ).fetchone()
    return row[0], row[1]


def plan_window(
    spec: TableSpec,
    loaded_until: datetime | None,
    interval_start: datetime | None,
    interval_end: datetime | None,
    full_refresh: bool,
    now: datetime,
) -> tuple[str, datetime | None, datetime | None]:
    """(mode, window start, window end) for one run. A None start means all history.

    Scheduled runs read their data interval minus the lookback. A table never loaded before takes
    all history up to the interval end (its initial snapshot). Manual runs without a data interval
    continue from the last loaded window up to now.
    """
    if spec.mode == "full":
        return "full", None, None
    if full_refresh:
        return "full_refresh", None, None
    if interval_end is None:  # manual run without a logical date
        start = loaded_until - spec.lookback if loaded_until else None
        return "incremental", start, now
    start = interval_start - spec.lookback if (loaded_until and interval_start) else None
    return "incremental", start, interval_end


def _record(
    wh: psycopg.Connection,
    result: BatchResult,
    spec: TableSpec,
    status: str,
    started: datetime,
    interval: tuple[datetime | None, datetime | None],
    run: dict,
    error: str | None = None,
) -> None:
    wh.execute(
        f"""insert into {OPS_SCHEMA}.replication_batches
              (batch_id, source, table_name, mode, interval_start, interval_end, window_start, window_end,
               rows_read, rows_written, seconds, status, error, dag_id, run_id, started_at)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            result.batch_id,
            spec.source,
            spec.name,
            result.mode,
            interval[0],
            interval[1],
            result.window_start,
            result.window_end,
            result.rows_read,
            result.rows_written,
            result.seconds,
            status,
            error,
            run.get("dag_id"),
            run.get("run_id"),
            started,
        ),
    )


# --- the loads --------------------------------------------------------------------------------


def replicate(
    spec: TableSpec,
    src: psycopg.Connection,
    wh: psycopg.Connection,
    *,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
    full_refresh: bool = False,
    run: dict | None = None,
    now: datetime | None = None,
) -> BatchResult:
    """Load one table for one run. All or nothing: data and ledger row commit together."""
    run = run or {}
    started = datetime.now(UTC)
    src.execute("set time zone 'UTC'")
    src.commit()
    exprs, changes = sync_bronze_schema(wh, spec, source_columns(src, spec))
    for change in changes:
        log.info("%s: %s", spec.qualified, change)
    result = BatchResult(uuid.uuid4().hex, spec.name, "incremental", None, None, schema_changes=changes)
    bronze = sql.Identifier(spec.bronze_schema, spec.name)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in exprs)
    target_cols = sql.SQL("{}, _cursor").format(columns)
    interval = (interval_start, interval_end)
    with _batch(wh, spec, result, started, interval, run, "load"):  # planned under the table's lock
        loaded_until, cursor_bound = load_bounds(wh, spec)
        mode, start, end = plan_window(spec, loaded_until, interval_start, interval_end, full_refresh, now or started)
        result.mode, result.window_start, result.window_end = mode, start, end
        select = _select_sql(spec, exprs, start, end)
        label = f"{spec.qualified} {_fmt(start)}..{_fmt(end)}"
        log.info("%s: %s load, window [%s, %s)", spec.qualified, mode, _fmt(start), _fmt(end))
        direct = (start is not None and cursor_bound is not None and cursor_bound <= start) or (
            cursor_bound is None and not _has_rows(wh, bronze)
        )
        if mode == "incremental" and direct:
            result.path = "direct"
            result.rows_read = copy_stream(src, wh, select, sql.SQL("{} ({})").format(bronze, target_cols), label)
            result.rows_written = result.rows_read
        else:
            stage = sql.Identifier(f"_stage_{spec.name}")
            wh.execute(
                sql.SQL("create temp table {} on commit drop as select {}, _cursor from {} with no data").format(
                    stage, columns, bronze
                )
            )
            result.rows_read = copy_stream(src, wh, select, sql.SQL("{} ({})").format(stage, target_cols), label)
            wh.execute(sql.SQL("analyze {}").format(stage))
            if mode == "incremental":
                result.path = "staged"
                result.rows_written = wh.execute(
                    _template("insert_new_versions").format(
                        bronze=bronze,
                        stage=stage,
                        columns=columns,
                        pk_match=_pk_match(spec, "b", "s"),
                        window_start=sql.Literal(start or datetime.min.replace(tzinfo=UTC)),
                    )
                ).rowcount
            else:
                result.path = "snapshot"
                wh.execute(_template("replace_snapshot").format(bronze=bronze, stage=stage, columns=columns))
                result.rows_written = result.rows_read
    log.info(result.summary())
    return result


def _brin_name(spec: TableSpec) -> str:
    return f"{spec.name}__cursor_brin"[:63]


def _has_rows(wh: psycopg.Connection, bronze: sql.Identifier) -> bool:
    return wh.execute(sql.SQL("select exists (select from {})").format(bronze)).fetchone()[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@contextmanager
def _batch(wh: psycopg.Connection, spec: TableSpec, result: BatchResult, started: datetime,
           interval: tuple[datetime | None, datetime | None], run: dict, what: str):  # fmt: skip
    """One warehouse transaction per batch, under the table's lock, committed with its ledger row.

    On any error the transaction rolls back, a 'failed' ledger row records the error, and the error
    is re-raised: ConfigError as is (a retry will not help), anything else as ReplicationError.
    """
    t0 = time.monotonic()
    try:
        with wh.transaction():
            wh.execute("select set_config('medallion.batch_id', %s, true)", (result.batch_id,))
            # one batch per bronze table at a time (overlapping backfills, retries, reconciliation)
            wh.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"medallion:{spec.qualified}",))
            yield
            result.seconds = time.monotonic() - t0
            _record(wh, result, spec, "success", started, interval, run)
    except Exception as exc:
        result.seconds = time.monotonic() - t0
        _record_failure(wh, result, spec, started, interval, run, exc)
        if isinstance(exc, ConfigError):
            raise
        raise ReplicationError(f"{spec.qualified}: {what} failed: {_first_line(exc)}") from exc


def _record_failure(wh, result, spec, started, interval, run, exc) -> None:
    """Note a failed batch in the ledger, in its own transaction (the batch itself rolled back)."""
    try:
        if wh.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            wh.rollback()
        with wh.transaction():
            _record(wh, result, spec, "failed", started, interval, run, error=_first_line(exc))
    except psycopg.Error:
        log.exception("could not record the failed batch %s in the ledger", result.batch_id)
