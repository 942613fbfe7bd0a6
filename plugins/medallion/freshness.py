"""Freshness of the warehouse's tables against their SLAs: compute it, sync the SLAs, track incidents.

A table's SLA (warn/error age) is declared once, in the dbt project: a bronze table's in the sources
YAML (`TableSpec.freshness`), a gold table's in its model's `meta` (below).
Every check copies the SLAs into `ops.table_slas` and reads `ops.table_freshness`, the view on-call
queries too, so an email and the view always state the same facts. Incidents live in
`ops.freshness_incidents` (one open row per stale table): a check emails only when tables go stale
or get worse, and when they recover; state survives restarts and is shared by every worker.

Kinds of table: each kind declares its SLAs with one function here (`SLA_DECLARATIONS`) and its
freshness with one view in `include/sql/warehouse/002_freshness.sql`:

- bronze: age of the table's last successful load (newest `success` row of the replication ledger);
  SLA: the source table's `freshness` in the sources YAML.
- gold (and silver): age of the newest interval the table covers, not of its last rebuild: gold
  rebuilt five minutes ago from a silver that is a day behind is a day stale. Every dbt model whose
  `meta` declares `freshness` (the SLA) and `covered_by` (`{column, grain}`: a row with column = D
  covers [D, D + grain)) is checked; `dbt_project.yml` declares both for the whole `marts` folder, a
  model's YAML overrides them, so a new mart is checked without touching this code. They are read
  from the dbt manifest (`make manifest`), dbt's own merge of folder and model config. The kind is
  the model's schema: gold_* is gold, silver_* is silver. Silver's incremental facts declare
  `covered_by: _cursor` (in dbt_project.yml): the newest source change (bronze cursor) they hold,
  so silver that stopped building, or builds from a bronze that stopped loading, goes stale;
  silver's other models are rebuilt whole from bronze by the same build and need no SLA of their own.
  How: every check first measures `select max(<column>) from <schema>.<table>` (quoted
  identifiers, date and timestamp columns; covered until = max + one grain) into
  `ops.gold_coverage`, one short transaction per table with a lock timeout, then reads the view.
  Cheap (marts are aggregates), true to the data (a rebuild that lost days shows), works for
  builds outside Airflow too, and never holds a lock on a gold table while an email is sent. A
  table not built yet reads as stale ("never built"); one that cannot be measured (column gone)
  is stale and names the reason; while dbt swaps a table in, the previous measurement stands.
  The resolution is the grain: a daily mart covers "until tomorrow 00:00" as soon as today has
  data, so a gold that stops mid-day is stale by the next day's `warn_after`; bronze's hourly
  SLAs cover the hours in between.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from medallion import alerts, config, connections, outbox, quality, warehouse
from medallion.config import DBT_PROJECT_DIR, OPS_SCHEMA, ConfigError

log = logging.getLogger(__name__)

STALE = ("warn", "error")
# The dbt manifest the silver and gold DAGs are rendered from (transform.MANIFEST): gold SLAs come from it.
MANIFEST = config.DBT_MANIFEST
# covered_by grains: a row covers [value, value + grain); None: the column is the newest instant covered
GRAINS = {"hour": "1 hour", "day": "1 day", "week": "7 days", "month": "1 month"}
COVERED_BY_KEYS = {"column", "grain"}
FRESHNESS_KEYS = {"warn_after", "error_after"}
MODEL_KINDS = {"silver_": "silver", "gold_": "gold"}  # dbt schema prefix -> kind of table
# A check waits this long for a gold table's lock (dbt swapping the table in) before keeping the last measurement.
MEASURE_LOCK_TIMEOUT = "3s"
MEASURE_STATEMENT_TIMEOUT = "60s"


@dataclass(frozen=True)
class Sla:
    kind: str
    source: str
    table_name: str
    warn_after: timedelta | None
    error_after: timedelta | None
    declared_at: str
    covered_by: str | None = None  # gold: the column saying what period a row covers
    covered_grain: str | None = None  # gold: that period (GRAINS); None: the column is a timestamp

    @property
    def label(self) -> str:
        return label(self.kind, self.source, self.table_name)


def label(kind: str, source: str, table_name: str) -> str:
    """A table as emails name it: bronze tables by name (sources are few), gold ones with their schema."""
    return table_name if kind == "bronze" else f"{source}.{table_name}"


@dataclass(frozen=True)
class TableFreshness:
    """One row of ops.table_freshness (the columns the emails use)."""

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

    @property
    def label(self) -> str:
        return label(*self.key)


@dataclass(frozen=True)
class Recovery:
    """A closed incident: the table is fresh again (or no longer declared: row is None)."""

    key: tuple[str, str, str]
    opened_at: datetime
    worst: str
    row: TableFreshness | None

    @property
    def label(self) -> str:
        return label(*self.key)


@dataclass
class Change:
    """What one check found, compared with the open incidents."""

    rows: list[TableFreshness]
    opened: list[TableFreshness] = field(default_factory=list)  # stale now, not before
    worse: list[TableFreshness] = field(default_factory=list)  # warn before, error now
    recovered: list[Recovery] = field(default_factory=list)
    wh: psycopg.Connection | None = field(default=None, repr=False)  # inside tracking(): its transaction
    delivery: outbox.Delivery | None = None  # after tracking(): what its outbox drain sent

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
        for t in config.all_tables()
    ]


def gold_slas(manifest: Path | None = None, project_dir: Path = DBT_PROJECT_DIR) -> list[Sla]:
    return [s for s in model_slas(manifest, project_dir) if s.kind == "gold"]


def silver_slas(manifest: Path | None = None, project_dir: Path = DBT_PROJECT_DIR) -> list[Sla]:
    return [s for s in model_slas(manifest, project_dir) if s.kind == "silver"]


def model_slas(manifest: Path | None = None, project_dir: Path = DBT_PROJECT_DIR) -> list[Sla]:
    """Every dbt model whose meta declares `freshness`, from the manifest; ConfigError names file:line."""
    manifest = manifest or MANIFEST
    try:
        nodes = json.loads(manifest.read_text())["nodes"]
    except FileNotFoundError:
        raise ConfigError(f"dbt manifest not found: {manifest}; gold freshness SLAs are read from it, "
                          "create it with `make manifest`") from None  # fmt: skip
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{manifest}: not a readable dbt manifest ({exc}); rebuild it with `make manifest`") from None
    slas = []
    for node in sorted(nodes.values(), key=lambda n: n["unique_id"]):
        if node.get("resource_type") != "model" or not node.get("config", {}).get("enabled", True):
            continue
        meta = node.get("config", {}).get("meta") or node.get("meta") or {}
        if meta.get("freshness") is None:  # not declared, or opted out with freshness: null
            continue
        slas.append(_model_sla(node, meta, project_dir))
    return slas


def _model_sla(node: dict, meta: dict, project_dir: Path) -> Sla:
    model, schema = node["name"], node["schema"]
    table = node.get("alias") or model

    def where(key: str) -> str:
        return f"{_declared_at(node, key, project_dir)}: model {model}"

    fresh = meta["freshness"]
    if not isinstance(fresh, dict) or not fresh.keys() & FRESHNESS_KEYS or set(fresh) - FRESHNESS_KEYS:
        raise ConfigError(f"{where('freshness')}: meta.freshness needs warn_after and/or error_after "
                          f"({{count: N, period: minute|hour|day}}), got {fresh!r}")  # fmt: skip
    warn, error = (config._duration(fresh.get(k), where("freshness")) for k in ("warn_after", "error_after"))
    covered = meta.get("covered_by")
    if isinstance(covered, str):  # shorthand: a timestamp column
        covered = {"column": covered}
    if (not isinstance(covered, dict) or not isinstance(covered.get("column"), str) or not covered["column"]
            or set(covered) - COVERED_BY_KEYS or covered.get("grain") not in (None, *GRAINS)):  # fmt: skip
        got = "nothing" if covered is None else repr(meta.get("covered_by"))
        shape = f"{{column: <date or timestamp column>, grain: {'|'.join(GRAINS)}}}"
        raise ConfigError(f"{where('covered_by')}: meta.freshness needs meta.covered_by: {shape} "
                          f"(what period a row covers), got {got}")  # fmt: skip
    kind = next((k for prefix, k in MODEL_KINDS.items() if schema.startswith(prefix)), None)
    if kind is None:
        schemas = " or ".join(f"{prefix}*" for prefix in MODEL_KINDS)
        raise ConfigError(f"{where('freshness')}: meta.freshness is checked for silver and gold models only "
                          f"(schema {schemas}), this one builds in {schema}")  # fmt: skip
    return Sla(kind, schema, table, warn, error, _declared_at(node, "freshness", project_dir),
               covered_by=covered["column"], covered_grain=covered.get("grain"))  # fmt: skip


def _declared_at(node: dict, key: str, project_dir: Path) -> str:
    """file:line where a model's meta `key` comes from: its YAML, else dbt_project.yml, else its SQL file."""
    patch = node.get("patch_path")
    if patch:
        path = project_dir / patch.split("://", 1)[-1]
        data = config._read_yaml(path)
        for entry in data.get("models") or []:
            if isinstance(entry, dict) and entry.get("name") == node["name"]:
                for meta in ((entry.get("config") or {}).get("meta"), entry.get("meta")):
                    if isinstance(meta, dict) and key in meta:
                        value = meta[key]
                        return f"{path}:{value['__line__'] if isinstance(value, dict) else meta['__line__']}"
    path = project_dir / "dbt_project.yml"
    level, found = (config._read_yaml(path).get("models") or {}).get(node["fqn"][0]), None
    for part in node["fqn"][1:]:
        if not isinstance(level, dict):
            break
        meta = level.get("+meta")
        if isinstance(meta, dict) and key in meta:
            value = meta[key]
            found = value["__line__"] if isinstance(value, dict) else meta["__line__"]
        level = level.get(part)
    meta = level.get("+meta") if isinstance(level, dict) else None  # declared for the model itself
    if isinstance(meta, dict) and key in meta:
        value = meta[key]
        found = value["__line__"] if isinstance(value, dict) else meta["__line__"]
    if found is not None:
        return f"{path}:{found}"
    return str(project_dir / node["original_file_path"])


