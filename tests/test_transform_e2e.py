"""Silver and gold run through Airflow (dag.test(), Cosmos, real dbt, real Postgres) after bronze.

- the layers build and their dbt tests pass, each publishing its asset with the interval it processed;
- gold's KPIs equal the same numbers computed with plain SQL on the source database;
- backfill equivalence: the pipeline run interval by interval while the source changes (inserts,
  updates, hard deletes) ends with the same silver and gold as one full refresh of the final state.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import psycopg
import pytest
from conftest import AS_OF, Databases, reset_connection_databases

from medallion import backfill, config, dagkit
from medallion.local.demo import browser_infra as demo_source

pytestmark = pytest.mark.slow

LAYER_SCHEMAS = ("silver_core", "gold_marts", "gold_metrics")
GOLD_TABLES = ("agg_daily_sessions", "agg_engineering_daily", "agg_growth_daily", "agg_monthly_revenue",
               "agg_ops_daily", "agg_org_daily", "agg_product_daily")  # fmt: skip


def dagbag():
    """A fresh DagBag: Cosmos caches the warehouse connection on its profile mapping per DAG object."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


def run(bag, dag_id: str, logical_date, **conf):
    dr = bag.get_dag(dag_id).test(logical_date=logical_date, run_conf=conf or None)
    failed = [(ti.task_id, ti.state) for ti in dr.get_task_instances() if ti.state not in ("success", "skipped")]
    assert dr.state == "success", f"{dag_id} @ {logical_date}: {failed}"
    return dr


def relations(wh: psycopg.Connection, schemas=LAYER_SCHEMAS) -> list[tuple[str, str]]:
    return wh.execute(
        "select table_schema, table_name from information_schema.tables where table_schema = any(%s) "
        "order by 1, 2", (list(schemas),)
    ).fetchall()  # fmt: skip


@pytest.fixture(scope="module")
def loaded(airflow_db):
    """`source` / `warehouse` (what AIRFLOW_CONN_* point at) fresh, then bronze, silver, gold at AS_OF."""
    stack = airflow_db
    reset_connection_databases(stack)
    bag = dagbag()
    layers = ("bronze", "silver", "gold")
    runs = {layer: run(bag, f"{layer}_browser_infra", AS_OF) for layer in layers}
    return stack, bag, runs


def test_silver_and_gold_build_after_bronze_and_their_dbt_tests_pass(loaded):
    stack, bag, runs = loaded
    for layer in ("silver", "gold"):
        assert all(ti.state == "success" for ti in runs[layer].get_task_instances()), layer
        # the build ran each model's tests right after it, and they passed (Cosmos' per-model results)
        verdicts = build_tests_status(runs[layer])
        assert len(verdicts) >= 10 and set(verdicts.values()) == {"pass"}, (layer, verdicts)
    with psycopg.connect(stack.warehouse.uri("warehouse")) as wh:
        for table in GOLD_TABLES:
            assert wh.execute(f"select count(*) from gold_marts.{table}").fetchone()[0] > 0, table
        assert wh.execute("select count(*) from gold_metrics.v_daily_kpis").fetchone()[0] > 0
        assert {s for s, _ in relations(wh, ("silver_stg", "silver_core", "gold_marts", "gold_metrics"))} == {
            "silver_stg", "silver_core", "gold_marts", "gold_metrics"}  # fmt: skip


def producer_xcoms(dag_run) -> dict[str, object]:
    """What the layer's `dbt_producer_watcher` pushed in this run (Cosmos' per-node results), by key."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id,
                XComModel.task_id == "dbt.dbt_producer_watcher")
        ).all()  # fmt: skip
    return dict(rows)


def build_tests_status(dag_run) -> dict[str, str]:
    """Per model, the status of its tests as the producer's build reported them."""
    xcoms = producer_xcoms(dag_run)
    return {key.removesuffix("_tests_status"): value for key, value in xcoms.items() if key.endswith("_tests_status")}


def test_a_silver_run_after_gold_leaves_every_gold_view_in_place(loaded):
    """Silver replaces its tables (`drop ... cascade`); gold's views must survive it, not wait for gold."""
    stack, _, _ = loaded
    with psycopg.connect(stack.warehouse.uri("warehouse")) as wh:
        views = relations(wh, ("gold_metrics",))
        kpis = wh.execute("select count(*), sum(mrr_cents) from gold_metrics.v_mrr").fetchone()
    assert len(views) == len(list((config.DBT_PROJECT_DIR / "models" / "metrics" / "browser_infra").glob("*.sql")))
    run(dagbag(), "silver_browser_infra", AS_OF)  # rebuilds every silver_core table
    with psycopg.connect(stack.warehouse.uri("warehouse")) as wh:
        assert relations(wh, ("gold_metrics",)) == views
        assert wh.execute("select count(*), sum(mrr_cents) from gold_metrics.v_mrr").fetchone() == kpis


