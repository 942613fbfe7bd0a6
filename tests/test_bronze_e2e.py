"""The bronze DAGs run through Airflow (dag.test(), real metadata DB) and bronze equals the source."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from checks import bronze_fingerprint, source_fingerprint
from conftest import AS_OF, reset_connection_databases

from medallion import config
from medallion.local.demo import browser_infra as demo_source

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(airflow_db):
    """The `source` and `warehouse` databases the AIRFLOW_CONN_* variables point at, freshly seeded."""
    stack = airflow_db
    reset_connection_databases(stack)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.ROOT / "dags"))
    assert not bag.import_errors
    return stack, bag


def assert_bronze_equals_source(stack):
    with (
        psycopg.connect(stack.source.uri("browser_infra", user="replicator")) as src,
        psycopg.connect(stack.warehouse.uri("warehouse")) as wh,
    ):
        for spec in config.tables("browser_infra").values():
            assert bronze_fingerprint(wh, src, spec) == source_fingerprint(src, spec), spec.name


def test_bronze_dag_loads_every_table_then_follows_inserts_updates_and_deletes(pipeline):
    stack, bag = pipeline
    bronze, reconcile = bag.get_dag("bronze_browser_infra"), bag.get_dag("bronze_browser_infra_reconcile")

    run = bronze.test(logical_date=AS_OF)  # data interval [AS_OF - 1h, AS_OF): the first load
    assert run.state == "success"
    assert_bronze_equals_source(stack)

    with psycopg.connect(stack.source.uri("browser_infra")) as conn:
        changes = demo_source.advance(conn, hours=1, deletes=3)
    assert changes["browser_sessions (deleted)"] == 3
    assert bronze.test(logical_date=AS_OF + timedelta(hours=1)).state == "success"
    assert reconcile.test(logical_date=AS_OF + timedelta(hours=1)).state == "success"
    assert_bronze_equals_source(stack)

    with psycopg.connect(stack.warehouse.uri("warehouse")) as wh:
        per_table = dict(
            wh.execute(
                "select table_name, count(*) from ops.replication_batches "
                "where status = 'success' and mode <> 'reconcile' group by 1"
            ).fetchall()
        )
        tombstones = wh.execute(
            "select count(*) from bronze_browser_infra.browser_sessions where _deleted_at is not null"
        ).fetchone()[0]
    assert per_table == {name: 2 for name in config.tables("browser_infra")}
    assert tombstones == 3


def test_bronze_dag_params_choose_tables(pipeline):
    stack, bag = pipeline
    run = bag.get_dag("bronze_browser_infra").test(
        logical_date=AS_OF + timedelta(hours=2), run_conf={"tables": ["plans", "users"]}
    )
    assert run.state == "success"
    with psycopg.connect(stack.warehouse.uri("warehouse")) as wh:
        tables = {
            r[0]
            for r in wh.execute(
                "select table_name from ops.replication_batches where interval_end = %s", (AS_OF + timedelta(hours=2),)
            )
        }
    assert tables == {"plans", "users"}


def test_unknown_table_in_params_is_refused_at_trigger_time(pipeline):
    from airflow.sdk.exceptions import ParamValidationError

    _, bag = pipeline
    with pytest.raises(ParamValidationError, match="Invalid input for param tables: 'sessions' is not one of"):
        bag.get_dag("bronze_browser_infra").test(
            logical_date=AS_OF + timedelta(hours=3), run_conf={"tables": ["sessions"]}
        )