SLA_DECLARATIONS: dict[str, Callable[[], list[Sla]]] = {"bronze": bronze_slas, "silver": silver_slas,
                                                        "gold": gold_slas}  # fmt: skip


def schema_products(manifest: Path | None = None) -> dict[str, str]:
    """dbt schema -> the product whose models it holds (models/<layer>/<product>/), from the manifest."""
    try:
        nodes = json.loads((manifest or MANIFEST).read_text())["nodes"]
    except (OSError, ValueError, KeyError):
        return {}
    return {n["schema"]: n["fqn"][2] for n in nodes.values() if n["resource_type"] == "model" and len(n["fqn"]) > 3}


def product_of(kind: str, source: str) -> str | None:
    """The product a freshness row belongs to: bronze's source is the product; silver/gold by schema."""
    return source if kind == "bronze" else schema_products().get(source)


def by_product(change: Change) -> dict[str | None, Change]:
    """A check's news split per product, so each product's on-call gets the email about its tables."""
    parts: dict[str | None, Change] = {}

    def part(key: tuple[str, str, str]) -> Change:
        product = product_of(key[0], key[1])
        return parts.setdefault(product, Change(rows=[], wh=change.wh))

    for row in change.rows:
        part(row.key).rows.append(row)
    for row in change.opened:
        part(row.key).opened.append(row)
    for row in change.worse:
        part(row.key).worse.append(row)
    for rec in change.recovered:
        part(rec.key).recovered.append(rec)
    return {product: c for product, c in parts.items() if c.news}


