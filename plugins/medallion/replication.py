"""Bronze replication: stream a source table into its warehouse bronze table with binary COPY.

One call loads one table for one window, in one warehouse transaction together with its ledger row
(ops.replication_batches), so a batch is either all there or not there at all.

- incremental: rows whose cursor is in [interval start - lookback, interval end). Bronze keeps one
  row per (primary key, cursor) version; re-reading a version writes nothing (idempotent re-runs).
  Rows whose cursor is past every cursor bronze holds (first load; the new rows of the next
  interval) are COPYed straight into bronze; the rest (the lookback, a re-run interval) go through
  a temp stage and only unseen versions are appended. The cursor (see Cursor) may be a timestamp, a local-time
  `timestamp`, a date or an integer id, with fallback columns where it is NULL.
- full: the whole table is staged and swapped in atomically (small tables; also `full_refresh`).
- proving bronze equals the source, and repairing it, is medallion.reconcile's job.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from medallion import warehouse
from medallion.config import OPS_SCHEMA, SQL_DIR, WAREHOUSE_CONN_ID, ConfigError, TableSpec

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0
WRITE_BUFFER_BYTES = 128 * 1024
PIPE_BYTES = 1024 * 1024
METADATA_COLUMNS = ("_loaded_at", "_batch_id", "_cursor", "_deleted_at")
# bronze's _batch_id (uuid): the batch's id, set per transaction by _batch (every load and repair
# writes it). Evaluated per row, so the big writes give the id instead: a constant default during a
# first load's COPY (_first_load), a column of the COPY stream or of the insert's select otherwise.
BATCH_ID_DEFAULT = sql.SQL("nullif(current_setting('medallion.batch_id', true), '')::uuid")
TIME_CURSOR_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")
INTEGER_CURSOR_TYPES = ("smallint", "integer", "bigint")
# Built-in types whose values are OIDs of the source's own catalog: bronze holds their names.
OID_ALIAS_TYPES = {
    "regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper", "regoperator",
    "regproc", "regprocedure", "regrole", "regtype",
}  # fmt: skip


class ReplicationError(RuntimeError):
    """A load failed for a reason worth retrying (connection lost, lock timeout...)."""


class SchemaDriftError(ConfigError):
    """The source schema changed in a way bronze cannot follow; retrying will not help."""


class UnsupportedTypeError(ConfigError):
    """A source column's type has no warehouse type that holds its values; retrying will not help."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the type bronze holds it as, format_type() spelling, e.g. "character varying(64)"
    note: str | None = None  # set when that is not the source's type: "source type X (enum) held as text"
    not_null: bool = False  # in the source
    missing: str | None = None  # the value the source gives rows older than the column (fast default)

    @property
    def expr(self) -> sql.Composable:
        """The column in the source's select: cast to the bronze type when the source's differs (an
        enum's label as text...), so binary COPY sends what the warehouse type reads."""
        ident = sql.Identifier(self.name)
        return sql.SQL("{}::{}").format(ident, sql.SQL(self.type)) if self.note else ident


def new_batch_id() -> str:
    """A batch's id: a uuid in its canonical text form, as bronze's `_batch_id::text` shows it."""
    return str(uuid.uuid4())


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
    path: str = ""  # direct | split (staged below bronze's bound, direct above) | staged | snapshot | reconcile
    window_start_id: int | None = None  # integer cursors: the ids read, [start, end)
    window_end_id: int | None = None
    schema_changes: list[str] = field(default_factory=list)
    # where the time went, seconds: schema (source columns, bronze DDL sync), plan (ledger, window),
    # copy, merge (staged path: analyze + anti-join append; snapshot swap), commit (ledger row + commit)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        window = f"[{_fmt(self.window_start)}, {_fmt(self.window_end)})"
        if self.window_end_id is not None:
            window = f"ids [{_fmt(self.window_start_id)}, {self.window_end_id})"
        return (
            f"{self.table}: {self.mode} {window} read {self.rows_read:,} rows, wrote {self.rows_written:,} "
            f"in {self.seconds:.2f}s ({self.rows_per_s:,.0f} rows/s, {self.path})"
        )


def _fmt(ts: datetime | int | None) -> str:
    return "-inf" if ts is None else ts.isoformat() if isinstance(ts, datetime) else str(ts)


def _template(name: str) -> sql.SQL:
    return sql.SQL((SQL_DIR / "replication" / f"{name}.sql").read_text())


# --- schema -----------------------------------------------------------------------------------


def source_columns(src: psycopg.Connection, spec: TableSpec) -> list[Column]:
    """The source table's columns in order, each with the bronze type that holds it; clear errors
    for a missing table, key or cursor column, and for a type bronze cannot hold."""
    rows = src.execute(
        (SQL_DIR / "replication" / "source_columns.sql").read_text(),
        {"schema": spec.source_schema, "table": spec.source_table},
    ).fetchall()
    if not rows:
        src.rollback()
        raise ConfigError(
            f"table {spec.source_schema}.{spec.source_table} not found in source connection {spec.source_conn_id!r} "
            f"(declared at {spec.declared_at})"
        )
    types = _source_types(src, [r[1] for r in rows])
    src.rollback()  # do not hold a transaction (or a snapshot) open on the source
    columns = []
    for name, oid, source_type, not_null, missing in rows:
        try:
            held, kind = _held_as(types, oid, source_type)
        except UnsupportedTypeError as exc:
            raise UnsupportedTypeError(
                f"{spec.qualified}.{name}: source type {source_type} {exc}; bronze cannot hold it "
                f"(declared at {spec.declared_at})"
            ) from None
        note = f"source type {source_type} ({kind}) held as {held}" if kind else None
        columns.append(Column(name, held, note, not_null, missing))
    names = {c.name for c in columns}
    for col in spec.primary_key:
        if col not in names:
            raise ConfigError(
                f"primary key column {col!r} not found in source table {spec.source_schema}.{spec.source_table} "
                f"(declared at {spec.declared_at})"
            )
    for col in spec.cursor_columns:
        if col not in names:
            raise ConfigError(
                f"cursor column {col!r} not found in source table {spec.source_schema}.{spec.source_table} "
                f"(declared at {spec.declared_at}; columns: {', '.join(sorted(names))})"
            )
    clash = names & set(METADATA_COLUMNS)
    if clash:
        raise ConfigError(f"source table {spec.name} has columns reserved for bronze metadata: {', '.join(clash)}")
    return columns


