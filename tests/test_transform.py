"""The silver/gold task groups without running dbt: intervals, selection, DAG shape, missing manifest."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException

from medallion import config, dagkit, transform

T0, T1, T2 = (datetime(2026, 11, 1, h, tzinfo=UTC) for h in (0, 1, 2))


def events(*extras):
    return {dagkit.asset("bronze", "browser_infra"): [SimpleNamespace(extra=e) for e in extras]}


def test_a_scheduled_run_processes_its_data_interval():
    expected = {"interval_start": T0.isoformat(), "interval_end": T1.isoformat()}
    assert transform.run_interval(T0, T1, events()) == expected


def test_an_asset_triggered_run_processes_the_span_of_its_events_intervals():
    got = transform.run_interval(None, None, events(
        {"interval_start": T1.isoformat(), "interval_end": T2.isoformat()},
        {"interval_start": T0.isoformat(), "interval_end": T1.isoformat()},
    ))  # fmt: skip
    assert got == {"interval_start": T0.isoformat(), "interval_end": T2.isoformat()}


def test_without_an_interval_a_run_processes_every_key():
    assert transform.run_interval(None, None, {}) == {}
    assert transform.run_interval(None, None, None) == {}
    # one event without an interval (a manual upstream run): everything, to be safe
    assert transform.run_interval(None, None, events({"interval_start": T0.isoformat(), "interval_end": T1.isoformat()},
                                                     {})) == {}  # fmt: skip
    assert transform.interval_bound("start", None, None, None) == transform.interval_bound("end", None, None, {}) == ""


def test_dbt_gets_the_interval_as_environment_variables(dags):
    env = dags["silver_browser_infra"].get_template_env()

    def render(start, end, events) -> dict[str, str]:
        context = {"dag_run": SimpleNamespace(data_interval_start=start, data_interval_end=end),
                   "triggering_asset_events": events}  # fmt: skip
        return {k: env.from_string(v).render(**context) for k, v in transform.INTERVAL_ENV.items()}

    assert render(T0, T1, {}) == {"MEDALLION_INTERVAL_START": T0.isoformat(), "MEDALLION_INTERVAL_END": T1.isoformat()}
    assert render(None, None, {}) == {"MEDALLION_INTERVAL_START": "", "MEDALLION_INTERVAL_END": ""}


def test_without_option_drops_each_option_and_its_value():
    flags = ["--resource-type", "model", "--full-refresh", "--resource-type", "seed", "--threads", "2"]
    assert transform.without_option(flags, "--resource-type") == ["--full-refresh", "--threads", "2"]
    assert transform.without_option([], "--resource-type") == []


def test_an_asset_triggered_run_notes_the_interval_it_processes():
    """What the scheduler writes as the run's note (plugins/medallion_run_notes.py), so the UI shows it."""
    spans = ((T0, T1), (T1, T2))
    both = [SimpleNamespace(extra={"interval_start": s.isoformat(), "interval_end": e.isoformat()}) for s, e in spans]
    assert transform.run_note("asset_triggered", both) == (
        f"Processes the interval [{T0.isoformat()}, {T2.isoformat()}) from its asset events."
    )
    assert transform.run_note("asset_triggered", [SimpleNamespace(extra={})]).startswith("Processes every key")
    assert transform.run_note("scheduled", both) is None  # its data interval is in the UI already


def test_the_silver_and_gold_form_params_are_optional():
    """The trigger form marks a param whose type has no `null` as required (`Full refresh *`)."""
    for name, param in transform.params().items():
        assert "null" in param.schema["type"], name
        assert param.resolve(None) is None  # a cleared field is accepted, not a validation error
    assert transform.selection("path:models/core", None) == "path:models/core"  # None = the whole layer


