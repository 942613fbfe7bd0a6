"""Products are files, not code: a new product, a broken one, one whose source is down, each in a
temporary copy of the bundle, parsed and run by a real Airflow in a subprocess (the copy's own
plugins/ on its path, so the copy's include/ is what medallion.config reads)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from conftest import AS_OF, reset_connection_databases

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def bundle_copy(dest: Path) -> Path:
    """dags/, plugins/ and include/ (with the built dbt manifest) of this checkout, in `dest`."""
    skip = shutil.ignore_patterns("__pycache__", "target", "logs", "dbt_packages")
    for part in ("dags", "plugins", "include"):
        shutil.copytree(ROOT / part, dest / part, ignore=skip)
    (dest / "include" / "dbt" / "target").mkdir()
    shutil.copy(ROOT / "include" / "dbt" / "target" / "manifest.json", dest / "include" / "dbt" / "target")
    return dest


def declare(bundle: Path, product: str, product_yml: str, sources_yml: str | None, models: dict[str, str] = {}):  # noqa: B006
    (bundle / "include" / "products" / f"{product}.yml").write_text(textwrap.dedent(product_yml))
    staging = bundle / "include" / "dbt" / "models" / "staging" / product
    staging.mkdir(parents=True, exist_ok=True)
    if sources_yml is not None:
        (staging / f"_{product}__sources.yml").write_text(textwrap.dedent(sources_yml))
    for name, text in models.items():
        (staging / name).write_text(textwrap.dedent(text))


def in_bundle(bundle: Path, code: str, **env: str) -> dict:
    """Run `code` with the copy's plugins on the path; it prints one JSON line, returned."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(bundle / "plugins"), **env},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=bundle,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


PARSE = """
    import json
    from airflow.dag_processing.dagbag import DagBag
    from medallion import config
    bag = DagBag(dag_folder="dags")
    print(json.dumps({
        "import_errors": bag.import_errors,
        "dags": {d.dag_id: {"tags": sorted(d.tags), "owner": d.owner, "tasks": sorted(t.task_id for t in d.tasks),
                            "timetable": type(d.timetable).__name__, "doc": d.doc_md or ""} for d in bag.dags.values()},
        "pools": sorted(config.pools()),
        "products": sorted(config.products()),
    }))
"""

SIXTH_PRODUCT = """
    description: A throwaway sixth product, declared by a test.
    owner: sixth-team
    source_conn_id: sixth_source
    alert_emails: [sixth-oncall@example.com]
    schedules: {bronze: "15 * * * *"}
    dbt_jobs:
      silver: {layer: silver, schedule: "*/10 * * * *", after: bronze, select: [path:models/staging/sixth]}
"""
SIXTH_SOURCES = """
    version: 2
    sources:
      - name: sixth
        config:
          loaded_at_field: _loaded_at
          freshness: {warn_after: {count: 1, period: hour}, error_after: {count: 3, period: hour}}
          meta: {replication: {source_schema: public, primary_key: [id], cursor: updated_at}}
        tables:
          - name: widgets
            description: Widgets.
"""
SIXTH_MODEL = """
    with

    source as (

        {{ latest_live_version(source('sixth', 'widgets')) }}

    ),

    final as (

        select
            id as widget_id,
            _cursor,
            _loaded_at
        from source

    )

    select * from final
"""