def key_is_unique(src: psycopg.Connection, spec: TableSpec) -> bool:
    """True when a unique index of the source table guarantees one row per declared primary key.
    False for an append-only log whose id repeats (product analytics' redelivered events), a view...
    True for a table without a declared key: its rows are not versions of a key."""
    if not spec.primary_key:
        return True
    table = sql.Identifier(spec.source_schema, spec.source_table).as_string(src)
    unique = src.execute(
        (SQL_DIR / "replication" / "source_key_unique.sql").read_text(), {"table": table, "key": list(spec.primary_key)}
    ).fetchone()[0]
    src.rollback()
    return bool(unique)


def _source_types(src: psycopg.Connection, oids: list[int]) -> dict[int, tuple]:
    rows = src.execute((SQL_DIR / "replication" / "source_types.sql").read_text(), {"oids": oids}).fetchall()
    return {r[0]: r for r in rows}


def _held_as(types: dict[int, tuple], oid: int, name: str) -> tuple[str, str | None]:
    """(warehouse type that holds every value of source type `oid` exactly, what the source type is
    when it differs, else None). `name` is the source type as format_type() spells it.

    Built-in types are kept. Enums, composites, ranges and extension or other user-defined base
    types are held as text: their text form is their value (what `::text` and the type's input
    function agree on), and the warehouse needs no extension. Domains are held as their base type,
    arrays as arrays of their element's. Pseudo-types cannot be held (no fixed type per row).
    """
    _, _, schema, kind, base, base_name, element, is_array, extension = types[oid]
    if kind == "d":
        held, what = _held_as(types, base, base_name)
        return held, f"domain over {base_name}" + (f" ({what})" if what else "")
    if kind == "p":
        raise UnsupportedTypeError("is a pseudo-type (each row may hold a value of another type)")
    if schema == "pg_catalog":
        if is_array and types[element][1] in OID_ALIAS_TYPES:
            return "text[]", "array of OIDs of the source's catalog: names"
        if types[oid][1] in OID_ALIAS_TYPES:
            return "text", "OID of the source's catalog: its name"
        return name, None
    if is_array:
        held, what = _held_as(types, element, types[element][1])
        return f"{held}[]", f"array of {types[element][1]}" + (f" ({what})" if what else "")
    what = {"e": "enum", "c": "composite", "r": "range", "m": "multirange"}.get(kind)
    return "text", what or (f"extension {extension}" if extension else "user-defined base type")


def bronze_columns(wh: psycopg.Connection, spec: TableSpec) -> list[Column] | None:
    """Bronze's data columns (type and comment), or None when the table does not exist."""
    rows = wh.execute(
        """select a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum)
             from pg_attribute a
            where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped
            order by a.attnum""",
        (_regclass(wh, spec),),
    ).fetchall()
    return [Column(n, t, c) for n, t, c in rows if n not in METADATA_COLUMNS] or None


def _regclass(wh: psycopg.Connection, spec: TableSpec) -> str:
    return sql.Identifier(spec.bronze_schema, spec.name).as_string(wh)


def _regclass_text(spec: TableSpec) -> str:
    """The bronze table as on-call would type it: quoted only where a name needs it."""

    def part(name: str) -> str:
        return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'

    return f"{part(spec.bronze_schema)}.{part(spec.name)}"


_INT_RANK = {"smallint": 1, "integer": 2, "bigint": 3}
_INT_DIGITS = {"smallint": 5, "integer": 10, "bigint": 19}
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
    if old in _INT_DIGITS and new == "numeric":
        return True
    if old in _INT_DIGITS and (m_new := _NUMERIC.fullmatch(new)):
        return int(m_new[1]) - int(m_new[2]) >= _INT_DIGITS[old]
    if new == "text" and (old.startswith("character varying") or old.startswith("character(")):
        return True
    if (m_old := _VARCHAR.fullmatch(old)) and (m_new := _VARCHAR.fullmatch(new)):
        return int(m_new[1]) >= int(m_old[1])
    if old.startswith("character varying") and new == "character varying":
        return True
    if _NUMERIC.fullmatch(old) and new == "numeric":
        return True
    if (m_old := _NUMERIC.fullmatch(old)) and (m_new := _NUMERIC.fullmatch(new)):
        # as many digits before the point and at least as many after it
        return int(m_new[2]) >= int(m_old[2]) and int(m_new[1]) - int(m_new[2]) >= int(m_old[1]) - int(m_old[2])
    return False