def test_each_layer_publishes_its_asset_with_the_interval_it_processed(loaded):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    interval = {"interval_start": (AS_OF - timedelta(hours=1)).isoformat(), "interval_end": AS_OF.isoformat()}
    with create_session() as session:
        for asset in (dagkit.asset(layer, "browser_infra") for layer in ("bronze", "silver", "gold")):
            extra = session.scalars(
                select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.name == asset.name).order_by(AssetEvent.id.desc()).limit(1)
            ).one()  # fmt: skip
            assert {k: extra.get(k) for k in interval} == interval, asset.name
        per_model = session.scalars(select(AssetModel.uri).where(AssetModel.uri.like("postgres%"))).all()
        assert per_model == [], "one asset per layer, none per dbt model"


def test_gold_kpis_equal_plain_sql_on_the_source(loaded):
    """MRR, active organizations and sessions per day, from the source tables with the README's definitions."""
    stack, _, _ = loaded
    last_day = (AS_OF - timedelta(seconds=1)).date()  # the seed's history ends just before AS_OF
    days = [last_day - timedelta(days=n) for n in range(7)]
    with (
        psycopg.connect(stack.source.uri("browser_infra")) as src,
        psycopg.connect(stack.warehouse.uri("warehouse")) as wh,
    ):

        def source_mrr(day: date) -> int:
            # active / past_due from the day of started_at; canceled until the day before canceled_at;
            # trialing never; monthly-equivalent price (monthly plan price; yearly price / 12)
            return int(src.execute(
                """select coalesce(sum(p.monthly_price_cents), 0)
                     from public.subscriptions s join public.plans p on p.id = s.plan_id
                    where lower(s.status) <> 'trialing'
                      and (s.started_at at time zone 'UTC')::date <= %(d)s
                      and (lower(s.status) <> 'canceled'
                           or %(d)s < (coalesce(s.canceled_at, s.updated_at) at time zone 'UTC')::date)""",
                {"d": day}).fetchone()[0])  # fmt: skip

        month = last_day.replace(day=1)
        gold_month_mrr = wh.execute(
            "select sum(mrr_cents) from gold_marts.agg_monthly_revenue where revenue_month = %s", (month,)
        ).fetchone()[0]
        assert source_mrr(last_day) > 0
        assert gold_month_mrr == source_mrr(last_day), f"MRR of {month:%Y-%m} (measured on {last_day})"
        for day in (days[0], days[3], days[6]):
            assert wh.execute("select mrr_cents from gold_metrics.v_mrr where date_day = %s", (day,)).fetchone()[0] \
                == source_mrr(day), f"MRR on {day}"  # fmt: skip

        source_daily = {d: (n, o) for d, n, o in src.execute(
            """select (started_at at time zone 'UTC')::date, count(*), count(distinct organization_id)
                 from public.browser_sessions where (started_at at time zone 'UTC')::date = any(%s) group by 1""",
            (days,)).fetchall()}  # fmt: skip
        gold_daily = {d: (n, o) for d, n, o in wh.execute(
            """select k.date_day, k.sessions_started, a.active_organizations_1d
                 from gold_metrics.v_daily_kpis k join gold_metrics.v_active_organizations a using (date_day)
                where k.date_day = any(%s)""", (days,)).fetchall()}  # fmt: skip
        assert len(gold_daily) == 7 and all(n > 0 for n, _ in gold_daily.values())
        assert gold_daily == source_daily, "sessions per day and active organizations (1d), last 7 days"

        active_7d = src.execute(
            """select count(distinct organization_id) from public.browser_sessions
                where (started_at at time zone 'UTC')::date between %s and %s""", (days[-1], last_day)
        ).fetchone()[0]  # fmt: skip
        assert wh.execute("select active_organizations_7d from gold_metrics.v_active_organizations "
                          "where date_day = %s", (last_day,)).fetchone()[0] == active_7d  # fmt: skip


def test_a_failing_dbt_test_fails_the_run_even_after_retries_and_publishes_nothing(loaded):
    """`recency` fails for an interval ending days after the last data. The build fails; Cosmos skips
    the producer's retry, the sensors of the models dbt skipped rebuild them, and the `tests` task
    reruns the layer's tests: the failing one fails it, the run fails and `silver` is not published
    (gold does not run on bad data)."""
    bag = dagbag()
    dag = bag.get_dag("silver_browser_infra")
    for t in dag.tasks:  # retry at once (the DAG's own delays would make this test minutes long)
        t.retries, t.retry_delay, t.retry_exponential_backoff = 1, timedelta(0), False
    dr = dag.test(logical_date=AS_OF + timedelta(days=5))
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed"
    assert states["dbt.core_sessions_run"] == "success"  # the model built; its test failed
    assert build_tests_status(dr)["model__medallion__core_sessions"] == "fail"
    assert states["dbt.dbt_producer_watcher"] == "skipped"  # its retry; the build failed on try 1
    assert states["dbt.tests"] == "failed"  # reran the tests (try 2) after the sensors: still failing
    assert states["published"] == "upstream_failed"


