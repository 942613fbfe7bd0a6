"""Silver and gold: the dbt project as Cosmos task groups, and what their DAG runs share.

The DAG files (`dags/silver.py`, `dags/gold.py`) stay thin: per product and dbt job (its
include/products/<product>.yml) a schedule, params, one task group
built here from the build-time manifest (`include/dbt/target/manifest.json`, no `dbt ls` and no
connection at parse time), and a last task that publishes the layer's asset.

Execution mode is WATCHER: one `dbt build` of the layer, models and tests (producer task), one
light sensor per model that shows its status as dbt reports it, and one `tests` task with the
verdict of the layer's data tests (`LayerTests`). A task per model running its own dbt (LOCAL)
would pay dbt's start-up and project parse once per model; a sensor per model's tests (Cosmos'
AFTER_EACH) doubled the tasks, whose Airflow overhead dominated the runs. `make bench`
(bench/transform_bench.py) measures what the DAGs cost over a bare `dbt build`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronDataIntervalTimetable, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowException
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos import settings as cosmos_settings
from cosmos.constants import (
    PRODUCER_WATCHER_DONE_TASK_ID,
    PRODUCER_WATCHER_TASK_ID,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    TestBehavior,
    TestIndirectSelection,
)
from cosmos.dbt import graph as cosmos_graph
from cosmos.operators._watcher import base as cosmos_watcher
from cosmos.operators.local import AbstractDbtLocalBase, DbtDocsLocalOperator, DbtTestLocalOperator
from cosmos.profiles import PostgresUserPasswordProfileMapping

from medallion import dagkit
from medallion.config import DBT_MANIFEST, DBT_PROJECT_DIR, WAREHOUSE_CONN_ID, DbtJob, Product

log = logging.getLogger(__name__)

# Cosmos reports usage to an external endpoint after every task and adds a hidden param to each
# DAG for it. Our workers reach only package registries, so every task would wait for the call
# to time out. Off unless a deployment opts in with AIRFLOW__COSMOS__ENABLE_TELEMETRY=True.
if "AIRFLOW__COSMOS__ENABLE_TELEMETRY" not in os.environ:
    cosmos_settings.enable_telemetry = False
# Cosmos' "reliable retry" of the watcher producer rewrites one Airflow Variable holding every XCom
# pushed so far (compiled SQL included) on each push: quadratic in the layer's size, and most of the
# producer's overhead over a bare dbt build (`make bench`). Off, the backup is written once by the
# producer's failure/retry callback; after a hard crash (no callback) the sensors rerun their models
# one by one, which is slower but as correct. AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY=True restores it.
if "AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY" not in os.environ:
    cosmos_settings.enable_watcher_reliable_retry = False
# After every dbt command Cosmos turns dbt's artifacts into OpenLineage events (~0.4 s per layer
# build, `make bench`), which only the OpenLineage provider would send anywhere. Skipped unless
# the provider is installed.
if importlib.util.find_spec("airflow.providers.openlineage") is None:
    AbstractDbtLocalBase._get_dbt_local_artifact_processor = staticmethod(lambda: None)
# A model's sensor runs once the layer's build is over (see dbt_task_group), so on its first try the
# producer has reported the model. When it reported success, that is all the sensor needs: its
# compiled SQL for the UI, and done. Cosmos' poke would also fetch the producer's state, its
# start-up events (logged at DEBUG only) and the model's dbt error event, which the producer (dbt
# as a subprocess) pushes only for a failed model: three of the sensor's ~8 execution-API requests
# for nothing (`make bench`). Anything else (no status yet, a failure, a retry) goes through
# Cosmos' own poke.
_cosmos_poke = cosmos_watcher.BaseConsumerSensor.poke


def _poke(self: Any, context: Any) -> bool:
    ti = context["ti"]
    if ti.try_number == 1 and not self.is_test_sensor:
        status = self._get_node_status(ti, context)
        if cosmos_watcher.is_dbt_node_status_success(status):
            self._cache_compiled_sql(ti, context)
            log.info("%s built by %s (%s)", self.model_unique_id, self.producer_task_id, status)
            return True
    return _cosmos_poke(self, context)


cosmos_watcher.BaseConsumerSensor.poke = _poke

# Every DbtTaskGroup re-reads and re-decodes the whole manifest (0.1-0.2 s each; gold.py renders
# one per gold or platinum job of every product). One decode per manifest version per process keeps
# each DAG file's parse under a second. Cosmos only reads the dict it gets back.
_cosmos_load_manifest = cosmos_graph.DbtGraph._load_manifest_from_file
_manifests: dict[tuple[str, int, int], dict[str, Any]] = {}


def _load_manifest_from_file(self: Any, manifest_path: Any) -> dict[str, Any]:
    local = Path(str(manifest_path))  # Cosmos passes an ObjectStoragePath, local or not
    if not local.is_file():  # remote object storage: uncached, as Cosmos does it
        return _cosmos_load_manifest(self, manifest_path)
    stat = local.stat()
    key = (str(local), stat.st_mtime_ns, stat.st_size)
    if key not in _manifests:
        _manifests.clear()
        _manifests[key] = _cosmos_load_manifest(self, manifest_path)
    return _manifests[key]


cosmos_graph.DbtGraph._load_manifest_from_file = _load_manifest_from_file

# dbt of this interpreter's environment (a venv's bin/ need not be on PATH)
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt")) if Path(sys.executable).with_name("dbt").exists() else "dbt"
# dbt as a subprocess: measured faster here than dbtRunner in the task's process, whose event
# callbacks compete with the dbt threads for one interpreter (`make bench`; override to compare).
INVOCATION_MODE = InvocationMode[os.environ.get("MEDALLION_DBT_INVOCATION", "SUBPROCESS").upper()]
# WATCHER as shipped; LOCAL (a task per model, `dbt build --select <model>`) exists for the benchmark.
EXECUTION_MODE = ExecutionMode[os.environ.get("MEDALLION_DBT_EXECUTION", "WATCHER").upper()]
MANIFEST = DBT_MANIFEST
PROJECT_NAME = "medallion"


class ManifestMissing(FileNotFoundError):
    """The dbt manifest the DAGs are rendered from has not been built."""


def require_manifest() -> None:
    if not MANIFEST.is_file():
        raise ManifestMissing(f"dbt manifest not found: {MANIFEST}; create it with `make manifest` "
                              f"(or docker/dbt-manifest.sh {DBT_PROJECT_DIR})")  # fmt: skip


class WarehouseProfileMapping(PostgresUserPasswordProfileMapping):
    """The dbt profile from the `warehouse` Airflow connection; an empty password is allowed (trust auth)."""

    required_fields = ["host", "user", "dbname"]

    def get_dbt_value(self, name: str) -> Any:
        value = super().get_dbt_value(name)
        return "" if name == "password" and value is None else value


def _model_name(node) -> str:
    """A model task's name in the UI: the dbt model's name."""
    return node.name


def schedule(cron: str | None, upstream: Asset | None = None) -> AssetOrTimeSchedule | CronDataIntervalTimetable | None:
    """On `cron` with a real data interval (backfills by date range), and when the upstream layer has landed.
    No cron (a manual-only job, `schedule: null`): None, the DAG runs only when triggered."""
    if cron is None:
        return None
    timetable = CronDataIntervalTimetable(cron, timezone=dagkit.TIMEZONE)
    return AssetOrTimeSchedule(timetable=timetable, assets=[upstream]) if upstream is not None else timetable


def params() -> dict[str, Param]:
    """The silver/gold trigger form. Both optional (`null` in the type: the form marks a param
    without it as required); a cleared field renders as None, which Cosmos and
    `medallion_selection` read as off / the whole layer."""
    return {
        "full_refresh": Param(
            False, type=["boolean", "null"], title="Full refresh",
            description="Rebuild incremental models from all of bronze (dbt --full-refresh).",
        ),
        "select": Param(
            "", type=["string", "null"], title="Select",
            description="dbt selection within this layer, e.g. `core_sessions+` or `tag:x`; empty = the whole layer.",
        ),
    }  # fmt: skip


# --- the interval a run processes ------------------------------------------------------------


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return value.isoformat()


def run_interval(data_interval_start: Any, data_interval_end: Any, triggering_asset_events: Any) -> dict[str, str]:
    """`{interval_start, interval_end}` of a run, or {} (= every key) when it has none.

    A scheduled or backfill run has its data interval. An asset-triggered run has none: it takes the
    span of the intervals its triggering events carry in `extra`; if any event carries none (e.g. a
    manual upstream run), the run processes every key, which is always correct, only slower.
    """
    if data_interval_start is not None and data_interval_end is not None:
        return {"interval_start": _iso(data_interval_start), "interval_end": _iso(data_interval_end)}
    events = [e for evs in (triggering_asset_events or {}).values() for e in evs]
    if not events:
        return {}
    spans = []
    for event in events:
        extra = getattr(event, "extra", None) or {}
        if not extra.get("interval_start") or not extra.get("interval_end"):
            return {}
        spans.append((datetime.fromisoformat(extra["interval_start"]), datetime.fromisoformat(extra["interval_end"])))
    return {
        "interval_start": min(s for s, _ in spans).isoformat(),
        "interval_end": max(e for _, e in spans).isoformat(),
    }


def interval_bound(bound: str, data_interval_start: Any, data_interval_end: Any, triggering_asset_events: Any) -> str:
    """`interval_start` or `interval_end` of the run for dbt's environment; "" = none (every key)."""
    return run_interval(data_interval_start, data_interval_end, triggering_asset_events).get(f"interval_{bound}", "")