def sync_bronze_schema(
    wh: psycopg.Connection, spec: TableSpec, src_cols: list[Column], cursor_type: str = "timestamptz"
) -> tuple[dict[str, sql.Composable], list[str]]:
    """Create or evolve the bronze table to hold the source columns; commit the DDL.

    Returns the source select expression by column name (a cast where bronze holds another type
    than the source) and the list of changes made. New source columns are added (older bronze rows
    get the value the source gave its older rows, when the source knows it); widened types are
    widened, with silver's views in place (ops.alter_column_type); any other type change raises
    SchemaDriftError naming table, column, old and new type, and the command that converts bronze.
    A column whose source type bronze holds as another type says so in its comment.
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
                    "_batch_id uuid default {batch_id}, _cursor {cursor_type}, _deleted_at timestamptz)"
                ).format(bronze=bronze, cols=cols, batch_id=BATCH_ID_DEFAULT, cursor_type=sql.SQL(cursor_type))
            )
            # BRIN: near-free to maintain during COPY, and bronze is appended in cursor order, so it
            # narrows "rows at or after the window start" to a few block ranges. New ranges are
            # summarized by autovacuum (autosummarize), not inside the load's transaction.
            wh.execute(
                sql.SQL("create index {} on {} using brin (_cursor) with (autosummarize = on)").format(
                    sql.Identifier(_brin_name(spec)), bronze
                )
            )
            for col in src_cols:
                if col.note:
                    _comment(wh, bronze, col.name, col.note)
            changes.append(f"created {spec.qualified} with {len(src_cols)} columns")
            return {c.name: c.expr for c in src_cols}, changes
        if _metadata_type(wh, spec, "_batch_id") == "text":
            changes.append(_batch_id_to_uuid(wh, spec))
        held = _metadata_type(wh, spec, "_cursor")
        if held != _FORMATTED[cursor_type]:  # e.g. a table switched to an integer cursor
            raise SchemaDriftError(
                f"{spec.qualified}._cursor is {held} but the declared cursor "
                f"({', '.join(spec.cursor_columns) or 'none'}) needs {_FORMATTED[cursor_type]}: bronze's history "
                f"cannot be converted; drop {spec.qualified} to reload it from the source, or declare the old cursor "
                f"(declared at {spec.declared_at})"
            )
        have = {c.name: c for c in existing}
        exprs: dict[str, sql.Composable] = {}
        for col in src_cols:
            old = have[col.name].type if col.name in have else None
            if old is None:
                changes.append(_add_column(wh, bronze, col))
            elif old == col.type:
                pass
            elif widens(old, col.type):
                try:
                    wh.execute(
                        "select ops.alter_column_type(%s::regclass, %s, %s)", (_regclass(wh, spec), col.name, col.type)
                    )
                except psycopg.Error as exc:  # e.g. a materialized view on it: a retry will not help
                    raise SchemaDriftError(
                        f"cannot widen {spec.qualified}.{col.name} from {old} to {col.type}: {_first_line(exc)}"
                    ) from None
                changes.append(f"widened column {col.name} from {old} to {col.type}")
            elif widens(col.type, old):  # source narrowed: bronze keeps its type
                exprs[col.name] = sql.SQL("({})::{}").format(col.expr, sql.SQL(old))
                continue
            else:
                fix = sql.SQL("select ops.alter_column_type({}, {}, {})").format(
                    sql.Literal(_regclass_text(spec)), sql.Literal(col.name), sql.Literal(col.type)
                )
                raise SchemaDriftError(
                    f"schema drift in {spec.qualified}.{col.name}: source type changed from {old} to {col.type}, "
                    f"which bronze cannot follow on its own; convert bronze's column (silver's views on it are kept) "
                    f"with `{fix.as_string(wh)}` in the warehouse, then clear the task (or drop the bronze table "
                    f"to reload it from the source, losing its history)"
                )
            exprs[col.name] = col.expr
            if old is not None and col.note != have[col.name].note and (col.note or _is_note(have[col.name].note)):
                _comment(wh, bronze, col.name, col.note)
        for gone in set(have) - {c.name for c in src_cols}:
            log.warning(
                "%s: column %s no longer exists in the source; bronze keeps it (NULL from now on)", spec.qualified, gone
            )
    return exprs, changes


_FORMATTED = {"timestamptz": "timestamp with time zone", "bigint": "bigint"}


def _metadata_type(wh: psycopg.Connection, spec: TableSpec, column: str) -> str:
    return wh.execute(
        "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = %s::regclass and attname = %s",
        (_regclass(wh, spec), column),
    ).fetchone()[0]


def _batch_id_to_uuid(wh: psycopg.Connection, spec: TableSpec) -> str:
    """Convert `_batch_id` of a bronze table made when it was text (33 bytes a row, against uuid's
    16: narrow rows load ~12% slower) to uuid, once: a rewrite of the table under its exclusive
    lock, silver's views kept (ops.alter_column_type). Batch ids were uuids in hex; a value that is
    not one (written by hand) becomes NULL, and the log says how many."""
    bronze = sql.Identifier(spec.bronze_schema, spec.name)
    wh.execute(sql.SQL("alter table {} alter column _batch_id drop default").format(bronze))
    not_uuid = wh.execute(
        sql.SQL("update {} set _batch_id = null where _batch_id !~* '^[0-9a-f]{{32}}$'").format(bronze)
    ).rowcount
    wh.execute("select ops.alter_column_type(%s::regclass, '_batch_id', 'uuid')", (_regclass(wh, spec),))
    wh.execute(sql.SQL("alter table {} alter column _batch_id set default {}").format(bronze, BATCH_ID_DEFAULT))
    cleared = f" ({not_uuid} values that were not batch ids set to NULL)" if not_uuid else ""
    return f"converted _batch_id from text to uuid{cleared}"


def _is_note(comment: str | None) -> bool:
    return bool(comment and comment.startswith("source type "))


def _comment(wh: psycopg.Connection, bronze: sql.Identifier, column: str, note: str | None) -> None:
    wh.execute(sql.SQL("comment on column {}.{} is {}").format(bronze, sql.Identifier(column), sql.Literal(note)))


def _add_column(wh: psycopg.Connection, bronze: sql.Identifier, col: Column) -> str:
    """Add a new source column to bronze; returns what was done.

    Rows the source had before the column was added read as its "missing" value (the constant of
    `add column ... default ...`, kept by Postgres in attmissingval): bronze gives its older rows
    the same value, as a default that Postgres also stores without rewriting the table, then drops
    the default (every later load writes the column). A NOT NULL column whose older values the
    source does not keep (a volatile default rewrote its table) is reported, not invented.
    """
    ident = sql.Identifier(col.name)
    if col.missing is not None:
        wh.execute(
            sql.SQL("alter table {} add column {} {} default {}::{}").format(
                bronze, ident, sql.SQL(col.type), sql.Literal(col.missing), sql.SQL(col.type)
            )
        )
        wh.execute(sql.SQL("alter table {} alter column {} drop default").format(bronze, ident))
        done = (
            f"added column {col.name} {col.type} "
            f"(older bronze rows set to {col.missing!r}, as the source did to its older rows)"
        )
    else:
        wh.execute(sql.SQL("alter table {} add column {} {}").format(bronze, ident, sql.SQL(col.type)))
        done = f"added column {col.name} {col.type}"
        if col.not_null:
            done += (
                " (NOT NULL in the source, but its older rows' values are unknown to bronze: older bronze rows "
                "hold NULL until the reconciliation or a full_refresh reloads them)"
            )
    if col.note:
        _comment(wh, bronze, col.name, col.note)
    return done


# --- cursor -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """How a table's cursor selects a window of rows in the source and what bronze's _cursor holds.

    - Several columns (`cursor: [updated_at, created_at]`): where one is NULL the next counts
      (`_cursor` = coalesce). The window predicate has one branch per column, `c1 in window or
      (c1 is null and c2 in window)`, each answered by that column's index.
    - When every cursor column may be NULL, rows whose cursor is NULL are read by every run (an
      index on the cursor answers `is null` too) and written once: nothing is skipped because a
      trigger fills updated_at on update only.
    - `timestamp without time zone` and `date` columns hold local time of the source database's
      TimeZone (read from the server: the database's setting, else the server's): window bounds are
      converted to it (the predicate stays indexable) and `_cursor` is that local time as timestamptz.
    - Integer columns (identity / bigserial ids): `_cursor` is bigint and windows are id ranges
      (see plan_ids).
    """

    columns: tuple[str, ...]
    types: tuple[str, ...]  # bronze types of the columns
    nullable: bool  # every cursor column may be NULL
    timezone: str = "UTC"

    @classmethod
    def read(cls, src: psycopg.Connection, spec: TableSpec, columns: list[Column]) -> Cursor | None:
        if not spec.cursor_columns:
            return None
        by_name = {c.name: c for c in columns}
        cols = [by_name[n] for n in spec.cursor_columns]
        kinds = {"integer" if c.type in INTEGER_CURSOR_TYPES else "time" for c in cols}
        for c in cols:
            if c.type not in TIME_CURSOR_TYPES + INTEGER_CURSOR_TYPES:
                raise ConfigError(
                    f"cursor column {spec.name}.{c.name} is {c.type}; it must be a timestamp, a date or an integer id "
                    f"(declared at {spec.declared_at})"
                )
        if len(kinds) > 1:
            raise ConfigError(
                f"cursor columns of {spec.name} ({', '.join(spec.cursor_columns)}) mix timestamps and integers; "
                f"they must all be of one kind (declared at {spec.declared_at})"
            )
        zone = "UTC"
        if any(c.type in ("timestamp without time zone", "date") for c in cols):
            zone = source_timezone(src)
        return cls(tuple(c.name for c in cols), tuple(c.type for c in cols), not any(c.not_null for c in cols), zone)

    def without_nulls_in(self, src: psycopg.Connection, spec: TableSpec) -> Cursor:
        """This cursor as NOT NULL when the source has no NULL-cursor row now (an index probe): the
        window then reads no row bronze already holds and may go straight into bronze. A NULL row
        committed after this check is read by the next run, which re-reads NULL-cursor rows."""
        if not self.nullable:
            return self
        found = src.execute(
            sql.SQL("select exists (select from {} where {})").format(
                sql.Identifier(spec.source_schema, spec.source_table),
                sql.SQL(" and ").join(sql.SQL("{} is null").format(sql.Identifier(c)) for c in self.columns),
            )
        ).fetchone()[0]
        src.rollback()
        return self if found else replace(self, nullable=False)

    @property
    def is_integer(self) -> bool:
        return self.types[0] in INTEGER_CURSOR_TYPES

    @property
    def bronze_type(self) -> str:
        return "bigint" if self.is_integer else "timestamptz"

    def _value(self, name: str, type_: str) -> sql.Composable:
        ident = sql.Identifier(name)
        if self.is_integer:
            return sql.SQL("{}::bigint").format(ident)
        if type_ == "timestamp with time zone":
            return ident
        return sql.SQL("({}::timestamp at time zone {})").format(ident, sql.Literal(self.timezone))

    def expr(self) -> sql.Composable:
        """The source expression of bronze's _cursor."""
        values = [self._value(n, t) for n, t in zip(self.columns, self.types, strict=True)]
        return values[0] if len(values) == 1 else sql.SQL("coalesce({})").format(sql.SQL(", ").join(values))

    def _bound(self, type_: str, value) -> sql.Composable:
        if self.is_integer or type_ == "timestamp with time zone":
            return sql.Literal(value)
        # a local-time column compared with a local time: the column's index still answers it
        return sql.SQL("({}::timestamptz at time zone {})").format(sql.Literal(value), sql.Literal(self.timezone))

    def predicate(self, start, end) -> sql.Composable:
        """Rows whose cursor is in [start, end) (None: unbounded), plus NULL-cursor rows if nullable."""
        branches, nulls = [], []
        for name, type_ in zip(self.columns, self.types, strict=True):
            ident = sql.Identifier(name)
            cond = []
            if start is not None:
                cond.append(sql.SQL("{} >= {}").format(ident, self._bound(type_, start)))
            if end is not None:
                cond.append(sql.SQL("{} < {}").format(ident, self._bound(type_, end)))
            if not cond:
                return sql.SQL("true")
            branches.append(sql.SQL(" and ").join([*nulls, *cond]))
            nulls.append(sql.SQL("{} is null").format(ident))
        if self.nullable:
            branches.append(sql.SQL(" and ").join(nulls))
        return sql.SQL(" or ").join(sql.SQL("({})").format(b) for b in branches)