def test_the_select_param_narrows_the_layer_with_dbt_intersections():
    layer = "path:models/staging path:models/core"
    assert transform.selection(layer, "") == layer
    assert transform.selection(layer, None) == layer
    assert transform.selection(layer, "core_sessions+ tag:x") == (
        "path:models/staging,core_sessions+ path:models/staging,tag:x "
        "path:models/core,core_sessions+ path:models/core,tag:x"
    )


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.ROOT / "dags"))
    assert not bag.import_errors
    return {d: bag.get_dag(d) for d in bag.dag_ids}


@pytest.mark.parametrize(("dag_id", "upstream", "outlet", "folders"), [
    ("silver_browser_infra", dagkit.asset("bronze", "browser_infra"), dagkit.asset("silver", "browser_infra"),
     ("staging/browser_infra", "core/browser_infra")),
    ("gold_browser_infra", dagkit.asset("silver", "browser_infra"), dagkit.asset("gold", "browser_infra"),
     ("marts/browser_infra", "metrics/browser_infra")),
])  # fmt: skip
def test_layer_dag_shape(dags, dag_id, upstream, outlet, folders):
    dag = dags[dag_id]
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert type(dag.timetable.timetable).__name__ == "CronDataIntervalTimetable"  # real data intervals: backfills
    assert [a.name for a in dag.timetable.asset_condition.objects] == [upstream.name]
    assert sorted(dag.params.keys()) == ["full_refresh", "select"]
    producer = dag.get_task("dbt.dbt_producer_watcher")
    assert all(f"path:models/{f}" in producer.select for f in folders) and "params.select" in producer.select
    assert producer.env == transform.DBT_ENV and not producer.vars  # env, not --vars: partial parsing survives
    assert transform.INTERVAL_ENV.items() <= producer.env.items() and producer.env["DBT_LOG_LEVEL_FILE"] == "none"
    assert "--resource-type" not in producer.dbt_cmd_flags  # the tests run in the build, right after their model
    assert models_of(dag) and all(t.upstream_task_ids for t in dag.tasks if t is not producer)  # the build runs first
    tests = dag.get_task("dbt.tests")  # the verdict of the layer's tests, after the build and every model's sensor
    assert tests.trigger_rule == "all_done" and tests.env == transform.DBT_ENV and tests.select == producer.select
    assert {t.task_id for t in dag.tasks} - tests.get_flat_relative_ids(upstream=True) == {"dbt.tests", "published"}
    published = dag.get_task("published")
    assert [a.name for a in published.outlets] == [outlet.name]
    assert published.upstream_task_ids == {"dbt.tests"} and published.trigger_rule == "all_success"


def models_of(dag) -> set[str]:
    """The models a layer DAG renders: one sensor task `dbt.<model>_run` each (no task per model's tests)."""
    assert not [t.task_id for t in dag.tasks if t.task_id.endswith(".test")]
    return {t.task_id.split(".")[1].removesuffix("_run") for t in dag.tasks if t.task_id.endswith("_run")}


class FakeTI:
    """What LayerTests asks of its task instance: the states of its upstream tasks in its run."""

    dag_id, run_id = "silver", "run"

    def __init__(self, **states):
        self.states = states

    def get_task_states(self, dag_id, task_ids, run_ids):
        return {self.run_id: {t: self.states.get(t, "success") for t in task_ids}}


def test_the_tests_task_passes_a_successful_build_and_names_models_that_did_not_build(dags):
    tests = dags["silver_browser_infra"].get_task("dbt.tests")
    assert tests.execute({"ti": FakeTI()}) is None  # the build ran the tests and they passed: no dbt rerun
    sensor = sorted(t for t in tests.upstream_task_ids if t.endswith("_run"))[0]
    with pytest.raises(AirflowException, match=rf"1 model\(s\) did not build: {sensor} \(upstream_failed\)"):
        tests.execute({"ti": FakeTI(**{sensor: "upstream_failed", "dbt.dbt_producer_watcher": "skipped"})})


class SensorTI(FakeTI):
    """A sensor's task instance: the producer's XComs, and every key the sensor asks for."""

    def __init__(self, try_number=1, **xcoms):
        super().__init__()
        self.try_number, self.xcoms, self.asked = try_number, xcoms, []

    def xcom_pull(self, task_ids=None, key="return_value", **_):
        self.asked.append(key)
        return self.xcoms.get(key)