def selection(layer_select: str, user_select: str | None) -> str:
    """The producer's `--select`: the layer, narrowed to the user's selection (dbt intersection)."""
    user = (user_select or "").split()
    if not user:
        return layer_select
    return " ".join(f"{layer},{sel}" for layer in layer_select.split() for sel in user)


USER_DEFINED_MACROS = {"medallion_interval_bound": interval_bound, "medallion_selection": selection}
# The interval reaches dbt as environment variables (macro interval_var in include/dbt), not
# --vars: dbt re-parses the whole project whenever --vars change, i.e. on every run, but only the
# files reading an environment variable when its value changes (`make bench` measured a full parse
# at ~2.7 s per layer run). dag_run.*: a run without an interval (asset-triggered under the real
# scheduler) has no top-level data_interval_* in its template context, whose undefined names are strict.
INTERVAL_ENV = {
    f"MEDALLION_INTERVAL_{bound.upper()}": "{{ medallion_interval_bound('" + bound + "', dag_run.data_interval_start, "
    "dag_run.data_interval_end, triggering_asset_events) }}"
    for bound in ("start", "end")
}
# What every dbt command of a layer runs with. Cosmos runs each in a temporary copy of the project,
# deleted when the task ends, and dbt's debug log file (logs/dbt.log) with it: writing that file
# cost ~0.5 s a layer build (`make bench`). The task log keeps what dbt prints, errors included.
DBT_ENV = {**INTERVAL_ENV, "DBT_LOG_LEVEL_FILE": "none"}


