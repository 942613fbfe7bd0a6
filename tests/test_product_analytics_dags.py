"""Product analytics through its Airflow DAGs (dag.test(), Cosmos, real dbt, real Postgres).

`make backfill`'s code (backfill.run, a day per run) drives bronze_product_analytics, its reconciliation,
silver_product_analytics, gold_daily_product_analytics and gold_hourly_product_analytics with real data
intervals. The first interval has nothing in it (a product whose history starts later): every layer
must still build, empty. Then two days of history: bronze holds every source row, silver and gold say
what plain SQL on the source says (tests/sql/product_analytics_source_truth.sql).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from test_product_analytics import named_queries, rows

from medallion import backfill, config
from medallion.local import localstack
from medallion.local.demo import product_analytics as generator

pytestmark = pytest.mark.slow

PRODUCT = "product_analytics"
SQL = Path(__file__).parent / "sql"
# Today's midnight: the document's queries filter on CURRENT_DATE - 7 / - 30, so the two days count.
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
EVENTS = 1_500  # two days of history: a build takes seconds, every table and query has rows


def count(conn: psycopg.Connection, relation: str) -> int:
    return conn.execute(f"select count(*) from {relation}").fetchone()[0]


def test_the_dags_backfill_an_empty_interval_then_two_days_and_agree_with_the_source(airflow_db, monkeypatch):
    stack = airflow_db
    source, wh_name = "pa_dags_src", "pa_dags_wh"
    with psycopg.connect(stack.source.uri("postgres"), autocommit=True) as conn:
        conn.execute(f"drop database if exists {source} with (force)")
        conn.execute(f"create database {source}")
    with psycopg.connect(stack.warehouse.uri("postgres"), autocommit=True) as conn:
        conn.execute(f"drop database if exists {wh_name} with (force)")
    stack.warehouse.create_database(wh_name)
    with psycopg.connect(stack.source.uri(source)) as conn:
        counts = generator.seed(conn, TODAY, events=EVENTS, days=2)  # history in [TODAY - 2 days, TODAY)
    monkeypatch.setenv(f"AIRFLOW_CONN_{PRODUCT.upper()}_SOURCE", stack.source.uri(source, user="replicator"))
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", stack.warehouse.uri(wh_name))
    declared = config.tables(PRODUCT)
    started = datetime.now(UTC)
    silver = "silver_product_analytics"

    # 1. an interval before the history: bronze loads nothing, every layer still builds (empty)
    backfill.run(TODAY - timedelta(days=3), TODAY - timedelta(days=2), step="day", products=[PRODUCT])
    with psycopg.connect(stack.warehouse.uri(wh_name)) as wh:
        for spec in declared.values():
            assert count(wh, f"{spec.bronze_schema}.{spec.name}") == 0, spec.name
        assert count(wh, f"{silver}.events_clean") == count(wh, f"{silver}.user_sessions") == 0
        assert count(wh, "gold_product_analytics.daily_metrics") == 0

    # 2. two days, a run per day: the second day's silver run is incremental
    backfill.run(TODAY - timedelta(days=2), TODAY, step="day", products=[PRODUCT])
    truth = named_queries(SQL / "product_analytics_source_truth.sql")
    examples = named_queries(SQL / "product_analytics_examples.sql")
    with psycopg.connect(stack.warehouse.uri(wh_name)) as wh, psycopg.connect(stack.source.uri(source)) as src:
        for spec in declared.values():  # append-only: bronze holds every source row, redeliveries included
            bronze = count(wh, f"{spec.bronze_schema}.{spec.name}")
            assert bronze == count(src, f"{spec.source_schema}.{spec.source_table}") == counts[spec.name] > 0, spec.name
        wh.execute("set time zone 'UTC'")
        src.execute("set time zone 'UTC'")
        src.execute(truth["prelude"])
        assert count(wh, f"{silver}.events_clean") == count(src, "t_events") > 1000
        assert count(wh, f"{silver}.user_sessions") == count(src, "t_sessions") > 50
        assert count(wh, f"{silver}.transactions_validated") == counts["transactions_raw"]
        # gold_daily's run for [yesterday, today): the previous day's metrics, as the source has them
        for name in ("daily_active_users", "revenue_trends"):
            got, want = rows(wh, examples[name]), rows(src, truth[name])
            assert len(got) >= 2 and got == want, f"{name}:\n got  {got}\n want {want}"
        yesterday = (TODAY - timedelta(days=1)).date()
        active = wh.execute(
            "select active_users from gold_product_analytics.daily_metrics where date = %s", (yesterday,)
        ).fetchone()
        assert active and active[0] > 0, active
        # what `make demo` prints and checks for the product, on the same databases
        assert generator.verify(wh, src) == []
        assert "Gold daily metrics" in generator.gold_report(wh)
    on_this = SimpleNamespace(warehouse_uri=stack.warehouse.uri(wh_name), source_uri=lambda p: stack.source.uri(source))
    report, mismatched = localstack.bronze_report(on_this, PRODUCT, started)
    assert mismatched == [] and len(report.splitlines()) == 1 + len(declared), report