def sensor_and_keys(dags, model="stg_browser_infra__users"):
    sensor = dags["silver_browser_infra"].get_task(f"dbt.{model}_run")
    prefix = f"model__medallion__{model}"
    return sensor, f"{prefix}_status", f"{prefix}_compiled_sql"


def test_a_sensor_whose_model_built_asks_for_its_status_and_compiled_sql_only(dags):
    sensor, status, sql = sensor_and_keys(dags)
    ti = SensorTI(**{status: {"status": "success", "outlet_uris": []}, sql: "select 1"})
    assert sensor.poke({"ti": ti}) is True
    assert ti.asked == [status, sql] and sensor.compiled_sql == "select 1"


@pytest.mark.parametrize("try_number", [1, 2])
def test_a_failed_model_or_a_retry_goes_through_cosmos_poke(dags, monkeypatch, try_number):
    sensor, status, sql = sensor_and_keys(dags, "stg_browser_infra__plans")
    monkeypatch.setattr(sensor, "_get_producer_task_status", lambda context: "running")
    ti = SensorTI(try_number, **{status: {"status": "error", "outlet_uris": []}, sql: "select 1"})
    with pytest.raises(AirflowException, match="stg_browser_infra__plans' finished with status 'error'"):
        sensor.poke({"ti": ti})
    assert "dbt_startup_events" in ti.asked  # Cosmos' poke, with its start-up events and dbt error event lookups


def test_models_are_rendered_per_layer(dags):
    silver, gold = models_of(dags["silver_browser_infra"]), models_of(dags["gold_browser_infra"])
    assert {"stg_browser_infra__browser_sessions", "core_sessions", "dim_org", "fct_subscription"} <= silver
    assert {"agg_daily_sessions", "agg_monthly_revenue", "v_mrr", "v_daily_kpis"} <= gold
    assert not silver & gold


def test_dbt_builds_take_their_products_one_slot_pool_and_every_pool_used_is_declared(dags):
    """A product's silver and gold fire at the same hour (and on assets): their builds run one at a time;
    each product has its own pool (generated from the declarations), so products build side by side."""
    declared = config.pools()
    assert {name: pool["slots"] for name, pool in declared.items()} == {
        f"medallion_dbt_{p}": 1 for p in config.product_ids()}  # fmt: skip
    for dag_id in ("silver_browser_infra", "gold_browser_infra"):
        dbt_tasks = [dags[dag_id].get_task(t) for t in ("dbt.dbt_producer_watcher", "dbt.tests")]  # tests may rerun dbt
        assert all(t.pool == "medallion_dbt_browser_infra" for t in dbt_tasks), dag_id
        sensors = [t for t in dags[dag_id].tasks if t not in dbt_tasks]
        assert sensors and all(t.pool == "default_pool" for t in sensors), "sensors only poll: outside the pool"
    for dag in dags.values():  # a pool missing in a deployment leaves its tasks unscheduled, silently
        assert {t.pool for t in dag.tasks} <= {"default_pool", *declared}, dag.dag_id


def test_gold_views_read_gold_tables_only():
    """A silver table rebuild (`drop ... cascade` of the old table) drops every view that selects from it.

    So no gold_metrics view may depend on a silver model; the org x day join is the gold table agg_org_daily.
    """
    nodes = json.loads(transform.MANIFEST.read_text())["nodes"]
    folder = {uid: n["original_file_path"].split("/")[1] for uid, n in nodes.items() if n["resource_type"] == "model"}
    metrics = [uid for uid, f in folder.items() if f == "metrics"]
    assert metrics
    for uid in metrics:
        assert nodes[uid]["config"]["materialized"] == "view"
        parents = nodes[uid]["depends_on"]["nodes"]
        assert parents and {folder.get(p) for p in parents} <= {"marts", "metrics"}, (uid, parents)