def source_timezone(src: psycopg.Connection) -> str:
    """The TimeZone the source database's sessions get by default: the database's own setting
    (`alter database ... set timezone`), else the session default (reset_val: server config or
    role), never what this session SET."""
    row = src.execute(
        """select coalesce(
               (select substr(cfg, strpos(cfg, '=') + 1)
                  from pg_db_role_setting s, unnest(s.setconfig) cfg
                 where s.setdatabase = (select oid from pg_database where datname = current_database())
                   and s.setrole = 0 and lower(split_part(cfg, '=', 1)) = 'timezone'),
               (select reset_val from pg_settings where name = 'TimeZone'))"""
    ).fetchone()
    src.rollback()
    return row[0]


# --- copy -------------------------------------------------------------------------------------


def copy_stream(
    src: psycopg.Connection,
    wh: psycopg.Connection,
    select: sql.Composable,
    target: sql.Composable,
    label: str,
    servers: tuple[str, str] = ("source", WAREHOUSE_CONN_ID),
    *,
    own_session: bool = False,
    freeze: bool = False,
) -> int:
    """Stream `COPY (select) TO STDOUT` from the source into `COPY target FROM STDIN`, binary; the
    number of rows written.

    Nothing is parsed into Python rows, so memory stays flat whatever the table size. With
    `own_session` (the select needs no snapshot of `src`'s) and a psql client on the machine, psql
    reads the source and this process forwards its output in pipe-sized chunks: libpq hands COPY
    data over one row per call, and on a 2-core machine the Python loop over rows costs the servers
    a third of their CPU. Otherwise the rows are read on `src` itself (its transaction, its snapshot).
    Either way the warehouse side is `wh`'s transaction. `freeze`: COPY ... (freeze), for a target
    created or truncated in that transaction. Logs progress every few seconds. A failure says which
    server broke (`servers`: the source's and the warehouse's connection ids).
    """
    copy_in = sql.SQL("copy {} from stdin (format binary{})").format(target, sql.SQL(", freeze" if freeze else ""))
    psql = psql_client() if own_session else None
    if psql:
        return _copy_via_psql(psql, src, wh, select, copy_in, label, servers)
    t0 = last = time.monotonic()
    copied = 0
    side = "source"  # who is talking when an error comes: reading rows is the source's part
    try:
        with src.cursor() as rc, wh.cursor() as wc:
            with rc.copy(sql.SQL("copy ({}) to stdout (format binary)").format(select)) as cin:
                with wc.copy(copy_in) as cout:
                    for chunk, chunk_rows in _chunks(cin, src.pgconn, WRITE_BUFFER_BYTES):
                        side = "warehouse"
                        cout.write(chunk)
                        side = "source"
                        copied += chunk_rows
                        if (now := time.monotonic()) - last >= PROGRESS_EVERY_S:
                            log.info(
                                "%s: %s rows copied so far (%s rows/s)",
                                label,
                                f"{copied:,}",
                                f"{copied / (now - t0):,.0f}",
                            )
                            last = now
                    side = "warehouse"  # the end of the COPY is the warehouse's
            rows = wc.rowcount
    except psycopg.Error as exc:
        conn_id = servers[0] if side == "source" else servers[1]
        raise ReplicationError(f"{_first_line(exc)} ({side}, connection {conn_id!r}, during COPY)") from exc
    src.rollback()
    return rows