# --- the warehouse side ----------------------------------------------------------------------


def prepare(wh: psycopg.Connection) -> None:
    """Create or update the ops tables and views, then sync the SLAs from the declarations (committed)."""
    with wh.transaction():
        warehouse.migrate(wh)
        sync_slas(wh)
        _remember_base_url(wh)


def _remember_base_url(wh: psycopg.Connection) -> None:
    """Airflow's UI address, for ops.table_freshness's links (the view cannot read Airflow's config)."""
    wh.execute(
        f"""insert into {OPS_SCHEMA}.settings as s (name, value) values ('airflow_base_url', %s)
            on conflict (name) do update set value = excluded.value, updated_at = now()
             where s.value <> excluded.value""",
        (alerts._base_url(),),
    )


def sync_slas(wh: psycopg.Connection) -> int:
    """Make ops.table_slas equal the declarations: upsert each SLA, drop tables no longer declared."""
    slas = [sla for declare in SLA_DECLARATIONS.values() for sla in declare()]
    with wh.cursor() as cur:
        cur.executemany(
            f"""insert into {OPS_SCHEMA}.table_slas
                    (kind, source, table_name, warn_after, error_after, declared_at, covered_by, covered_grain,
                     synced_at)
                values (%s, %s, %s, %s, %s, %s, %s, %s, now())
                on conflict (kind, source, table_name) do update
                   set warn_after = excluded.warn_after, error_after = excluded.error_after,
                       declared_at = excluded.declared_at, covered_by = excluded.covered_by,
                       covered_grain = excluded.covered_grain, synced_at = excluded.synced_at""",
            [(s.kind, s.source, s.table_name, s.warn_after, s.error_after, s.declared_at, s.covered_by,
              s.covered_grain) for s in slas],
        )  # fmt: skip
    wh.execute(
        f"""delete from {OPS_SCHEMA}.table_slas as t
             where t.kind = any(%s)
               and not exists (select from unnest(%s::text[], %s::text[], %s::text[]) as d(kind, source, table_name)
                                where (d.kind, d.source, d.table_name) = (t.kind, t.source, t.table_name))""",
        (list(SLA_DECLARATIONS), [s.kind for s in slas], [s.source for s in slas], [s.table_name for s in slas]),
    )
    return len(slas)