def test_a_run_reprocesses_only_the_keys_bronze_touched_in_its_interval(loaded):
    """The interval reaches dbt (MEDALLION_INTERVAL_* in the producer's environment): an hourly silver
    run whose interval holds no bronze change leaves an incremental model's rows as they are, while
    a full refresh (the `full_refresh` param) recomputes every row from bronze."""
    stack, _, _ = loaded
    uri = stack.warehouse.uri("warehouse")
    with psycopg.connect(uri) as wh:
        sessions = "select session_id, user_agent from silver_core.core_sessions order by session_id limit 1"
        sid, user_agent = wh.execute(sessions).fetchone()
        wh.execute("update silver_core.core_sessions set user_agent = 'not from bronze' where session_id = %s", (sid,))

    def user_agent_now() -> str:
        with psycopg.connect(uri) as wh:
            return wh.execute(
                "select user_agent from silver_core.core_sessions where session_id = %s", (sid,)
            ).fetchone()[0]

    run(dagbag(), "silver_browser_infra", AS_OF + timedelta(hours=1))  # bronze has nothing in [AS_OF, AS_OF + 1h)
    assert user_agent_now() == "not from bronze"
    run(dagbag(), "silver_browser_infra", AS_OF + timedelta(hours=1), full_refresh=True)
    assert user_agent_now() == user_agent


def test_the_select_param_builds_only_the_selection_and_the_run_succeeds(loaded):
    """The trigger form's `select` narrows the producer's build to the selection within the layer
    (here a staging model and every silver model downstream of it); the other models' sensors do
    not wait for a result that never comes, and the run succeeds."""
    dr = run(dagbag(), "silver_browser_infra", AS_OF + timedelta(hours=2), select="stg_browser_infra__plans+")
    statuses = [k for k in producer_xcoms(dr) if k.startswith("model__medallion__") and k.endswith("_status")]
    built = {k.removeprefix("model__medallion__").removesuffix("_status") for k in statuses if "_tests_" not in k}
    manifest = json.loads((config.DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    expected, todo = set(), ["model.medallion.stg_browser_infra__plans"]
    while todo:
        uid = todo.pop()
        folder = manifest["nodes"][uid]["original_file_path"].split("/")[1]
        if folder in ("staging", "core") and uid.split(".")[-1] not in expected:
            expected.add(uid.split(".")[-1])
            todo += [c for c in manifest["child_map"][uid] if c.startswith("model.")]
    assert len(expected) > 1 and built == expected


def snapshot(wh: psycopg.Connection, schema: str = "snapshot") -> list[tuple[str, str]]:
    rels = relations(wh)
    wh.execute(f"drop schema if exists {schema} cascade; create schema {schema}")
    for s, t in rels:
        wh.execute(f'create table {schema}."{s}__{t}" as select * from {s}."{t}"')
    wh.commit()
    return rels


def differences(wh: psycopg.Connection, rels, schema: str = "snapshot") -> dict[str, tuple[int, int]]:
    out = {}
    for s, t in rels:
        a, b = f'{schema}."{s}__{t}"', f'{s}."{t}"'
        only_a = wh.execute(f"select count(*) from (select * from {a} except all select * from {b}) x").fetchone()[0]
        only_b = wh.execute(f"select count(*) from (select * from {b} except all select * from {a}) x").fetchone()[0]
        if only_a or only_b:
            out[f"{s}.{t}"] = (only_a, only_b)
    return out


def test_backfill_interval_by_interval_equals_a_full_refresh(stack, airflow_db, monkeypatch):
    """Three days of source changes, backfilled a day at a time with `make backfill`'s code, then compared.

    `backfill.run(step="day")` gives each run a day-long data interval (the DAGs' hourly cron swapped
    for a daily one): the runs use it exactly as they use an hour (bronze's window, dbt's interval).
    """
    dbs = Databases(stack)
    monkeypatch.setenv("AIRFLOW_CONN_BROWSER_INFRA_SOURCE", dbs.source_uri)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", dbs.warehouse_uri)

    changes = []
    for step in range(4):  # the first interval loads all history, then three days of changes
        when = AS_OF + timedelta(days=step)
        if step:
            with dbs.src_admin() as conn:
                changes.append(demo_source.advance(conn, hours=24, deletes=5))
        # bronze, bronze_browser_infra_reconcile, silver, gold for [when - 1 day, when)
        backfill.run(when - timedelta(days=1), when, step="day", products=["browser_infra"])
    assert sum(c["browser_sessions (deleted)"] for c in changes) == 15
    assert all(c.get("browser_sessions", 0) > 0 for c in changes), changes

    with dbs.wh() as wh:
        tombstones = wh.execute("select count(*) from bronze_browser_infra.browser_sessions "
                                "where _deleted_at is not null").fetchone()[0]  # fmt: skip
        assert tombstones >= 15
        rels = snapshot(wh)
        assert len(rels) > 20
    bag = dagbag()
    run(bag, "silver_browser_infra", when, full_refresh=True)
    run(bag, "gold_browser_infra", when, full_refresh=True)
    with dbs.wh() as wh:
        assert differences(wh, rels) == {}, "rows only in (interval-by-interval, full refresh)"
        purged = wh.execute(
            "select count(*) from silver_core.core_sessions c join bronze_browser_infra.browser_sessions b "
            "on b.id = c.session_id and b._deleted_at is not null").fetchone()[0]  # fmt: skip
        assert purged == 0, "hard-deleted sessions are gone from silver"