def _chunks(cin: psycopg.Copy, pgconn: psycopg.pq.abc.PGconn, size: int) -> Iterator[tuple[bytearray, int]]:
    """The data of a COPY TO in chunks of about `size` bytes, each with its number of rows.

    libpq hands the data over one row per call, and `cin.read()` runs psycopg's wait loop for each:
    here the rows libpq already holds (most of them) are taken straight from it in a tight loop,
    and psycopg waits only when none is left (twice as fast). One write per chunk: a write per row
    costs twice the CPU. When the COPY ends, its final result is read: the server's error if the
    source failed.
    """
    get = pgconn.get_copy_data
    chunk, rows = bytearray(), 0
    while True:
        nbytes, data = get(1)  # 1: never block; 0: no whole row held yet; -1: the COPY ended
        if nbytes == 0:
            data = cin.read()  # waits for a row (the GIL released), or the end
            if not data:
                break
        elif nbytes < 0:
            result = pgconn.get_result()
            while pgconn.get_result() is not None:
                pass
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                raise psycopg.errors.error_from_result(result, encoding=cin.connection.info.encoding)
            break
        chunk += data
        rows += 1
        if len(chunk) >= size:
            yield chunk, rows
            chunk, rows = bytearray(), 0
    if chunk:
        yield chunk, rows


# Session settings that decide how the source renders values held as text (composites, enums...).
_SESSION_SETTINGS = ("TimeZone", "extra_float_digits", "DateStyle", "IntervalStyle", "bytea_output")


def psql_client() -> str | None:
    """The psql the copies read the source with: MEDALLION_PSQL (a path, or `off`), else psql on PATH."""
    chosen = os.environ.get("MEDALLION_PSQL", "")
    if chosen.lower() in ("off", "0", "no", "false"):
        return None
    return chosen or shutil.which("psql")


def _copy_via_psql(psql, src, wh, select, copy_in, label, servers) -> int:
    """copy_stream's psql reader: psql's stdout, a pipe, forwarded to the warehouse COPY as it comes.

    psql connects with src's connection parameters (password in its environment, never on the
    command line) and src's session settings. If this process dies (kill -9), psql's next write
    fails on the closed pipe and it exits; the warehouse transaction dies with our connection.
    """
    values = src.execute(
        sql.SQL("select {}").format(
            sql.SQL(", ").join(sql.SQL("current_setting({})").format(sql.Literal(n)) for n in _SESSION_SETTINGS)
        )
    ).fetchone()
    src.rollback()
    options = " ".join(
        f"-c {name}={value.replace(chr(92), chr(92) * 2).replace(' ', chr(92) + ' ')}"
        for name, value in zip(_SESSION_SETTINGS, values, strict=True)
    )
    env = {**os.environ, "PGAPPNAME": "medallion-copy"}
    if src.info.password:
        env["PGPASSWORD"] = src.info.password
    query = sql.SQL("copy ({}) to stdout (format binary)").format(select).as_string(src)
    t0 = last = time.monotonic()
    copied = 0
    side = "source"
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", _psql_conninfo(src, options), "-c", query],
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        try:
            _widen_pipe(proc.stdout.fileno())
            read = proc.stdout.read1
            with wh.cursor() as wc:
                with wc.copy(copy_in) as cout:
                    while chunk := read(PIPE_BYTES):
                        side = "warehouse"
                        cout.write(chunk)
                        side = "source"
                        copied += len(chunk)
                        if (now := time.monotonic()) - last >= PROGRESS_EVERY_S:
                            log.info("%s: %s MB copied so far (%s MB/s)", label, f"{copied / 1e6:,.0f}",
                                     f"{copied / 1e6 / (now - t0):,.1f}")  # fmt: skip
                            last = now
                    if proc.wait():  # the source failed: end the COPY with an error, nothing lands
                        errors.seek(0)
                        raise _PsqlFailed(_psql_error(errors.read().decode(errors="replace"), proc.returncode))
                    side = "warehouse"  # the end of COPY is the warehouse's
                rows = wc.rowcount
        except _PsqlFailed as exc:
            raise ReplicationError(f"{exc} (source, connection {servers[0]!r}, during COPY)") from None
        except psycopg.Error as exc:
            conn_id = servers[0] if side == "source" else servers[1]
            raise ReplicationError(f"{_first_line(exc)} ({side}, connection {conn_id!r}, during COPY)") from exc
        finally:
            if proc.poll() is None:  # the warehouse failed first: stop reading the source
                proc.kill()
            proc.wait()
            proc.stdout.close()
    return rows