@pytest.mark.slow
def test_a_sixth_product_is_files_only(tmp_path, stack):
    """Its bronze DAG, its dbt selection, its pool and its freshness rows appear with no code change."""
    bundle = bundle_copy(tmp_path / "bundle")
    declare(bundle, "sixth", SIXTH_PRODUCT, SIXTH_SOURCES, {"stg_sixth__widgets.sql": SIXTH_MODEL})
    dbt = subprocess.run(["bash", str(ROOT / "docker" / "dbt-manifest.sh"), str(bundle / "include" / "dbt")],
                         env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert dbt.returncode == 0, dbt.stdout[-3000:] + dbt.stderr[-3000:]
    manifest = json.loads((bundle / "include" / "dbt" / "target" / "manifest.json").read_text())
    model = manifest["nodes"]["model.medallion.stg_sixth__widgets"]
    assert model["schema"] == "stg_sixth", "a product folder without +schema gets its own schema"

    parsed = in_bundle(bundle, PARSE)
    assert parsed["import_errors"] == {}
    dags = parsed["dags"]
    assert {"bronze_sixth", "bronze_sixth_reconcile", "silver_sixth"} <= set(dags)
    assert {"bronze_browser_infra", "silver_browser_infra", "gold_browser_infra"} <= set(dags), "the others stay"
    bronze = dags["bronze_sixth"]
    assert bronze["owner"] == "sixth-team" and "sixth" in bronze["tags"] and "widgets" in bronze["doc"]
    assert bronze["timetable"] == "CronDataIntervalTimetable"
    silver_models = {t.removeprefix("dbt.").removesuffix("_run") for t in dags["silver_sixth"]["tasks"]}
    assert "stg_sixth__widgets" in silver_models and not any("browser_infra" in m for m in silver_models)
    assert "medallion_dbt_sixth" in parsed["pools"]

    with psycopg.connect(stack.warehouse.uri("postgres"), autocommit=True) as conn:
        conn.execute("drop database if exists sixth_wh with (force)")
        conn.execute("create database sixth_wh")
    slas = in_bundle(bundle, f"""
        import json, psycopg
        from medallion import freshness
        with psycopg.connect({stack.warehouse.uri("sixth_wh")!r}) as wh:
            freshness.prepare(wh)
            rows = wh.execute("select kind, source, table_name, extract(epoch from warn_after)::int "
                              "from ops.table_slas where source = 'sixth'").fetchall()
        print(json.dumps(rows))
    """)  # fmt: skip
    assert slas == [["bronze", "sixth", "widgets", 3600]]


BROKEN_SOURCES = SIXTH_SOURCES.replace("name: sixth", "name: broken").replace("cursor: updated_at", "cursor: null")


@pytest.mark.parametrize(
    ("product_yml", "sources_yml", "error"),
    [
        (
            SIXTH_PRODUCT.replace("    owner: sixth-team\n", ""),
            BROKEN_SOURCES,
            "broken.yml:2: product broken: owner is missing",
        ),
        (
            SIXTH_PRODUCT,
            BROKEN_SOURCES,
            "_broken__sources.yml:10: table broken.widgets: incremental mode needs a cursor",
        ),
    ],
)
def test_a_broken_product_fails_alone(tmp_path, airflow_db, product_yml, sources_yml, error):
    """The others parse as before; the broken product's DAGs are one task that fails at once with one line."""
    bundle = bundle_copy(tmp_path / "bundle")
    declare(bundle, "broken", product_yml, sources_yml)
    parsed = in_bundle(bundle, PARSE)
    assert parsed["import_errors"] == {}
    dags = parsed["dags"]
    for dag_id in (
        "bronze_browser_infra",
        "bronze_browser_infra_reconcile",
        "silver_browser_infra",
        "gold_browser_infra",
    ):
        assert "broken" not in dags[dag_id]["tags"] and len(dags[dag_id]["tasks"]) > 1, dag_id
    broken = {d: v for d, v in dags.items() if d.endswith("_broken") or d.endswith("_broken_reconcile")}
    assert set(broken) == {"bronze_broken", "bronze_broken_reconcile", "silver_broken", "gold_broken"}
    for dag_id, dag in broken.items():
        assert dag["tasks"] == ["declaration_error"] and {"broken"} <= set(dag["tags"]), dag_id
        assert error in dag["doc"], dag_id
    assert "broken" not in parsed["products"] and "browser_infra" in parsed["products"]
    assert "medallion_dbt_broken" in parsed["pools"]

    failed = in_bundle(bundle, """
        import json
        from airflow.dag_processing.dagbag import DagBag
        from airflow.sdk.exceptions import AirflowFailException
        dag = DagBag(dag_folder="dags").get_dag("bronze_broken")
        run = dag.test()
        [ti] = run.get_task_instances()
        try:
            dag.get_task("declaration_error").python_callable()
        except AirflowFailException as exc:
            print(json.dumps({"state": run.state, "ti": ti.state, "tries": ti.try_number, "error": str(exc)}))
    """)  # fmt: skip
    assert (failed["state"], failed["ti"], failed["tries"]) == ("failed", "failed", 1), "no retry: it cannot help"
    assert failed["error"].startswith("product broken: ") and error in failed["error"] and "\n" not in failed["error"]


OTHER_PRODUCT = """
    description: A second product whose Supabase is down.
    owner: other-team
    source_conn_id: other_source
    schedules: {bronze: "0 * * * *"}
"""
OTHER_SOURCES = """
    version: 2
    sources:
      - name: other
        config:
          meta: {replication: {source_schema: public, primary_key: [id], cursor: updated_at}}
        tables:
          - name: plans
"""


@pytest.mark.slow
def test_one_products_source_down_never_stops_another_products_loads(tmp_path, airflow_db):
    stack = airflow_db
    reset_connection_databases(stack)
    bundle = bundle_copy(tmp_path / "bundle")
    declare(bundle, "other", OTHER_PRODUCT, OTHER_SOURCES)
    with socket_closed() as port:
        down = f"postgresql://replicator@127.0.0.1:{port}/source?connect_timeout=2"
        states = in_bundle(bundle, f"""
            import json
            from datetime import datetime
            from airflow.dag_processing.dagbag import DagBag
            from medallion import compat
            compat.apply_all()
            bag = DagBag(dag_folder="dags")
            states = {{}}
            for dag_id in ("bronze_other", "bronze_browser_infra"):  # the broken source's DAG first
                dag = bag.get_dag(dag_id)
                for task in dag.tasks:
                    task.retries = 0
                states[dag_id] = dag.test(logical_date=datetime.fromisoformat({AS_OF.isoformat()!r})).state
            print(json.dumps(states))
        """, AIRFLOW_CONN_OTHER_SOURCE=down)  # fmt: skip
    assert states == {"bronze_other": "failed", "bronze_browser_infra": "success"}
    with psycopg.connect(stack.warehouse.uri("warehouse")) as wh:
        ledger = wh.execute("select source, status, count(*) from ops.replication_batches group by 1, 2").fetchall()
    assert sorted(ledger) == [("browser_infra", "success", 11), ("other", "failed", 1)]


class socket_closed:
    """A localhost port nothing listens on (bound then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc) -> None:
        return None
