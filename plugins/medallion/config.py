"""The table declarations: read once from the dbt sources YAML, validated, with file:line errors.

Every replicated table is declared in `include/dbt/models/**/_*__sources.yml` (a dbt source with
`meta.replication`); replication, dbt and the freshness checks all read that one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = ROOT / "include"
DBT_PROJECT_DIR = INCLUDE_DIR / "dbt"
SQL_DIR = INCLUDE_DIR / "sql"
# Airflow pools the DAGs use, created by every deployment path (`airflow pools import <file>`).
POOLS_FILE = INCLUDE_DIR / "airflow" / "pools.json"

# Airflow connection ids. The source connection id is per source, in the YAML.
WAREHOUSE_CONN_ID = os.environ.get("MEDALLION_WAREHOUSE_CONN_ID", "warehouse")
SMTP_CONN_ID = os.environ.get("MEDALLION_SMTP_CONN_ID", "smtp_default")
OPS_SCHEMA = "ops"

MODES = ("incremental", "full")
REPLICATION_KEYS = {
    "source_conn_id",
    "source_schema",
    "primary_key",
    "cursor",
    "mode",
    "lookback_minutes",
    "reconcile_deletes",
}
PERIODS = {"minute": 60, "hour": 3600, "day": 86400}
# Re-read this much before each window when a table declares no lookback_minutes: a row is missed
# only if its transaction ran longer than this (see README, "How bronze works").
DEFAULT_LOOKBACK_MINUTES = 15


class ConfigError(ValueError):
    """A table declaration is wrong; the message names file:line and the table."""


@dataclass(frozen=True)
class Freshness:
    warn_after: timedelta | None
    error_after: timedelta | None


@dataclass(frozen=True)
class TableSpec:
    source: str  # dbt source name, e.g. "supabase"
    name: str  # table name in the source (and in bronze)
    source_conn_id: str
    source_schema: str
    bronze_schema: str
    primary_key: tuple[str, ...]  # empty: no key (full mode only)
    cursor: str | None  # the cursor column (None: full mode without a cursor)
    mode: str
    lookback: timedelta
    reconcile_deletes: bool
    freshness: Freshness
    declared_at: str  # file:line
    # `cursor: [updated_at, created_at]`: where the cursor is NULL the next column is the cursor
    # (coalesce), so rows never updated (NULL updated_at) are loaded by their created_at.
    cursor_fallback: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.bronze_schema}.{self.name}"

    @property
    def cursor_columns(self) -> tuple[str, ...]:
        return (self.cursor, *self.cursor_fallback) if self.cursor else ()


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping (as key '__line__')."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.load(path.read_text(), Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError(f"{path}:{line}: invalid YAML: {exc.problem or exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return data if isinstance(data, dict) else {}


def _duration(value, where: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return timedelta(seconds=int(value["count"]) * PERIODS[value["period"]])
    except (KeyError, TypeError, ValueError):
        shown = {k: v for k, v in value.items() if k != "__line__"} if isinstance(value, dict) else value
        raise ConfigError(f"{where}: freshness needs {{count: N, period: minute|hour|day}}, got {shown!r}") from None


def _freshness(config: dict, default: Freshness, where: str) -> Freshness:
    if "freshness" not in config:
        return default
    f = config["freshness"] or {}
    return Freshness(_duration(f.get("warn_after"), where), _duration(f.get("error_after"), where))


def _ident_list(value, where: str, key: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not items or not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(f"{where}: {key} must be a column name or a non-empty list of column names")
    return tuple(items)


def _table_spec(source: dict, table: dict, path: Path) -> TableSpec:
    name = table.get("name")
    where = f"{path}:{table['__line__']}: table {source['name']}.{name}"
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}:{table['__line__']}: a table in source {source['name']} has no name")
    src_cfg, tbl_cfg = source.get("config") or {}, table.get("config") or {}
    defaults = (src_cfg.get("meta") or {}).get("replication") or {}
    own = (tbl_cfg.get("meta") or {}).get("replication") or {}
    for key in set(own) | set(defaults):
        if key != "__line__" and key not in REPLICATION_KEYS:
            raise ConfigError(
                f"{where}: unknown replication setting {key!r} (known: {', '.join(sorted(REPLICATION_KEYS))})"
            )
    rep = {**defaults, **own}
    mode = rep.get("mode", "incremental")
    if mode not in MODES:
        raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    # Full mode needs no cursor: it uses one only when the table itself declares it (a source-level
    # default cursor the table may not even have is not inherited).
    cursor = rep.get("cursor") if mode == "incremental" else own.get("cursor")
    if mode == "incremental" and not cursor:
        raise ConfigError(f"{where}: incremental mode needs a cursor column (e.g. cursor: updated_at)")
    cursors = _ident_list(cursor, where, "cursor") if cursor else ()
    for key in ("source_conn_id", "source_schema"):
        if not isinstance(rep.get(key), str) or not rep[key]:
            raise ConfigError(f"{where}: replication setting {key} is missing")
    if "primary_key" not in rep:
        raise ConfigError(f"{where}: replication setting primary_key is missing")
    if mode == "full" and not rep["primary_key"]:
        primary_key = ()  # a snapshot needs no key: `primary_key: []` declares a table without one
    else:
        primary_key = _ident_list(rep["primary_key"], where, "primary_key")
    try:
        lookback = timedelta(minutes=float(rep.get("lookback_minutes", DEFAULT_LOOKBACK_MINUTES)))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: lookback_minutes must be a number, got {rep['lookback_minutes']!r}") from None
    default_fresh = _freshness(src_cfg, Freshness(None, None), where)
    return TableSpec(
        source=source["name"],
        name=name,
        source_conn_id=rep["source_conn_id"],
        source_schema=rep["source_schema"],
        bronze_schema=source.get("schema") or f"bronze_{source['name']}",
        primary_key=primary_key,
        cursor=cursors[0] if cursors else None,
        mode=mode,
        lookback=lookback,
        reconcile_deletes=bool(rep.get("reconcile_deletes", mode == "incremental")) and mode == "incremental",
        freshness=_freshness(tbl_cfg, default_fresh, where),
        declared_at=f"{path}:{table['__line__']}",
        cursor_fallback=cursors[1:],
    )


def load_tables(paths: list[Path] | None = None) -> dict[str, TableSpec]:
    """All replicated tables, keyed by table name. Raises ConfigError naming file:line."""
    paths = paths if paths is not None else sorted(DBT_PROJECT_DIR.glob("models/**/_*__sources.yml"))
    tables: dict[str, TableSpec] = {}
    for path in paths:
        for source in _read_yaml(path).get("sources") or []:
            replication = ((source.get("config") or {}).get("meta") or {}).get("replication")
            if replication is None:
                continue  # a dbt source we do not replicate
            for table in source.get("tables") or []:
                spec = _table_spec(source, table, path)
                if spec.name in tables:
                    raise ConfigError(
                        f"{spec.declared_at}: table {spec.name} is already declared at {tables[spec.name].declared_at}"
                    )
                tables[spec.name] = spec
    if not tables:
        raise ConfigError(f"no replicated tables declared (looked in {', '.join(map(str, paths)) or DBT_PROJECT_DIR})")
    return tables


@cache
def tables() -> dict[str, TableSpec]:
    """The declared tables (cached: parse-time code calls this on every DAG file parse)."""
    return load_tables()


def get_table(name: str, declared: dict[str, TableSpec] | None = None) -> TableSpec:
    declared = declared if declared is not None else tables()
    if name not in declared:
        raise ConfigError(f"unknown table {name!r}: declared tables are {', '.join(sorted(declared))}")
    return declared[name]


def sources() -> dict[str, list[TableSpec]]:
    """Declared tables grouped by source name."""
    grouped: dict[str, list[TableSpec]] = {}
    for spec in tables().values():
        grouped.setdefault(spec.source, []).append(spec)
    return grouped


def connection_ids() -> set[str]:
    """Every Airflow connection id the bundle reads."""
    return {WAREHOUSE_CONN_ID, SMTP_CONN_ID} | {t.source_conn_id for t in tables().values()}
