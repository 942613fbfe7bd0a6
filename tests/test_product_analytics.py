"""Product analytics end to end on real Postgres: generator -> bronze (replication) -> dbt silver/gold.

Without the DAGs, so many small intervals stay cheap: bronze is loaded with replication.replicate()
for every declared product_analytics table, dbt runs in process with the interval in
MEDALLION_INTERVAL_START/END, as the DAGs pass it. tests/test_product_analytics_dags.py runs the
product through its Airflow DAGs; tests/local/demo/test_product_analytics_generator.py tests the generator.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from product_analytics_pipeline import GOLD, GOLD_MODELS, SILVER, SILVER_MODELS, dbt, load_bronze, specs

from medallion.local.demo import product_analytics as generator

SQL = Path(__file__).parent / "sql"
# Data up to the current hour: the document's queries filter on CURRENT_DATE - 7 / - 30.
AS_OF = generator.floor_hour(datetime.now(UTC))
EVENTS = 40_000  # ~330 a day over 120 days: every example query has rows, a build takes seconds


def named_queries(path: Path) -> dict[str, str]:
    """`-- name: x` sections of a SQL file."""
    parts = re.split(r"^-- name: (\w+)\s*$", path.read_text(), flags=re.M)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.fixture(scope="session")
def analytics_template(stack) -> str:
    """A product-analytics source database seeded once; tests clone it."""
    with psycopg.connect(stack.source.uri("postgres"), autocommit=True) as conn:
        conn.execute("drop database if exists analytics_template")
        conn.execute("create database analytics_template")
    with psycopg.connect(stack.source.uri("analytics_template")) as conn:
        generator.seed(conn, AS_OF, events=EVENTS)
    return "analytics_template"


_n = iter(range(10_000))


class AnalyticsDbs:
    """A fresh product-analytics source (cloned from the template) and an empty warehouse."""

    def __init__(self, stack, template: str | None):
        n = next(_n)
        self.source, self.warehouse = f"pa_src_{n}", f"pa_wh_{n}"
        with psycopg.connect(stack.source.uri("postgres"), autocommit=True) as conn:
            conn.execute(f"create database {self.source}" + (f" template {template}" if template else ""))
        stack.warehouse.create_database(self.warehouse)
        self.admin_uri = stack.source.uri(self.source)
        self.replicator_uri = stack.source.uri(self.source, user="replicator")
        self.wh_uri = stack.warehouse.uri(self.warehouse)

    def src(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_uri)

    def wh(self) -> psycopg.Connection:
        return psycopg.connect(self.wh_uri)


# --- silver and gold -----------------------------------------------------------------------------------


def rows(conn: psycopg.Connection, query: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(query).fetchall()]


@pytest.mark.slow
def test_every_example_query_answers_as_plain_sql_on_the_source(stack, analytics_template):
    dbs = AnalyticsDbs(stack, analytics_template)
    loaded = load_bronze(dbs.replicator_uri, dbs.wh_uri, None, AS_OF)
    assert loaded["events_raw"] > EVENTS * 0.9
    dbt("build", f"{SILVER} {GOLD}", dbs.wh_uri)  # every model and every data test; raises on a failure
    examples, truth = (
        named_queries(SQL / "product_analytics_examples.sql"),
        named_queries(SQL / "product_analytics_source_truth.sql"),
    )
    assert set(examples) == set(truth) - {"prelude"} and len(examples) == 6
    with dbs.wh() as wh, dbs.src() as src:
        wh.execute("set time zone 'UTC'")
        src.execute("set time zone 'UTC'")
        src.execute(truth["prelude"])
        for name, query in examples.items():
            got, want = rows(wh, query), rows(src, truth[name])
            assert got, f"{name}: no rows"
            if name == "top_events_by_user":  # LIMIT 100 over tied counts: any of the tied rows may be returned
                assert [r[2] for r in got] == [r[2] for r in want[: len(got)]], name
                assert set(got) <= set(want), name
            else:
                assert got == want, f"{name}:\n got  {got[:5]}\n want {want[:5]}"
        kpis = {(r[0], r[3]): r[1] for r in rows(wh, examples["kpi_dashboard"])}
        assert len(kpis) == 24 and kpis[("active_users", "7d")] > 0 and kpis[("revenue", "30d")] > Decimal(0)


def snapshot(wh: psycopg.Connection, schema: str) -> None:
    wh.execute(f"create schema {schema}")
    for model in SILVER_MODELS:
        wh.execute(f"create table {schema}.{model} as select * from silver_product_analytics.{model}")
    for model in GOLD_MODELS:
        wh.execute(f"create table {schema}.{model} as select * from gold_product_analytics.{model}")
    wh.commit()


def differences(wh: psycopg.Connection, schema: str, model: str) -> tuple[int, int]:
    layer = "silver" if model in SILVER_MODELS else "gold"
    live = f"{layer}_product_analytics.{model}"
    return wh.execute(
        f"""select (select count(*) from (select * from {schema}.{model} except all select * from {live}) a),
                   (select count(*) from (select * from {live} except all select * from {schema}.{model}) b)"""
    ).fetchone()


@pytest.mark.slow
def test_a_three_day_backfill_interval_by_interval_equals_a_full_refresh(stack, analytics_template):
    """Three days, interval by interval as a backfill then the schedule would run them (11 x 6 hours, 5 x 1 hour,
    12 x 5 minutes), events arriving between runs (sessions continuing across the boundary, late and
    redelivered events), each silver run incremental; then a full refresh of the same bronze must agree."""
    dbs = AnalyticsDbs(stack, analytics_template)
    load_bronze(dbs.replicator_uri, dbs.wh_uri, None, AS_OF)
    dbt("run", f"{SILVER} {GOLD}", dbs.wh_uri)
    steps = [timedelta(hours=6)] * 11 + [timedelta(hours=1)] * 5 + [timedelta(minutes=5)] * 12
    assert sum(steps, timedelta()) == timedelta(days=3)
    boundaries, start = [], AS_OF
    for step in steps:
        with dbs.src() as src:
            generator.advance(src, minutes=step.total_seconds() / 60, events=max(40, int(step.total_seconds() / 9)))
        end = start + step
        load_bronze(dbs.replicator_uri, dbs.wh_uri, start, end)
        log = dbt("run", SILVER, dbs.wh_uri, start, end)
        assert "user_sessions" in log
        boundaries.append(end)
        start = end
    dbt("build", GOLD, dbs.wh_uri, start - steps[-1], start)
    dbt("test", f"{SILVER} {GOLD}", dbs.wh_uri)
    with dbs.wh() as wh:
        spans = wh.execute(
            """select count(*) from silver_product_analytics.user_sessions s
                where exists (select from unnest(%s::timestamptz[]) b where s.started_at < b and s.ended_at >= b)""",
            (boundaries[:-1],),
        ).fetchone()[0]
        late = wh.execute(
            """select count(*) from silver_product_analytics.events_clean
                where ingested_at >= %s and ingestion_delay > interval '1 hour'""",
            (AS_OF,),
        ).fetchone()[0]
        assert spans > 0 and late > 0, (spans, late)
        snapshot(wh, "backfilled")
    dbt("build", f"{SILVER} {GOLD}", dbs.wh_uri, None, None, "--full-refresh")
    with dbs.wh() as wh:
        counts = {m: wh.execute(f"select count(*) from backfilled.{m}").fetchone()[0] for m in SILVER_MODELS}
        assert counts["events_clean"] > EVENTS and counts["user_sessions"] > 1000, counts
        assert {m: differences(wh, "backfilled", m) for m in SILVER_MODELS + GOLD_MODELS} == {
            m: (0, 0) for m in SILVER_MODELS + GOLD_MODELS
        }


# --- redelivered events (the same id twice in the source) ---------------------------------------------


def test_a_redelivered_event_is_one_silver_row_after_the_reconciliation(stack):
    """events_raw has no primary key: a retried delivery lands again with the same id and a later
    ingested_at. The reconciliation compares one row per key; it must take the source's latest
    row of the id (as bronze does), not whichever of the two the scan returns last - else it finds
    the key "stale", appends both source rows as new versions in one batch (the same _cursor and
    _loaded_at) and staging's latest-version anti-join keeps both: dbt's unique test fails."""
    from medallion import reconcile, replication

    dbs = AnalyticsDbs(stack, None)
    t = datetime(2026, 11, 1, 12, tzinfo=UTC)
    with dbs.src() as conn:
        generator.apply_migrations(conn)
        insert = (
            "insert into analytics.events_raw (id, event_type, user_id, session_id, properties, source, "
            "created_at, ingested_at) values (%s, 'click', null, 's_1', '{}', 'web', %s, %s)"
        )
        event, other = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
        # the redelivery first in the heap, the first delivery after it (a page the vacuum freed)
        conn.execute(insert, (event, t, t + timedelta(minutes=30)))
        conn.execute(insert, (event, t, t + timedelta(seconds=2)))
        conn.execute(insert, (other, t, t + timedelta(seconds=1)))
        conn.commit()
    load_bronze(dbs.replicator_uri, dbs.wh_uri, None, t + timedelta(hours=1))
    spec = {s.name: s for s in specs()}["events_raw"]
    with psycopg.connect(dbs.replicator_uri) as src, dbs.wh() as wh:
        assert not replication.key_is_unique(src, spec)
        assert replication.key_is_unique(src, {s.name: s for s in specs()}["api_logs_raw"])  # id primary key
        found = reconcile.reconcile(spec, src, wh)
        assert (found.missing, found.stale, found.appended) == (0, 0, 0), found.summary()
        versions = wh.execute(
            "select id::text, _cursor from bronze_product_analytics.events_raw order by id, _cursor"
        ).fetchall()
        assert versions == [
            (event, t + timedelta(seconds=2)),
            (event, t + timedelta(minutes=30)),
            (other, t + timedelta(seconds=1)),
        ]
    dbt("build", "stg_product_analytics__events_raw", dbs.wh_uri)  # its unique test on event_id
    with dbs.wh() as wh:
        got = wh.execute(
            "select event_id::text, ingested_at from stg_product_analytics.stg_product_analytics__events_raw "
            "order by event_id"
        ).fetchall()
    assert got == [(event, t + timedelta(minutes=30)), (other, t + timedelta(seconds=1))]


def test_an_event_delivered_twice_in_one_transaction_is_one_bronze_version(stack):
    """ingested_at defaults to now(), the transaction's start: an SDK flushing a batch that holds the
    same event twice lands two identical rows, (id, ingested_at) and all. A load must write that
    version once, on the direct path (first load) and the staged one (a later window), or the two
    bronze rows tie on (_cursor, _loaded_at) and staging keeps both."""
    dbs = AnalyticsDbs(stack, None)
    t = datetime(2026, 11, 1, 12, tzinfo=UTC)
    insert = (
        "insert into analytics.events_raw (id, event_type, user_id, session_id, properties, source, created_at) "
        "values (%s, 'click', null, 's_1', '{}', 'web', %s)"
    )
    first, second = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
    with dbs.src() as conn:
        generator.apply_migrations(conn)
        conn.execute(insert, (first, t))
        conn.execute(insert, (first, t))
        conn.commit()
    now = datetime.now(UTC)
    written = load_bronze(dbs.replicator_uri, dbs.wh_uri, None, now + timedelta(minutes=1))  # direct path
    with dbs.src() as conn:
        conn.execute(insert, (second, t))
        conn.execute(insert, (second, t))
        conn.commit()
    later = datetime.now(UTC) + timedelta(minutes=1)
    written_later = load_bronze(dbs.replicator_uri, dbs.wh_uri, later - timedelta(minutes=1), later)  # staged
    assert (written["events_raw"], written_later["events_raw"]) == (1, 1)
    dbt("build", "stg_product_analytics__events_raw", dbs.wh_uri)  # its unique test on event_id
    with dbs.wh() as wh:
        got = wh.execute(
            "select id::text, count(*) from bronze_product_analytics.events_raw group by id order by id"
        ).fetchall()
    assert got == [(first, 1), (second, 1)]