def measure_gold(wh: psycopg.Connection) -> None:
    """Measure what each silver and gold table covers into ops.gold_coverage (commits; one transaction per table).

    covered until = max(covered_by) + one grain, as UTC (a date D covers [D 00:00 UTC, D + grain)).
    A missing table, an empty one or one that cannot be measured gets covered_until null and the
    reason; a table dbt holds locked (swapping a rebuild in) keeps its previous measurement.
    """
    with wh.transaction():
        slas = wh.execute(
            f"""select source, table_name, covered_by, covered_grain from {OPS_SCHEMA}.table_slas
                 where covered_by is not null"""
        ).fetchall()
        wh.execute(
            f"""delete from {OPS_SCHEMA}.gold_coverage as c
                 where not exists (select from {OPS_SCHEMA}.table_slas as s
                                    where (s.source, s.table_name) = (c.source, c.table_name)
                                      and s.covered_by is not null)"""
        )
    for schema, table, column, grain in slas:
        try:
            with wh.transaction():
                wh.execute(f"set local lock_timeout = '{MEASURE_LOCK_TIMEOUT}'")
                wh.execute(f"set local statement_timeout = '{MEASURE_STATEMENT_TIMEOUT}'")
                wh.execute("set local timezone = 'UTC'")  # timestamptz::timestamp is then UTC wall time
                _record_coverage(wh, schema, table, *_coverage(wh, schema, table, column, grain))
        except psycopg.errors.LockNotAvailable:
            log.info("%s.%s is locked (dbt swapping a rebuild in?): its last measurement stands", schema, table)
        except psycopg.errors.QueryCanceled:  # keep what it covered, say why it is not measured now
            error = f"cannot measure: max({column}) took over {MEASURE_STATEMENT_TIMEOUT}"
            with wh.transaction():
                _record_coverage(wh, schema, table, None, None, error, keep=True)
        except psycopg.Error as exc:  # one table's problem (e.g. no privilege) must not blind the whole check
            if wh.closed or wh.broken:
                raise
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            with wh.transaction():
                _record_coverage(wh, schema, table, None, None, f"cannot measure {schema}.{table}: {reason}")


def _record_coverage(wh: psycopg.Connection, schema: str, table: str, covered_until: datetime | None,
                     newest: str | None, error: str | None, keep: bool = False) -> None:  # fmt: skip
    """Upsert one table's measurement; keep=True leaves its last covered_until as it was."""
    wh.execute(
        f"""insert into {OPS_SCHEMA}.gold_coverage as c
                (source, table_name, covered_until, newest, error, failing_since, measured_at)
            values (%(s)s, %(t)s, %(until)s, %(newest)s, %(error)s,
                    case when %(error)s::text is not null then now() end, now())
            on conflict (source, table_name) do update
               set covered_until = case when %(keep)s then c.covered_until else excluded.covered_until end,
                   newest = case when %(keep)s then c.newest else excluded.newest end,
                   error = excluded.error, measured_at = excluded.measured_at,
                   failing_since = case when excluded.error is null then null
                                        else coalesce(c.failing_since, excluded.failing_since) end""",
        {"s": schema, "t": table, "until": covered_until, "newest": newest, "error": error, "keep": keep},
    )