def run_note(run_type: str | None, consumed_asset_events: Any) -> str | None:
    """The note an asset-triggered run shows in the UI: the interval it processes (None otherwise).

    Set by the scheduler when the run starts (plugins/medallion_run_notes.py), from the same events
    the run's tasks read, so the UI says what a run did without opening a log.
    """
    if str(run_type) not in ("asset_triggered", "DagRunType.ASSET_TRIGGERED") or not consumed_asset_events:
        return None
    interval = run_interval(None, None, {"events": list(consumed_asset_events)})
    if not interval:
        return "Processes every key: an upstream run that triggered it had no data interval (e.g. a manual run)."
    return f"Processes the interval [{interval['interval_start']}, {interval['interval_end']}) from its asset events."


# --- the task group ----------------------------------------------------------------------------


def profile_config() -> ProfileConfig:
    return ProfileConfig(
        profile_name=PROJECT_NAME,
        target_name="warehouse",
        profile_mapping=WarehouseProfileMapping(
            conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": "public", "threads": 2}
        ),
    )


def _forget_last_runs_test_results(context: Any) -> None:
    """Cosmos 1.15's producer keeps its tests' results on the operator and never resets them, so an
    operator that runs again in the same process (`dag.test()`, `make backfill`) pushes an XCom per
    test instead of one per model (+5 s a silver + gold run, `make bench`). A worker process runs
    one task and is not affected."""
    context["task"].test_results_per_model.clear()


