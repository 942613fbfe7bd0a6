"""Shared fixtures: real embedded Postgres servers and a real Airflow metadata DB for the whole session.

The environment (Airflow home, metadata DB, AIRFLOW_CONN_*) is set here, at import, because Airflow
reads its configuration when first imported. Each test gets fresh databases cloned from a seeded
template, so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from medallion import compat, config
from medallion.local.demo import browser_infra as demo_source
from medallion.local.localpg import free_port
from medallion.local.localstack import Stack


def wait_until(predicate, timeout: float, what: str):
    """Poll `predicate` every 2 s until it returns something truthy (returned); TimeoutError(what) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(2)
    raise TimeoutError(what)


BASE = Path(tempfile.mkdtemp(prefix="medallion-tests-"))
STACK = Stack(BASE, source_port=free_port(), warehouse_port=free_port(), smtp_port=free_port())
os.environ.update(STACK.env())
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)  # end of the seeded history in tests
_counter = itertools.count()


@pytest.fixture(scope="session")
def stack():
    STACK.up()
    with psycopg.connect(STACK.source.uri("postgres"), autocommit=True) as conn:
        conn.execute("drop database if exists source_template")
        conn.execute("create database source_template")
    with psycopg.connect(STACK.source.uri("source_template")) as conn:
        demo_source.seed(conn, AS_OF, scale=0.3)
    yield STACK
    if "airflow.settings" in sys.modules:  # close Airflow's pooled connections before the server stops
        sys.modules["airflow.settings"].dispose_orm()
    STACK.down()
    shutil.rmtree(BASE, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db(stack):
    """Airflow's metadata database, migrated once per session (real Postgres, no SQLite)."""
    stack.migrate_airflow()
    # dag.test() of a DAG with a deadline crashes after a successful run in Airflow 3.3.2
    # (apache/airflow#73428): a backport of the proposed fix, see medallion/compat.py.
    compat.apply_all()
    return stack


def reset_connection_databases(stack: Stack, source_template: str | None = "source_template") -> None:
    """Recreate `browser_infra` (its source, from `source_template`, or empty) and an empty `warehouse`: the databases
    the stack's AIRFLOW_CONN_* point at, for tests that run DAGs through Airflow."""
    template = f" template {source_template}" if source_template else ""
    with psycopg.connect(stack.source.uri("postgres"), autocommit=True) as conn:
        conn.execute("drop database if exists browser_infra with (force)")
        conn.execute(f"create database browser_infra{template}")
    with psycopg.connect(stack.warehouse.uri("postgres"), autocommit=True) as conn:
        conn.execute("drop database if exists warehouse with (force)")
        conn.execute("create database warehouse")


class Databases:
    """A fresh seeded source database and an empty warehouse database for one test."""

    def __init__(self, stack: Stack):
        n = next(_counter)
        self.stack = stack
        self.source_name, self.warehouse_name = f"src_{n}", f"wh_{n}"
        with psycopg.connect(stack.source.uri("postgres"), autocommit=True) as conn:
            conn.execute(f"create database {self.source_name} template source_template")
        stack.warehouse.create_database(self.warehouse_name)
        self.source_admin_uri = stack.source.uri(self.source_name)
        self.source_uri = stack.source.uri(self.source_name, user="replicator")
        self.warehouse_uri = stack.warehouse.uri(self.warehouse_name)

    def src(self) -> psycopg.Connection:
        return psycopg.connect(self.source_uri, prepare_threshold=None)

    def src_admin(self) -> psycopg.Connection:
        return psycopg.connect(self.source_admin_uri)

    def wh(self) -> psycopg.Connection:
        return psycopg.connect(self.warehouse_uri, prepare_threshold=None)


@pytest.fixture
def dbs(stack) -> Databases:
    return Databases(stack)


@pytest.fixture
def spec():
    """The declared spec of a table, optionally with overrides: spec('browser_sessions', mode='full')."""

    def make(table: str, **overrides) -> config.TableSpec:
        if "name" in overrides:  # another table of the same shape: read its own source table
            overrides.setdefault("source_table", overrides["name"])
        return replace(config.get_table("browser_infra", table), **overrides)

    return make