def _coverage(wh: psycopg.Connection, schema: str, table: str, column: str,
              grain: str | None) -> tuple[datetime | None, str | None, str | None]:  # fmt: skip
    """(covered until, newest value, error) of one silver or gold table."""
    relation = f"{schema}.{table}"
    if wh.execute("select to_regclass(%s)", (sql.Identifier(schema, table).as_string(wh),)).fetchone()[0] is None:
        return None, None, f"never built: {relation} does not exist"
    found = wh.execute(
        """select format_type(a.atttypid, null) from pg_attribute as a
            where a.attrelid = to_regclass(%s) and a.attname = %s and a.attnum > 0 and not a.attisdropped""",
        (sql.Identifier(schema, table).as_string(wh), column),
    ).fetchone()
    if found is None:
        return None, None, f"cannot measure: {relation} has no column {column} (meta.covered_by)"
    if found[0] not in ("date", "timestamp without time zone", "timestamp with time zone"):
        return None, None, f"cannot measure: {relation}.{column} is {found[0]}, covered_by needs a date or timestamp"
    step = GRAINS.get(grain or "", "0")
    until, newest = wh.execute(
        sql.SQL("select (max({c})::timestamp + {step}::interval) at time zone 'UTC', max({c})::text from {t}").format(
            c=sql.Identifier(column), step=sql.Literal(step), t=sql.Identifier(schema, table)
        )
    ).fetchone()
    if until is None:
        return None, None, f"no rows: {relation} is empty"
    return until, newest, None


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
def tracking(notified_by: str, close_recovered: bool = True, incidents: bool = True) -> Iterator[Change]:
    """Evaluate freshness and record incidents in one transaction, serialized across workers.

    Put the alerts into the outbox inside the `with` block (`outbox.enqueue(change.wh, ...)`): they
    commit with the incident changes, and are sent when the block ends (`change.delivery`), with
    any older alert still waiting. An error inside the block rolls everything back. Raises
    FreshnessUnavailable, before the block runs, when the warehouse cannot answer.
    incidents=False: read freshness only; the caller may `record()` itself.
    """
    with ExitStack() as stack:
        try:
            wh = stack.enter_context(connections.connect_airflow(config.WAREHOUSE_CONN_ID, "medallion-freshness"))
            prepare(wh)
            measure_gold(wh)
        except (psycopg.Error, connections.ConnectionFailed, ConfigError) as exc:
            raise _unavailable(exc) from exc
        with wh.transaction():
            try:
                wh.execute("select pg_advisory_xact_lock(hashtextextended('medallion:freshness', 0))")
                rows = read(wh)
                change = record(wh, rows, notified_by, close_recovered) if incidents else Change(rows=rows)
            except psycopg.Error as exc:
                raise _unavailable(exc) from exc
            change.wh = wh
            yield change
        change.wh = None
        change.delivery = outbox.drain(wh)  # after the commit: the incidents stand even if SMTP is down


def _unavailable(exc: Exception) -> FreshnessUnavailable:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return FreshnessUnavailable(f"cannot read freshness from the warehouse: {reason}")


# --- holes in the loaded intervals -----------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """One hole in a bronze table's loaded intervals (a row of ops.replication_gaps)."""

    source: str
    table_name: str
    gap_start: datetime
    gap_end: datetime
    first_interval: datetime
    last_interval: datetime
    intervals: int
    backfill_command: str


@dataclass
class GapNews:
    opened: dict[tuple[str, str], list[Gap]] = field(default_factory=dict)  # new holes (with all current ones)
    recovered: dict[tuple[str, str], datetime] = field(default_factory=dict)  # all loaded now: since when open


def record_gaps(wh: psycopg.Connection) -> GapNews:
    """Open, update and close ops.gap_incidents to match ops.replication_gaps (caller's transaction).

    A table is news when it has a hole not announced before (a new incident, or a hole outside the
    ones its open incident announced), and when every hole is loaded (recovered).
    """
    with wh.cursor(row_factory=class_row(Gap)) as cur:
        gaps = cur.execute(
            f"""select source, table_name, gap_start, gap_end, first_interval, last_interval, intervals,
                       backfill_command
                  from {OPS_SCHEMA}.replication_gaps"""
        ).fetchall()
    by_table: dict[tuple[str, str], list[Gap]] = {}
    for gap in gaps:
        by_table.setdefault((gap.source, gap.table_name), []).append(gap)
    # the holes as one multirange, from two arrays (starts, ends)
    now_gaps = """select range_agg(tstzrange(s, e))
                    from unnest(%s::timestamptz[], %s::timestamptz[]) as g(s, e)"""
    news = GapNews()
    open_incidents = {
        (source, table): opened_at
        for source, table, opened_at in wh.execute(
            f"select source, table_name, opened_at from {OPS_SCHEMA}.gap_incidents where closed_at is null for update"
        )
    }
    for key, holes in sorted(by_table.items()):
        starts, ends = [g.gap_start for g in holes], [g.gap_end for g in holes]
        if key not in open_incidents:
            wh.execute(
                f"insert into {OPS_SCHEMA}.gap_incidents (source, table_name, gaps) values (%s, %s, ({now_gaps}))",
                (*key, starts, ends),
            )
            news.opened[key] = holes
            continue
        announced = wh.execute(
            f"""select gaps @> ({now_gaps}) from {OPS_SCHEMA}.gap_incidents
                 where (source, table_name) = (%s, %s) and closed_at is null""",
            (starts, ends, *key),
        ).fetchone()[0]
        wh.execute(
            f"""update {OPS_SCHEMA}.gap_incidents set gaps = ({now_gaps})
                 where (source, table_name) = (%s, %s) and closed_at is null""",
            (starts, ends, *key),
        )
        if not announced:
            news.opened[key] = holes
    for key, opened_at in sorted(open_incidents.items()):
        if key not in by_table:
            wh.execute(
                f"""update {OPS_SCHEMA}.gap_incidents set closed_at = now()
                     where (source, table_name) = (%s, %s) and closed_at is null""",
                key,
            )
            news.recovered[key] = opened_at
    return news