def test_a_missing_manifest_fails_the_dag_file_with_one_clear_line(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    missing = tmp_path / "target" / "manifest.json"
    monkeypatch.setattr(transform, "MANIFEST", missing)
    (tmp_path / "dags").mkdir()
    shutil.copy(config.ROOT / "dags" / "silver.py", tmp_path / "dags" / "silver.py")
    errors = DagBag(dag_folder=str(tmp_path / "dags")).import_errors
    (error,) = errors.values()
    last = error.strip().splitlines()[-1]
    assert str(missing) in last and "make manifest" in last, last


def test_backfill_splits_the_range_into_the_steps_intervals():
    from medallion import backfill

    assert backfill.intervals(T0, T2, "hour") == [(T0, T1), (T1, T2)]
    day = datetime(2026, 11, 2, tzinfo=UTC)
    assert backfill.intervals(T0, day, "day") == [(T0, day)]
    with pytest.raises(ValueError, match="not on a day boundary"):
        backfill.intervals(T1, day, "day")
    with pytest.raises(ValueError, match="must be after"):
        backfill.intervals(T1, T0, "hour")


# --- the dbt docs DAG ----------------------------------------------------------------------------


def test_the_docs_dag_follows_every_products_gold_build(dags):
    """`docs` runs when any product's gold job publishes; one dbt docs generate at a time."""
    dag = dags["docs"]
    gold = {dagkit.asset(job.name, p.id).name for p in config.products().values() for job in p.dbt_jobs
            if job.layer == "gold"}  # fmt: skip
    assert {"gold_browser_infra_tables", "gold_daily_product_analytics_tables"} <= gold
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny" and {a.name for a in condition.objects} == gold
    assert [t.task_id for t in dag.tasks] == ["generate_docs"] and dag.max_active_runs == 1
    assert dag.tasks[0].base_cmd == ["docs", "generate"] and dag.tasks[0].callback is transform.publish_docs


def test_docs_are_published_whole_or_not_at_all(tmp_path):
    """The files dbt wrote replace the served ones; a missing one fails naming it and changes nothing."""
    project, served = tmp_path / "project", tmp_path / "served"
    (project / "target").mkdir(parents=True)
    served.mkdir()
    (served / "index.html").write_text("old docs")
    (project / "target" / "index.html").write_text("<html>new docs</html>")
    (project / "target" / "manifest.json").write_text('{"nodes": {}}')
    with pytest.raises(transform.DocsNotGenerated, match=r"dbt docs generate wrote no catalog\.json in .*target"):
        transform.publish_docs(str(project), to=served)
    assert (
        sorted(p.name for p in served.iterdir()) == ["index.html"] and (served / "index.html").read_text() == "old docs"
    )
    (project / "target" / "catalog.json").write_text('{"nodes": {}}')
    assert transform.publish_docs(str(project), to=served, context={}) == served
    assert sorted(p.name for p in served.iterdir()) == ["catalog.json", "index.html", "manifest.json"]
    assert (served / "index.html").read_text() == "<html>new docs</html>"


def test_docs_land_in_the_folder_the_ui_serves(monkeypatch, tmp_path):
    """The local stack points the docs DAG (MEDALLION_DBT_DOCS_DIR) and Cosmos' plugin at one folder."""
    from medallion.local.localstack import Stack

    env = Stack(tmp_path, source_port=1, warehouse_port=2, smtp_port=3).env()
    served = json.loads(env["AIRFLOW__COSMOS__DBT_DOCS_PROJECTS"])[transform.DOCS_SLUG]["dir"]
    assert served == env["MEDALLION_DBT_DOCS_DIR"] == str(tmp_path / "dbt-docs")
    monkeypatch.setenv("MEDALLION_DBT_DOCS_DIR", served)
    assert transform.docs_dir() == tmp_path / "dbt-docs"
    monkeypatch.delenv("MEDALLION_DBT_DOCS_DIR")
    assert transform.docs_dir() == config.DBT_PROJECT_DIR / "target" / "docs"
