"""The warehouse's ops schema: apply `include/sql/warehouse/*.sql` in name order, each when it changed.

Every file is idempotent SQL (`create ... if not exists`, `create or replace view`, `add column if
not exists`), so applying one twice is harmless; `ops.schema_migrations` remembers each file's hash
so an ordinary run (every bronze load, every freshness check) costs one small read, not the DDL.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import psycopg

from medallion.config import SQL_DIR

log = logging.getLogger(__name__)

MIGRATIONS_DIR = SQL_DIR / "warehouse"
# Held while DDL runs: concurrent `create schema if not exists` (and friends) race otherwise.
DDL_LOCK = "medallion:ddl"


def migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[str, str, str]]:
    """(file name, sha256, SQL) of every migration file, in the order they apply."""
    files = sorted(directory.glob("*.sql"))
    return [(f.name, hashlib.sha256(f.read_bytes()).hexdigest(), f.read_text()) for f in files]


def _applied(wh: psycopg.Connection) -> dict[str, str] | None:
    if wh.execute("select to_regclass('ops.schema_migrations')").fetchone()[0] is None:
        return None
    return dict(wh.execute("select name, sha256 from ops.schema_migrations").fetchall())


def migrate(wh: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Bring the ops schema up to date; returns the files applied (none when all are current).

    Runs in its own transaction (a savepoint inside the caller's), under the warehouse DDL lock.
    """
    wanted = migrations(directory)
    with wh.transaction():
        applied = _applied(wh)
        if applied is not None and all(applied.get(name) == sha for name, sha, _ in wanted):
            return []
        wh.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (DDL_LOCK,))
        wh.execute(
            """create schema if not exists ops;
               create table if not exists ops.schema_migrations (
                   name        text primary key,
                   sha256      text not null,
                   applied_at  timestamptz not null default now()
               )"""
        )
        applied = _applied(wh) or {}  # again, under the lock: another worker may have just applied them
        done = []
        # A changed file is applied with every file after it: a later view may depend on what it changed.
        changed = [i for i, (name, sha, _) in enumerate(wanted) if applied.get(name) != sha]
        for name, sha, text in wanted[changed[0] :] if changed else []:
            wh.execute(text)
            wh.execute(
                """insert into ops.schema_migrations (name, sha256) values (%s, %s)
                   on conflict (name) do update set sha256 = excluded.sha256, applied_at = now()""",
                (name, sha),
            )
            done.append(name)
    if done:
        log.info("warehouse ops schema: applied %s", ", ".join(done))
    return done