def check(strict: bool = True) -> dict:
    """The freshness task: email when tables go stale, get worse or recover; log a warning while stale.

    The same check also emails holes in bronze's loaded intervals (ops.replication_gaps), recovered
    failure problems (ops.failure_problems), and sends every alert still waiting in the outbox.
    Stale data never fails the task (that would mark a successful load failed). A check that cannot
    run or email (warehouse or SMTP down) fails when strict, so it retries and shows; with
    strict=False (the check at the end of a load) it only logs. Either way the news is kept in the
    outbox (or, warehouse down, not recorded at all) and the next check sends it.
    """
    try:
        with tracking(notified_by="freshness check") as change:
            for product, news in by_product(change).items():  # one email per product, to its on-call
                outbox.enqueue(change.wh, alerts.freshness_email(news, product), "freshness")
            gaps = record_gaps(change.wh)
            for key, holes in gaps.opened.items():
                outbox.enqueue(change.wh, alerts.gap_email(*key, holes), "gap")
            for key, opened_at in gaps.recovered.items():
                outbox.enqueue(change.wh, alerts.gap_recovered_email(*key, opened_at), "gap")
            # rejection spikes in validated silver models (medallion.quality): once per incident, then recovery
            dq = quality.record(change.wh)
            quality.enqueue_news(change.wh, dq)
            recovered = alerts.close_recovered_problems(change.wh)
            for _, email in recovered:
                outbox.enqueue(change.wh, email, "recovered")
    except Exception as exc:
        if strict:
            raise
        log.error("freshness not checked or not emailed, left to the next check: %s", alerts.first_line(exc))
        return {"error": alerts.first_line(exc)}
    undelivered = None
    if change.delivery.undelivered:  # SMTP down: fail (strict), so the outage shows and the task retries
        undelivered = outbox.AlertsUndelivered(
            f"{change.delivery.waiting} alert(s) not sent, kept in {OPS_SCHEMA}.alert_outbox and retried by the "
            f"next checks: {change.delivery.error}"
        )
        if strict:
            raise undelivered
        log.error("%s", undelivered)
    for row in change.stale:
        seen = "last load" if row.kind == "bronze" else "covers until"
        log.warning("%s %s is stale (%s): %s %s, age %s, SLA warn %s / error %s%s", row.kind, row.label, row.status,
                    seen, row.last_load_at, row.age, row.warn_after, row.error_after,
                    f" ({row.last_error})" if row.last_error else "")  # fmt: skip
    if not change.stale:
        log.info("all %d tables are within their SLA", len(change.rows))
    return {
        "stale": [r.label for r in change.stale],
        "opened": [r.label for r in change.opened],
        "worse": [r.label for r in change.worse],
        "recovered": [r.label for r in change.recovered],
        "emailed": change.news,
        "gaps": sorted(f"{s}.{t}" for s, t in gaps.opened),
        "gaps_recovered": sorted(f"{s}.{t}" for s, t in gaps.recovered),
        "problems_recovered": [label for label, _ in recovered],
        "quality": sorted(f"{a.product}:{a.table}" for a, _ in dq.opened),
        "quality_recovered": sorted(f"{a.product}:{a.table}" for a, _, _ in dq.recovered),
        "alerts_sent": len(change.delivery.sent),
    } | ({"error": alerts.first_line(undelivered)} if undelivered else {})