# Connection parameters any psql (libpq >= 10) knows; psycopg's newer libpq lists more (sslcertmode...).
_PSQL_PARAMETERS = (
    "host", "hostaddr", "port", "dbname", "user", "passfile", "connect_timeout", "sslmode", "sslcert", "sslkey",
    "sslrootcert", "sslcrl", "sslcompression", "requirepeer", "target_session_attrs", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "options", "service",
)  # fmt: skip


def _psql_conninfo(src: psycopg.Connection, options: str) -> str:
    """src's connection parameters (not the password) for psql's -d, `options` added to its own."""
    params = {k: v for k, v in src.info.get_parameters().items() if k in _PSQL_PARAMETERS}
    params["options"] = f"{params.get('options', '')} {options}".strip()
    return psycopg.conninfo.make_conninfo(**params)


class _PsqlFailed(Exception):
    pass


def _psql_error(stderr: str, returncode: int) -> str:
    """psql's error as the server said it: `psql:...: ERROR:  division by zero` -> `division by zero`."""
    for line in stderr.splitlines():
        if m := re.search(r"(?:ERROR|FATAL):\s+(.*)", line):
            return m[1].strip()
    first = stderr.strip().splitlines()[0] if stderr.strip() else f"psql exited with status {returncode}"
    return first.removeprefix("psql: ").removeprefix("error: ")