def without_option(flags: list[str], option: str) -> list[str]:
    """dbt command-line `flags` without each `option VALUE` pair."""
    kept: list[str] = []
    skip_value = False
    for flag in flags:
        if flag == option:
            skip_value = True
        elif skip_value:
            skip_value = False
        else:
            kept.append(flag)
    return kept


class LayerTests(DbtTestLocalOperator):
    """The verdict of the layer's data tests, which ran in the producer's `dbt build`.

    It runs after the build and every model's sensor, whatever their outcome:
    - a model did not build: fails, naming them (nothing to verify);
    - the build succeeded: every test it selected passed (`dbt build` fails on a failing test);
    - otherwise (a test failed, or the build failed and the sensors rebuilt their models on retry:
      Cosmos skips the producer's retry): reruns the layer's tests with `dbt test`, same selection
      and interval. A failing test fails this task, and so the run; `published` does not run.
    Its retries rerun the tests, so clearing it after a fix re-checks the data.
    """

    def __init__(self, *, producer_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.producer_task_id = producer_task_id

    def execute(self, context: Any, **kwargs: Any) -> Any:
        ti = context["ti"]
        upstream = sorted(self.upstream_task_ids | {self.producer_task_id})
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=upstream, run_ids=[ti.run_id]).get(ti.run_id, {})
        producer_state = states.pop(self.producer_task_id, None)
        not_built = {task_id: state for task_id, state in states.items() if state != "success"}
        not_built.pop(f"{self.task_group.group_id}.{PRODUCER_WATCHER_DONE_TASK_ID}", None)
        if not_built:
            raise AirflowException(
                f"data tests not checked: {len(not_built)} model(s) did not build: "
                + ", ".join(f"{task_id} ({state})" for task_id, state in sorted(not_built.items()))
            )
        if producer_state == "success":
            self.log.info("%s succeeded: the layer's data tests ran in its build and passed", self.producer_task_id)
            return None
        self.log.warning("%s ended %s: running the layer's data tests again (dbt test --select %s)",
                         self.producer_task_id, producer_state, self.select)  # fmt: skip
        return super().execute(context, **kwargs)


