"""Demo generators, one module per product: `medallion.local.demo.<product>` (local tooling, not runtime).

A product's module fills its Supabase stand-in (the local stack's database named like the product)
and advances its clock. It provides
    seed(conn, as_of, scale=1.0) -> {table: rows}   history up to `as_of` (deterministic)
    advance(conn, hours=1.0) -> {what: rows}       the clock moves on: inserts, updates, hard deletes
    clock(conn) -> datetime | None                  where its clock is (None: not seeded)
and may provide `gold_report(wh) -> str`, a few gold numbers `make demo` prints, and
`verify(wh, src) -> [problem, ...]`, silver and gold checked against the source (`make demo` fails on any).
Its source schema comes from the generic platform files include/sql/source/*.sql (Supabase's roles,
RLS helpers, the replication role), then the product's own include/sql/source/<product>/*.sql.
"""

from __future__ import annotations

import importlib
import importlib.util
from datetime import datetime
from pathlib import Path
from types import ModuleType

import psycopg

from medallion import config

SOURCE_SQL = config.SQL_DIR / "source"


def migrations(product: str) -> list[Path]:
    """The generic platform files, then the product's own, each folder in name order."""
    return sorted(SOURCE_SQL.glob("*.sql")) + sorted((SOURCE_SQL / product).glob("*.sql"))


def apply_migrations(conn: psycopg.Connection, product: str) -> None:
    """Make `conn`'s database the product's Supabase stand-in (idempotent), with the demo clock."""
    for path in migrations(product):
        conn.execute(path.read_text())
    conn.execute("create schema if not exists demo")
    conn.execute("create table if not exists demo.clock (id int primary key default 1, as_of timestamptz not null)")
    conn.commit()


def generator(product: str) -> ModuleType | None:
    """The product's demo generator module, or None when it has none."""
    name = f"{__name__}.{product}"
    return importlib.import_module(name) if importlib.util.find_spec(name) else None


def products() -> list[str]:
    """The declared products that have a demo generator (what `make demo` runs)."""
    return [p for p in config.product_ids() if generator(p) is not None]


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)