def _widen_pipe(fd: int) -> None:
    """Ask for a 1 MB pipe (Linux; 64 kB by default): fewer wake-ups of this process per MB."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:
        pass


def _select_sql(
    spec: TableSpec,
    exprs: dict[str, sql.Composable],
    cursor: Cursor | None,
    start: datetime | int | None,
    end: datetime | int | None,
    windowed: bool = True,
) -> sql.Composable:
    """The source query of a load: the columns (cast where bronze holds another type) and the
    cursor; windowed (incremental): only rows in the cursor window, NULL-cursor rows included."""
    query = sql.SQL("select {cols}, {cursor} from {table}").format(
        cols=sql.SQL(", ").join(exprs.values()),
        cursor=cursor.expr() if cursor else sql.SQL("null::timestamptz"),
        table=sql.Identifier(spec.source_schema, spec.source_table),
    )
    if cursor and windowed and (start is not None or end is not None or cursor.nullable):
        query = sql.SQL("{} where {}").format(query, cursor.predicate(start, end))
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


def plan_ids(
    wh: psycopg.Connection, src: psycopg.Connection, spec: TableSpec, cursor: Cursor, since: datetime | None
) -> tuple[int | None, int, int | None]:
    """(first id, end id, bound of every id bronze holds) for an integer cursor's window.

    Ids are allocated when a row is inserted but become visible when its transaction commits, so a
    lower id can appear after a higher one was read. Each batch records the end of the ids it read
    (the source's max id + 1). A window starts at the end id of the newest batch that finished at
    or before `since` (the interval start minus the lookback): that batch read its max id before
    any transaction still open at `since` took its id, so every row committed late by a transaction
    shorter than the lookback is read again, as with timestamp cursors. In steady state this
    re-reads about one schedule period of ids (written once: the staged path skips known
    versions). No such batch (first load, a backfill of old intervals): all ids are read again.
    The window ends after the source's current max id; the reconciliation catches the rest.
    """
    start, bound = wh.execute(
        f"""select max(window_end_id) filter (where finished_at <= %(since)s), max(window_end_id)
              from {OPS_SCHEMA}.replication_batches
             where source = %(source)s and table_name = %(table)s and status = 'success' and mode = 'incremental'""",
        {"since": since, "source": spec.source, "table": spec.name},
    ).fetchone()
    top = src.execute(
        sql.SQL("select greatest({}) from {}").format(
            sql.SQL(", ").join(sql.SQL("max({})").format(sql.Identifier(c)) for c in cursor.columns),
            sql.Identifier(spec.source_schema, spec.source_table),
        )
    ).fetchone()[0]
    src.rollback()
    return (start if since is not None else None), (top or 0) + 1, bound


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
               rows_read, rows_written, seconds, status, error, dag_id, run_id, started_at,
               window_start_id, window_end_id)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
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
            result.window_start_id,
            result.window_end_id,
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
    # UTC, and float text that round-trips (types held as text, e.g. composites with a float)
    src.execute("set time zone 'UTC'; set extra_float_digits = 3")
    src.commit()
    lap = _laps()
    columns = source_columns(src, spec)
    cursor = Cursor.read(src, spec, columns)
    exprs, changes = sync_bronze_schema(wh, spec, columns, cursor.bronze_type if cursor else "timestamptz")
    for change in changes:
        log.info("%s: %s", spec.qualified, change)
    result = BatchResult(new_batch_id(), spec.name, "incremental", None, None, schema_changes=changes)
    result.timings["schema"] = lap()
    bronze = sql.Identifier(spec.bronze_schema, spec.name)
    columns_sql = sql.SQL(", ").join(sql.Identifier(c) for c in exprs)
    interval = (interval_start, interval_end)
    with _batch(wh, spec, result, started, interval, run, "load"):  # planned under the table's lock
        loaded_until, cursor_bound = load_bounds(wh, spec)
        mode, start, end = plan_window(spec, loaded_until, interval_start, interval_end, full_refresh, now or started)
        result.mode, result.window_start, result.window_end = mode, start, end
        read_from, read_to = start, end
        if mode == "incremental":
            cursor = cursor.without_nulls_in(src, spec)
        # A source key without a unique index may repeat a whole version: the same row twice, (key,
        # cursor) and all (two inserts of one transaction share its now()). Written twice, the copies
        # tie on (_cursor, _loaded_at) and silver's latest version would be both: such loads go
        # through the stage and write each version once.
        unique_key = key_is_unique(src, spec)
        nullable = cursor is not None and cursor.nullable
        if mode == "incremental" and cursor.is_integer:
            read_from, read_to, cursor_bound = plan_ids(wh, src, spec, cursor, start)
            result.window_start_id, result.window_end_id = read_from, read_to
        log.info("%s: %s load, window [%s, %s)", spec.qualified, mode, _fmt(read_from), _fmt(read_to))
        # Straight into bronze only when nothing read can already be there: the window starts after
        # every cursor bronze holds (NULL-cursor rows are re-read every run), or bronze is empty.
        # A window that starts before that bound and ends after it (the lookback of a caught-up
        # table) is split there: the part below goes through the stage, the rest straight in.
        direct = unique_key and (
            (read_from is not None and cursor_bound is not None and cursor_bound <= read_from and not nullable)
            or (cursor_bound is None and not _has_rows(wh, bronze))
        )
        split = (
            mode == "incremental" and unique_key and not direct and read_from is not None
            and cursor_bound is not None and read_from < cursor_bound < read_to
        )  # fmt: skip
        label = f"{spec.qualified} {_fmt(read_from)}..{_fmt(read_to)}"
        # psql reads whole tables (first loads, snapshots); a window of a loaded table is read on
        # the source connection: starting a process and a connection costs more than it saves there
        whole_table = mode != "incremental" or cursor_bound is None
        servers = (spec.source_conn_id, WAREHOUSE_CONN_ID)
        load = _Load(spec, src, wh, bronze, columns_sql, servers, label, whole_table, result, lap)
        result.timings["plan"] = lap()
        if mode == "incremental" and direct:
            result.path = "direct"
            with _first_load(wh, bronze, result.batch_id) if cursor_bound is None else nullcontext(False) as freeze:
                load.direct(_select_sql(spec, exprs, cursor, read_from, read_to), freeze=freeze)
            if cursor_bound is None:
                # A first load: statistics now, not when autovacuum gets to it, or the next run's merge
                # plans against an empty table and reads all of bronze instead of the window's BRIN
                # ranges (1M rows: 0.9s instead of 5ms). Only what that plan needs: the row count and
                # _cursor's correlation, from 3,000 sampled rows (a full analyze samples 30,000 and
                # costs ~10% of a 1M-row load); autovacuum still analyzes the whole table later.
                wh.execute("set local default_statistics_target = 10")  # until the batch commits
                wh.execute(sql.SQL("analyze {} (_cursor)").format(bronze))
                result.timings["merge"] = lap()
        elif split:
            result.path = "split"
            # the stage first: its anti-join then reads bronze's BRIN ranges before the direct rows
            load.staged(_select_sql(spec, exprs, cursor, read_from, cursor_bound), read_from, nullable, unique_key)
            load.direct(_select_sql(spec, exprs, replace(cursor, nullable=False), cursor_bound, read_to))
        else:
            select = _select_sql(spec, exprs, cursor, read_from, read_to, windowed=mode == "incremental")
            if mode == "incremental":
                result.path = "staged"
                load.staged(select, read_from, nullable, unique_key)
            else:
                result.path = "snapshot"
                load.snapshot(select, unique_key)
    result.timings["commit"] = lap()
    log.info(result.summary())
    return result


class _Load:
    """The warehouse side of one batch: COPYs of source selects into bronze (direct) or through a
    temp stage (staged: only unseen versions appended; snapshot: bronze replaced), adding up rows
    and the copy / merge times in the batch's result."""

    def __init__(self, spec, src, wh, bronze, columns, servers, label, own_session, result, lap):
        self.spec, self.src, self.wh, self.bronze, self.columns = spec, src, wh, bronze, columns
        self.servers, self.label, self.result, self.lap = servers, label, result, lap
        self.own_session = own_session  # copy_stream's: psql may read the source

    def _copy(self, select: sql.Composable, target: sql.Composable, freeze: bool, batch_id: bool = False) -> int:
        """COPY the select's rows into target's data columns and _cursor (and _batch_id: the select's
        last column)."""
        columns = sql.SQL("{} ({}, _cursor{})").format(target, self.columns, sql.SQL(", _batch_id" if batch_id else ""))
        rows = copy_stream(
            self.src, self.wh, select, columns, self.label, self.servers, own_session=self.own_session, freeze=freeze
        )
        self.result.rows_read += rows
        self._time("copy")
        return rows

    def _time(self, step: str) -> None:
        self.result.timings[step] = self.result.timings.get(step, 0.0) + self.lap()

    def direct(self, select: sql.Composable, freeze: bool = False) -> None:
        """COPY the select's rows into bronze. The stream carries `_batch_id`: bronze's default would
        cost a function call and a uuid parse per row (2M narrow rows: 1.97 s of the warehouse's time
        against 1.36 s). Not in a first load's COPY (freeze): that default is then a constant."""
        if not freeze:
            select = sql.SQL("select *, {} from ({}) as s").format(self._batch_id, select)
        self.result.rows_written += self._copy(select, self.bronze, freeze, batch_id=not freeze)

    @property
    def _batch_id(self) -> sql.Composable:
        return sql.SQL("{}::uuid").format(sql.Literal(self.result.batch_id))

    def _stage(self, select: sql.Composable) -> sql.Identifier:
        stage = sql.Identifier(f"_stage_{self.spec.name}"[:63])
        self.wh.execute(
            sql.SQL("create temp table {} on commit drop as select {}, _cursor from {} with no data").format(
                stage, self.columns, self.bronze
            )
        )
        self._copy(select, stage, freeze=True)  # the stage was created in this transaction
        self.wh.execute(sql.SQL("analyze {}").format(stage))
        return stage

    def _once(self, unique_key: bool) -> sql.Composable:
        pk = sql.SQL(", ").join(sql.Identifier(c) for c in self.spec.primary_key)
        return sql.SQL("" if unique_key else "distinct on ({}, _cursor)").format(pk)

    def staged(self, select: sql.Composable, read_from, nullable: bool, unique_key: bool) -> None:
        stage = self._stage(select)
        in_window = (
            sql.SQL("b._cursor >= {}").format(sql.Literal(read_from)) if read_from is not None else sql.SQL("true")
        )
        if nullable:
            in_window = sql.SQL("({} or b._cursor is null)").format(in_window)
        self.result.rows_written += self.wh.execute(
            _template("insert_new_versions").format(
                bronze=self.bronze,
                stage=stage,
                once=self._once(unique_key),
                columns=self.columns,
                pk_match=_pk_match(self.spec, "b", "s"),
                cursor_match=sql.SQL(
                    "b._cursor is not distinct from s._cursor" if nullable else "b._cursor = s._cursor"
                ),
                in_window=in_window,
                batch_id=self._batch_id,
            )
        ).rowcount
        self._time("merge")

    def snapshot(self, select: sql.Composable, unique_key: bool) -> None:
        stage = self._stage(select)
        cur = self.wh.execute(
            _template("replace_snapshot").format(
                bronze=self.bronze,
                stage=stage,
                once=self._once(unique_key),
                columns=self.columns,
                batch_id=self._batch_id,
            )
        )
        cur.nextset()  # the insert's row count (the first result is the delete's)
        self.result.rows_written += cur.rowcount
        self._time("merge")


def _laps():
    """A stopwatch: each call returns the seconds since the previous one (or since it was made)."""
    last = time.monotonic()

    def lap() -> float:
        nonlocal last
        now, before = time.monotonic(), last
        last = now
        return now - before

    return lap


def _brin_name(spec: TableSpec) -> str:
    """`<table>__cursor_brin`; a long table name is cut and given a hash, so that the index name
    (63 bytes at most) never equals the table's, nor another long table's index name."""
    name = f"{spec.name}__cursor_brin"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(spec.name.encode()).hexdigest()[:8]
    head = spec.name.encode()[:40].decode(errors="ignore")
    return f"{head}_{digest}__cursor_brin"


def _has_rows(wh: psycopg.Connection, bronze: sql.Identifier) -> bool:
    return wh.execute(sql.SQL("select exists (select from {})").format(bronze)).fetchone()[0]


@contextmanager
def _first_load(wh: psycopg.Connection, bronze: sql.Identifier, batch_id: str):
    """The COPY of a first load into the empty bronze table: yields whether it may use FREEZE.

    When it may (see _truncate_if_empty), bronze is locked for the batch anyway, so `_batch_id`'s
    default is the batch's id as a constant during the COPY: the per-transaction setting costs a
    function call and a uuid parse per row (see _Load.direct). The default is restored before the
    batch commits; a batch that fails rolls both changes back.
    """
    if not _truncate_if_empty(wh, bronze):
        yield False
        return
    default = sql.SQL("alter table {} alter column _batch_id set default {}")
    wh.execute(default.format(bronze, sql.Literal(batch_id)))
    yield True
    wh.execute(default.format(bronze, BATCH_ID_DEFAULT))


def _truncate_if_empty(wh: psycopg.Connection, bronze: sql.Identifier) -> bool:
    """Truncate the (empty) bronze table in the batch's transaction so that its first load may COPY
    with FREEZE; True when it did.

    A table truncated in the loading transaction gets its rows written frozen and all-visible: no
    later reader rewrites every page to set hint bits, no vacuum rewrites them to freeze, and the
    COPY itself skips the free-space map (narrow rows: ~25% less time, bench/copy_bench.py). Only
    for an empty table: TRUNCATE would discard rows, and it needs bronze's exclusive lock, taken
    with NOWAIT, before looking, so no row can arrive between the look and the truncate. A reader
    holding the table (dbt over the empty table) is not waited for: the load runs without FREEZE.
    The costs: readers that come later wait until the first load commits (they would have read an
    empty table), and, as FREEZE documents, a transaction whose snapshot predates the commit sees
    the rows.
    """
    try:
        with wh.transaction():  # a savepoint: a lock not granted leaves the batch as it was
            wh.execute(sql.SQL("lock table {} in access exclusive mode nowait").format(bronze))
            if _has_rows(wh, bronze):
                return False
            wh.execute(sql.SQL("truncate {}").format(bronze))
            return True
    except psycopg.errors.LockNotAvailable:
        log.info("%s is being read; its first load goes without FREEZE", bronze.as_string(wh))
        return False


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
        recorded = _record_failure(wh, result, spec, started, interval, run, exc)
        error = (
            exc
            if isinstance(exc, ConfigError)
            else ReplicationError(f"{spec.qualified}: {what} failed: {_first_line(exc)}")
        )
        # bronze.load_table records failures that are not in the ledger yet (on a fresh connection)
        error.failed_batch_id = result.batch_id if recorded else None
        if error is exc:
            raise
        raise error from exc


def _record_failure(wh, result, spec, started, interval, run, exc) -> bool:
    """Note a failed batch in the ledger, in its own transaction (the batch itself rolled back).

    False when it could not (the warehouse connection died with the batch).
    """
    try:
        if wh.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            wh.rollback()
        with wh.transaction():
            _record(wh, result, spec, "failed", started, interval, run, error=_first_line(exc))
        return True
    except psycopg.Error:
        log.exception("could not record the failed batch %s in the ledger", result.batch_id)
        return False