def dbt_task_group(select: tuple[str, ...] | list[str], pool: str, group_id: str = "dbt") -> DbtTaskGroup:
    """A dbt job's models as tasks, built with their tests by one `dbt build` (WATCHER), and `tests`.

    `select`: the job's dbt selection (include/products/<product>.yml); `pool`: the product's pool
    (one build of a product at a time, other products side by side).
    """
    require_manifest()
    select = list(select)
    watcher = EXECUTION_MODE == ExecutionMode.WATCHER
    operator_args = {"env": DBT_ENV, "full_refresh": "{{ params.full_refresh }}", "install_deps": False}
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR, manifest_path=MANIFEST, project_name=PROJECT_NAME, partial_parse=True
        ),
        profile_config=profile_config(),
        execution_config=ExecutionConfig(
            execution_mode=EXECUTION_MODE,
            invocation_mode=INVOCATION_MODE,
            dbt_executable_path=DBT_EXECUTABLE,
            # a model's tests whose parents are all in the layer: a silver build never tests gold
            # tables, which may not exist yet (LOCAL: a model's build task)
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
            # the producer does not rerun on retry (Cosmos skips it and each failed model's sensor
            # reruns that model alone), so its one retry need not wait
            setup_operator_args={
                "retry_delay": timedelta(seconds=5),
                "retry_exponential_backoff": False,
                "indirect_selection": TestIndirectSelection.CAUTIOUS.value,
            }
            if watcher
            else None,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=select,
            # WATCHER: a sensor per model; the tests run in the producer's build (below), their
            # verdict is the `tests` task. LOCAL (benchmark only): a `dbt build` task per model.
            test_behavior=TestBehavior.NONE if watcher else TestBehavior.BUILD,
            emit_datasets=False,  # the DAG publishes one asset per layer (`published`), not one per model
            # the UI shows `fct_browser_run`, not Cosmos' task id `fct_browser_run_run` (ids unchanged)
            normalize_task_display_name=_model_name,
        ),
        operator_args={**operator_args, **({"poke_interval": 5} if watcher else {})},
    )
    if not watcher:  # a task per model (benchmark only): the `select` param does not apply
        return group
    producer = group.children[f"{group_id}.{PRODUCER_WATCHER_TASK_ID}"]
    layer_select = "{{ medallion_selection('" + " ".join(select) + "', params.select) }}"
    producer.select = layer_select
    # TestBehavior.NONE makes Cosmos leave the tests out of the build (`--resource-type model ...`):
    # they stay in it, so each model's tests run right after it and a failing one stops its children.
    producer.dbt_cmd_flags = without_option(producer.dbt_cmd_flags or [], "--resource-type")
    # Silver and gold both fire on schedules and on assets; one build of a product at a time, so a
    # gold build never reads silver tables while a silver build replaces them (sensors only poll: not
    # in the pool). Each product has its own pool: independent products build side by side.
    producer.pool = pool
    producer.on_execute_callback = [_forget_last_runs_test_results]
    # Sensors wait on the producer's build. Making them its downstream (whatever its outcome, like
    # Cosmos' DbtDag does) lets dag.test(), which runs one task at a time, run the build first.
    for root in group.get_roots():
        if root is not producer:
            producer >> root
            root.trigger_rule = "all_done"
    leaves = list(group.get_leaves())
    tests = LayerTests(
        task_id="tests",
        task_group=group,
        producer_task_id=producer.task_id,
        project_dir=str(DBT_PROJECT_DIR),
        profile_config=profile_config(),
        dbt_executable_path=DBT_EXECUTABLE,
        invocation_mode=INVOCATION_MODE,
        select=layer_select,
        indirect_selection=TestIndirectSelection.CAUTIOUS.value,
        emit_datasets=False,
        pool=pool,  # its rerun reads tables a build of the other layer may be replacing
        trigger_rule="all_done",  # after the build and every model's sensor (retries included), whatever their outcome
        env=DBT_ENV,
        install_deps=False,
    )
    tests.set_upstream(leaves)
    return group


def publish(asset: Asset):
    """A task that emits the layer's asset, with the interval it processed in the event's extra."""

    @task(task_id="published", outlets=[asset])
    def published() -> dict[str, str]:
        context = get_current_context()
        interval = run_interval(context.get("data_interval_start"), context.get("data_interval_end"),
                                context.get("triggering_asset_events"))  # fmt: skip
        if interval:
            context["outlet_events"][asset].extra = interval
        log.info("%s published for %s", asset.name, interval or "every key (no interval)")
        return interval

    return published()


def dbt_dags(p: Product, layer: str, deadline: timedelta, doc_md: Callable[[Product, DbtJob, str], str]) -> list[DAG]:
    """One DAG per dbt job of the product in `layer` (`<job>_<product>`): the job's selection as a Cosmos
    task group in the product's dbt pool, then `published` (the job's asset). Schedule: the job's cron,
    and/or its upstream job's asset; none (`schedule: null`) means on demand only."""
    dags = []
    for job in (j for j in p.dbt_jobs if j.layer == layer):
        dag_id = p.dag_id(job.name)
        with DAG(
            dag_id=dag_id,
            description=f"{p.id}: dbt {layer} job {job.name} ({' '.join(job.select)}), via Cosmos"[:200],
            schedule=schedule(job.schedule, dagkit.asset(job.after, p.id) if job.after else None),
            start_date=dagkit.START_DATE,
            catchup=False,
            max_active_runs=1,
            default_args=dagkit.default_args(owner=p.owner),
            deadline=dagkit.deadline(deadline),
            tags=[layer, p.id, "dbt"],
            doc_md=doc_md(p, job, dag_id),
            params=params(),
            user_defined_macros=USER_DEFINED_MACROS,
        ) as dag:
            dbt_task_group(job.select, p.dbt_pool) >> publish(dagkit.asset(job.name, p.id))
        dags.append(dag)
    return dags


