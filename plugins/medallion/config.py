"""Products and their table declarations: read from YAML, validated, with one-line file:line errors.

A product is a folder name id (snake_case) with
- `include/products/<product>.yml`: description, owner, source connection, on-call, schedules, dbt jobs;
- its tables in `include/dbt/models/staging/<product>/_<product>__sources.yml` (a dbt source named
  like the product, with `meta.replication`): replication, dbt and the freshness checks read that one
  place.
No Python or DAG file lists products or tables: the DAG files generate one DAG per product and layer.
`python -m medallion.config pools` prints the Airflow pools every product needs (JSON).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = ROOT / "include"
DBT_PROJECT_DIR = INCLUDE_DIR / "dbt"
DBT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"  # `make manifest` (dbt parse) writes it
SQL_DIR = INCLUDE_DIR / "sql"
PRODUCTS_DIR = INCLUDE_DIR / "products"
# The Airflow pools the DAGs use are generated from the product declarations (`python -m
# medallion.config pools > FILE`, `pools()`) and imported by every deployment path (`airflow pools
# import FILE`: compose's airflow-init, the local stack, the tests).

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
    "source_table",
}
PERIODS = {"minute": 60, "hour": 3600, "day": 86400}
# Re-read this much before each window when a table declares no lookback_minutes: a row is missed
# only if its transaction ran longer than this (see README, "How bronze works").
DEFAULT_LOOKBACK_MINUTES = 15


log = logging.getLogger(__name__)

# A product id names folders, schemas (bronze_<product>), DAGs and pools: snake_case only.
PRODUCT_ID = re.compile(r"^[a-z][a-z0-9_]*$")
DBT_LAYERS = ("silver", "gold")
PRODUCT_KEYS = {"description", "owner", "source_conn_id", "alert_emails", "schedules", "dbt_jobs"}
SCHEDULE_KEYS = {"bronze", "reconcile"}
JOB_KEYS = {"layer", "schedule", "after", "select"}


class ConfigError(ValueError):
    """A product or table declaration is wrong; the message names file:line and the product or table."""


@dataclass(frozen=True)
class Freshness:
    warn_after: timedelta | None
    error_after: timedelta | None


@dataclass(frozen=True)
class TableSpec:
    source: str  # the product id = its dbt source name, e.g. "browser_infra"
    name: str  # the table's name in bronze (and in dbt): unique within its product
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
    # its name in the source: `name`, less a `<source_schema>__` prefix (`auth__users` is auth.users,
    # beside public's `users`), or meta.replication.source_table
    source_table: str = ""

    @property
    def product(self) -> str:
        return self.source

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


def _table_spec(source: dict, table: dict, path: Path, source_conn_id: str | None = None) -> TableSpec:
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
    if source_conn_id and not rep.get("source_conn_id"):
        rep["source_conn_id"] = source_conn_id  # the product's connection (include/products/<product>.yml)
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
    source_table = rep.get("source_table") or name.removeprefix(f"{rep['source_schema']}__")
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
        source_table=source_table,
    )


def _sources_files(product_id: str) -> list[Path]:
    return sorted((DBT_PROJECT_DIR / "models" / "staging" / product_id).glob("_*__sources.yml"))


def load_tables(
    paths: list[Path] | None = None, product_id: str | None = None, source_conn_id: str | None = None
) -> dict[str, TableSpec]:
    """One product's replicated tables, keyed by bronze table name. Raises ConfigError naming file:line.

    Every dbt source in the files must be named like the product and live in `bronze_<product>`, so
    two products' tables can never meet in one schema.
    """
    if paths is None:
        if product_id is None:
            raise ValueError("load_tables needs paths or a product id")
        paths = _sources_files(product_id)
    tables: dict[str, TableSpec] = {}
    for path in paths:
        for source in _read_yaml(path).get("sources") or []:
            replication = ((source.get("config") or {}).get("meta") or {}).get("replication")
            if replication is None:
                continue  # a dbt source we do not replicate
            where = f"{path}:{source.get('__line__', 0)}"
            if product_id is not None:
                if source.get("name") != product_id:
                    raise ConfigError(
                        f"{where}: source {source.get('name')!r} must be named like its product {product_id!r}"
                    )
                if source.get("schema", f"bronze_{product_id}") != f"bronze_{product_id}":
                    raise ConfigError(f"{where}: source {product_id} must live in schema bronze_{product_id}, "
                                      f"not {source.get('schema')!r}")  # fmt: skip
            for table in source.get("tables") or []:
                spec = _table_spec(source, table, path, source_conn_id)
                if spec.name in tables:
                    raise ConfigError(
                        f"{spec.declared_at}: table {spec.source}.{spec.name} is already declared at "
                        f"{tables[spec.name].declared_at}"
                    )
                tables[spec.name] = spec
    if not tables:
        looked = (
            ", ".join(map(str, paths)) or f"{DBT_PROJECT_DIR}/models/staging/{product_id}/_{product_id}__sources.yml"
        )
        raise ConfigError(f"product {product_id}: no replicated tables declared (looked in {looked})")
    return tables


# --- products -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DbtJob:
    """A dbt build of one layer of a product: its DAG is `<name>_<product>` (silver_browser_infra)."""

    name: str
    layer: str  # silver | gold: which thin DAG file generates it
    schedule: str | None  # cron of its data intervals; None (`schedule: null`): manual runs only
    after: str | None  # also run when this job (or bronze) of the product has published its asset
    select: tuple[str, ...]  # dbt selection (union of the items)


@dataclass(frozen=True)
class Product:
    id: str
    description: str
    owner: str
    source_conn_id: str
    alert_emails: tuple[str, ...]
    schedules: dict[str, str]  # bronze, reconcile
    dbt_jobs: tuple[DbtJob, ...]
    tables: dict[str, TableSpec]
    declared_at: str  # the product file

    @property
    def bronze_schema(self) -> str:
        return f"bronze_{self.id}"

    @property
    def dbt_pool(self) -> str:
        """One dbt build of this product at a time (a gold build never reads silver mid-rebuild)."""
        return f"medallion_dbt_{self.id}"

    def dag_id(self, job: str) -> str:
        return f"{job}_{self.id}"


def product_ids() -> list[str]:
    """Every declared product: the file names of include/products/*.yml."""
    return sorted(p.stem for p in PRODUCTS_DIR.glob("*.yml"))


def _str_list(value, where: str, key: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if items is None:
        return ()
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(f"{where}: {key} must be a string or a list of strings")
    return tuple(items)


def _cron(value, where: str, key: str) -> str:
    if not isinstance(value, str) or len(value.split()) not in (5, 6):
        raise ConfigError(f"{where}: {key} must be a cron expression like '0 * * * *', got {value!r}")
    return value


def load_product(product_id: str) -> Product:
    """One product from its files. Raises ConfigError naming file:line and the product."""
    path = PRODUCTS_DIR / f"{product_id}.yml"
    if not PRODUCT_ID.match(product_id):
        raise ConfigError(f"{path}:1: product id {product_id!r} must be snake_case (a-z, 0-9, _)")
    data = _read_yaml(path)
    top = f"{path}:{data.get('__line__', 1)}: product {product_id}"
    unknown = sorted(set(data) - PRODUCT_KEYS - {"__line__"})
    if unknown:
        raise ConfigError(f"{top}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(PRODUCT_KEYS))})")
    for key in ("owner", "source_conn_id"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(f"{top}: {key} is missing")
    schedules = data.get("schedules") or {}
    where = f"{path}:{schedules.get('__line__', data['__line__'])}: product {product_id}"
    for key in set(schedules) - SCHEDULE_KEYS - {"__line__"}:
        raise ConfigError(f"{where}: unknown schedule {key!r} (known: {', '.join(sorted(SCHEDULE_KEYS))})")
    if "bronze" not in schedules:
        raise ConfigError(f"{where}: schedules.bronze is missing")
    crons = {k: _cron(v, where, f"schedules.{k}") for k, v in schedules.items() if k != "__line__"}
    jobs = []
    for name, job in (data.get("dbt_jobs") or {}).items():
        if name == "__line__":
            continue
        line = job.get("__line__", 0) if isinstance(job, dict) else data["__line__"]
        where = f"{path}:{line}: product {product_id} job {name}"
        if not isinstance(job, dict):
            raise ConfigError(f"{where}: a dbt job is a mapping of {', '.join(sorted(JOB_KEYS))}")
        for key in set(job) - JOB_KEYS - {"__line__"}:
            raise ConfigError(f"{where}: unknown setting {key!r} (known: {', '.join(sorted(JOB_KEYS))})")
        layer = job.get("layer", name)
        if layer not in DBT_LAYERS:
            raise ConfigError(f"{where}: layer must be one of {', '.join(DBT_LAYERS)}, got {layer!r}")
        after = job.get("after")
        if after is not None and after != "bronze" and after not in (data.get("dbt_jobs") or {}):
            raise ConfigError(f"{where}: after must be bronze or another dbt job of the product, got {after!r}")
        select = _str_list(job.get("select"), where, "select")
        if not select:
            raise ConfigError(f"{where}: select is missing (a dbt selection, e.g. tag:{product_id})")
        # `schedule: null` (written out: a forgotten schedule stays an error) is a job run on demand only,
        # e.g. retail's platinum views: never by a schedule, nor by an upstream's asset.
        manual = "schedule" in job and job["schedule"] is None
        if manual and after is not None:
            raise ConfigError(f"{where}: a manual-only job (schedule: null) cannot run after {after!r}")
        schedule = None if manual else _cron(job.get("schedule"), where, "schedule")
        jobs.append(DbtJob(name, layer, schedule, after, select))
    return Product(
        id=product_id,
        description=" ".join(str(data.get("description") or "").split()),
        owner=data["owner"],
        source_conn_id=data["source_conn_id"],
        alert_emails=_str_list(data.get("alert_emails"), top, "alert_emails"),
        schedules=crons,
        dbt_jobs=tuple(jobs),
        tables=load_tables(product_id=product_id, source_conn_id=data["source_conn_id"]),
        declared_at=str(path),
    )


@cache
def product(product_id: str) -> Product:
    """A declared product (cached: parse-time code calls this on every DAG file parse)."""
    if product_id not in product_ids():
        raise ConfigError(f"unknown product {product_id!r}: declared products are {', '.join(product_ids())}")
    return load_product(product_id)


def products() -> dict[str, Product]:
    """Every product that loads; a broken one is logged and left out, so it never stops the others
    (its DAGs show its error, dags/*.py)."""
    loaded = {}
    for product_id in product_ids():
        try:
            loaded[product_id] = product(product_id)
        except ConfigError as exc:
            log.error("product %s left out: %s", product_id, exc)
    return loaded


def tables(product_id: str) -> dict[str, TableSpec]:
    """One product's tables, keyed by bronze table name."""
    return product(product_id).tables


def all_tables() -> list[TableSpec]:
    """Every table of every product that loads."""
    return [spec for p in products().values() for spec in p.tables.values()]


def get_table(product_id: str, name: str) -> TableSpec:
    declared = tables(product_id)
    if name not in declared:
        raise ConfigError(
            f"unknown table {name!r} of product {product_id}: declared tables are {', '.join(sorted(declared))}"
        )
    return declared[name]


def find_table(product_id: str | None, name: str | None) -> TableSpec | None:
    """The table if declared (alerts: a best-effort lookup that never raises)."""
    try:
        return product(product_id).tables.get(name) if product_id and name else None
    except ConfigError:
        return None


def product_of_dag(dag_id: str | None) -> str | None:
    """The product a DAG belongs to (`<job>_<product>`, `bronze_<product>_reconcile`), None for shared DAGs."""
    name = (dag_id or "").removesuffix("_reconcile")
    owners = [p for p in product_ids() if name.endswith(f"_{p}")]
    return max(owners, key=len) if owners else None  # `analytics` and `product_analytics`: the longer


def connection_ids() -> set[str]:
    """Every Airflow connection id the bundle reads."""
    return {WAREHOUSE_CONN_ID, SMTP_CONN_ID} | {t.source_conn_id for t in all_tables()}


def pools() -> dict[str, dict]:
    """The Airflow pools every product needs (`airflow pools import` format): one dbt build per product."""
    return {
        f"medallion_dbt_{product_id}": {
            "slots": 1,
            "description": f"dbt builds of product {product_id}, one at a time: a gold build must not read silver "
            "while a silver build replaces its tables. Other products build side by side.",
            "include_deferred": False,
        }
        for product_id in product_ids()  # every declared product, even one whose tables are broken
    }


def write_pools(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pools(), indent=2) + "\n")
    return path


if __name__ == "__main__":
    if sys.argv[1:] == ["pools"]:
        print(json.dumps(pools(), indent=2))
    else:
        sys.exit("usage: python -m medallion.config pools  (prints the Airflow pools JSON for every product)")
