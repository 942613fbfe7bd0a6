"""Bronze layer: per product, prove bronze_<product> equals its Supabase, table by table, and repair what differs."""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from medallion import bronze, config, dagkit

# A product's schedule when its YAML declares none (schedules.reconcile).
DEFAULT_SCHEDULE = "30 */6 * * *"


def docs(p: config.Product, tables: list[str], schedule: str) -> str:
    return f"""
# bronze_{p.id}_reconcile — product `{p.id}`: prove bronze equals Supabase, repair what differs

**What**: on schedule `{schedule}` (UTC), for each incremental table, checks that every key's *latest live version*
in `bronze_{p.id}.<table>` is the Supabase row, and repairs bronze where it is not. Tables:
{", ".join(tables)}. One mapped task per table (named by the table).

**How**: both databases checksum the table (count + sum of a hash per key) at the same time; equal
means proven, at about the cost of a scan of each side. When they differ, only the differing key
ranges are split and re-checksummed, and only small differing ranges are compared key by key. Then
one batch (with its `ops.replication_batches` row, mode `reconcile`, all or nothing) appends the
source's current rows for missing / stale keys and tombstones keys deleted in the source. Rows whose
cursor is at or after the last loaded window end are the next load's work and are not compared.

**Checks**: `versions` (every run): key + cursor; finds rows no load saw (late commits, a lookback
too short), hard deletes, and rows with a NULL cursor (hashed in full). `rows` (deep: the 00:30 UTC
run, or the `deep` param): every column; also finds rows updated without moving `updated_at`.

**Emails**: when it appended versions (missing or stale rows): counts per table and the likely
cause (late commits / lookback too short / NULL cursors / updates that kept the cursor). Hard deletes
alone are routine: tombstoned, counted, no email. Silver re-reads every key after a repair (this DAG
publishes bronze's asset without an interval).

**Look**: `select * from ops.table_reconciliation` — when each table was last proven equal, and what
the last run found (checked, missing, stale, deleted, repaired, causes in `findings`).

**When it fails**: the log's last line names the table and the reason; a failed run changes nothing
(its ledger row says `failed`). Clearing the task is always safe: a second run finds nothing left to
repair. It waits for a running load of the same table (one lock per table) and loads wait for it.

**Manual run**: Trigger with params `tables` (empty = all) and `deep`.
"""


def reconcile_dag(p: config.Product) -> list[DAG]:
    """The product's reconciliation DAG: a mapped check per incremental table, a report, a republish."""
    # Full-mode tables are replaced by a fresh snapshot on every load: nothing to prove.
    tables = [t.name for t in p.tables.values() if t.mode == "incremental"]
    schedule = p.schedules.get("reconcile", DEFAULT_SCHEDULE)
    with DAG(
        dag_id=p.dag_id("bronze") + "_reconcile",
        description=f"{p.id}: prove bronze_{p.id} equals its Supabase (checksummed key ranges); repair what differs",
        schedule=CronTriggerTimetable(schedule, timezone=dagkit.TIMEZONE),
        start_date=dagkit.START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=dagkit.default_args(owner=p.owner),
        tags=["bronze", p.id, "reconciliation"],
        doc_md=docs(p, tables, schedule),
        params={
            "tables": bronze.tables_param(tables, "reconcile"),
            "deep": Param(
                False,
                type="boolean",
                title="Deep check",
                description="Compare every column of every row (finds updates that did not move the cursor); slower.",
            ),
        },
    ) as dag:

        @task
        def plan_tables(params: dict) -> list[str]:
            """Validate the requested tables (an unknown name fails the run at once)."""
            return [t for t in bronze.select_tables(params.get("tables"), p.id) if t in tables]

        @task(map_index_template="{{ table }}")
        def reconcile(table: str, params: dict) -> dict:
            """Prove one table equals its source; repair what differs (one batch with its ledger row)."""
            context = get_current_context()
            method = bronze.reconcile_method(bool(params.get("deep")), context.get("dag_run"))
            return bronze.reconcile_table(p.id, table, method=method, context=context)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def report(results: list[dict], run_id=None) -> str:
            """Log what each table's check found; email on-call when versions had to be appended."""
            # one slice request, as bronze's `landed`: iterating the lazy sequence reads past its end,
            # which Airflow logs as an `XCom not found ... offset=<n>` error on every run
            return bronze.report_reconciliation(results[:], run_id, p.id)

        @task(outlets=[dagkit.asset("bronze", p.id)], trigger_rule=TriggerRule.ALL_DONE)  # tables that did repair
        def republish(results: list[dict]) -> list[str]:
            """Versions were appended: publish bronze's asset without an interval, so silver re-reads every
            key (a repaired version carries its own, older cursor: no interval run would pick it up)."""
            tables = [r["table"] for r in results[:] if r and r.get("appended")]
            if not tables:
                raise AirflowSkipException("nothing appended: bronze's asset is not published")
            return tables

        results = reconcile.expand(table=plan_tables())
        report(results)
        republish(results)
    return [dag]


# one DAG per product (include/products/*.yml); a broken product gets a DAG that fails with its error
globals().update(dagkit.generate("bronze", reconcile_dag, lambda product: [f"bronze_{product}_reconcile"]))