def when_doc(p: Product, job: DbtJob) -> str:
    """When a dbt job's DAG runs (see `schedule`), for its doc_md."""
    if job.schedule is None:
        return "**on demand only** (`schedule: null`: no schedule, no upstream asset; trigger it by hand or the API)"
    when = f"on schedule `{job.schedule}` (UTC)"
    if job.after:
        when += (f" and when `{p.dag_id(job.after)}` has published (asset `{dagkit.asset(job.after, p.id).name}`; "
                 "the interval comes from its event)")  # fmt: skip
    return when + ", each run on its own data interval (so it can be backfilled)"


# --- the dbt docs in the Airflow UI ------------------------------------------------------------


def docs_dir() -> Path:
    """Where `dbt docs generate` publishes the docs: MEDALLION_DBT_DOCS_DIR, else include/dbt/target/docs.

    The api-server reads it: Cosmos' dbt docs plugin serves this folder under Browse → "dbt Docs"
    (`[cosmos] dbt_docs_projects`, set by the local stack and docker-compose.yaml). A folder every
    Airflow process sees: Docker mounts one volume on the workers (writers) and the api-server (reader).
    """
    return Path(os.environ.get("MEDALLION_DBT_DOCS_DIR") or DBT_PROJECT_DIR / "target" / "docs")


DOCS_FILES = ("index.html", "manifest.json", "catalog.json")
# the docs page's slug in `[cosmos] dbt_docs_projects` (medallion.local.localstack.dbt_docs_projects,
# docker-compose.yaml): /cosmos/medallion/dbt_docs_index.html
DOCS_SLUG = PROJECT_NAME


class DocsNotGenerated(AirflowException):
    """`dbt docs generate` succeeded but left out a file the docs page needs."""


def publish_docs(project_dir: str, to: Path | str | None = None, **_: Any) -> Path:
    """Copy the docs dbt wrote in Cosmos' temporary project copy to `to` (default: docs_dir()).

    Each file is written beside its final name and renamed over it, so the api-server never serves
    a half-written file (the docs DAG runs one at a time: no two runs write at once).
    """
    target, out = Path(project_dir) / "target", Path(to or docs_dir())
    missing = [name for name in DOCS_FILES if not (target / name).is_file()]
    if missing:
        raise DocsNotGenerated(f"dbt docs generate wrote no {', '.join(missing)} in {target}")
    out.mkdir(parents=True, exist_ok=True)
    for name in DOCS_FILES:
        partial = out / f".{name}.partial"
        shutil.copyfile(target / name, partial)
        os.replace(partial, out / name)
    log.info("dbt docs published to %s (%s)", out, ", ".join(DOCS_FILES))
    return out


def docs_task(task_id: str = "generate_docs") -> DbtDocsLocalOperator:
    """`dbt docs generate` of the whole project (every product's models, the warehouse's catalog),
    published to docs_dir() for the Airflow UI."""
    return DbtDocsLocalOperator(
        task_id=task_id,
        project_dir=str(DBT_PROJECT_DIR),
        profile_config=profile_config(),
        dbt_executable_path=DBT_EXECUTABLE,
        invocation_mode=INVOCATION_MODE,
        partial_parse=True,
        install_deps=False,
        # no interval: docs compile every model as a full run would; no dbt.log (see DBT_ENV)
        env={"DBT_LOG_LEVEL_FILE": "none"},
        emit_datasets=False,
        callback=publish_docs,
    )
