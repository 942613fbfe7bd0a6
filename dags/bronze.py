"""Bronze layer: per product, replicate its Supabase database into the warehouse (bronze_<product>)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task

from medallion import bronze, config, dagkit, freshness


def docs(p: config.Product) -> str:
    return f"""
# bronze_{p.id} — product `{p.id}`: Supabase → warehouse `bronze_{p.id}`

{p.description}

**What**: on schedule `{p.schedules["bronze"]}` (UTC), copies the rows of each declared table
whose cursor (`updated_at`) falls in the run's data interval (minus a lookback for late commits)
from the Supabase database into `bronze_{p.id}.<table>` in the warehouse, with binary COPY. One mapped task per table.
Tables and their keys, cursors, modes and freshness SLAs are declared once in
`include/dbt/models/staging/{p.id}/_{p.id}__sources.yml`. Tables: {", ".join(p.tables)}.

**Guarantees**: a batch commits together with its ledger row (`ops.replication_batches`) or not
at all; re-running an interval writes nothing twice (bronze keeps one row per key and cursor);
a table's first load takes all its history. Hard deletes, and rows a load missed, are
found and repaired by `bronze_{p.id}_reconcile`.

**Connections**: `{p.source_conn_id}` (session pooler on 5432 or direct, a role that bypasses RLS),
`warehouse`.

**When it fails** (you got an email):
1. Open the failed task's log and find the error: its **first line** names the table and the reason
   (`bronze_{p.id}.T: load failed: <reason> (source|warehouse, connection '<id>', during COPY)`
   for a mid-COPY break); the lines after it are the traceback, not the cause.
2. *cannot connect to connection ...* or *(source|warehouse, connection ...)*: that database is down
   or the credentials changed; fix the connection, then clear the failed task (it retries 3× with
   backoff on its own first).
3. *schema drift in bronze_{p.id}.T.C*: a source column changed type in a way bronze does not
   follow on its own. The message ends with the command to run in the warehouse, e.g.
   `select ops.alter_column_type('bronze_{p.id}.T', 'C', 'text')`: it converts bronze's column
   and recreates silver's views on it (grants and comments kept) in one transaction; then clear the
   task. *source type ... bronze cannot hold it*: a column of a pseudo-type; *_cursor is ... but the
   declared cursor needs ...*: the cursor changed kind; both say what to do.
4. *unknown table / not found in source*: the YAML declaration and the source disagree.
5. Re-running is always safe: the command in the FAILED email (`airflow tasks clear bronze_{p.id}
   -t load -s LOGICAL_DATE -e LOGICAL_DATE -f -d -y`: `-t` is the task id, not a regex) or a backfill:
   `airflow backfill create --dag-id bronze_{p.id} --from-date FIRST --to-date LAST`, where FIRST
   and LAST are the *starts* of the first and last hours to load, both included (the UI's Backfill
   From/To alike; `make backfill FROM TO` instead takes the end, TO excluded).

**Alerts** (to the product's on-call: Airflow Variable `alert_emails_{p.id}`, else `alert_emails` in
`include/products/{p.id}.yml`, else the global Variable `alert_emails` / env `MEDALLION_ALERT_EMAILS`): a task
that fails after its last retry sends one email per problem (error, log, what is stale, the command
to re-run): the same error in later runs sends nothing, a reminder at most every 4 hours, one
email when the table loads again (`ops.failure_problems`). Every failed load is a `failed` row of
`ops.replication_batches`. `check_freshness` runs last, even when loads failed, and emails when
tables go stale against their SLA or recover, and holes in the loaded intervals; it never fails
the run for stale data. Undelivered alerts wait in `ops.alert_outbox` and are retried. A run still not done
`MEDALLION_BRONZE_DEADLINE_MINUTES` (default 45) after it was queued, i.e. after its interval end,
sends a deadline email. Freshness at any time: `select * from ops.table_freshness`.

**Manual run**: Trigger with params: `tables` (empty = all) and `full_refresh` (rebuild the bronze
table from a fresh snapshot). Without a logical date a run continues from the last loaded window.
"""


def bronze_dag(p: config.Product) -> list[DAG]:
    """The product's bronze DAG: a mapped load per table, the asset silver runs on, a freshness check."""
    landed_asset = dagkit.asset("bronze", p.id)
    with DAG(
        dag_id=p.dag_id("bronze"),
        description=f"{p.id}: replicate its Supabase tables into bronze_{p.id} (binary COPY, incremental, idempotent)",
        schedule=CronDataIntervalTimetable(p.schedules["bronze"], timezone=dagkit.TIMEZONE),
        start_date=dagkit.START_DATE,
        catchup=True,
        max_active_runs=1,
        default_args=dagkit.default_args(owner=p.owner),
        deadline=dagkit.deadline(dagkit.BRONZE_DEADLINE),
        tags=["bronze", p.id, "replication"],
        doc_md=docs(p),
        params={
            "tables": bronze.tables_param(list(p.tables), "load"),
            "full_refresh": Param(
                False,
                type=["boolean", "null"],  # optional: the form marks a param without `null` as required
                title="Full refresh",
                description="Rebuild the chosen bronze tables from a fresh snapshot of the source (drops history).",
            ),
        },
    ) as dag:

        @task
        def plan_tables(params: dict) -> list[str]:
            """Validate the requested tables (an unknown name fails the run at once)."""
            return bronze.select_tables(params.get("tables"), p.id)

        @task(map_index_template="{{ table }}")
        def load(table: str, params: dict) -> dict:
            """Copy one table's changed rows into bronze (one transaction with its ledger row)."""
            return bronze.load_table(
                p.id, table, full_refresh=bool(params.get("full_refresh")), context=get_current_context()
            )

        @task(outlets=[landed_asset])
        def landed(results: list[dict], outlet_events=None, data_interval_start=None, data_interval_end=None) -> str:
            """All tables loaded: publish the bronze asset (silver runs on it) and log a summary.

            The event carries the run's interval, so an asset-triggered silver run processes just it.
            """
            if data_interval_start is not None and data_interval_end is not None:
                outlet_events[landed_asset].extra = {
                    "interval_start": data_interval_start.isoformat(), "interval_end": data_interval_end.isoformat(),
                }  # fmt: skip
            # one slice request: iterating the lazy sequence reads item by item until a request past the
            # end fails, which Airflow logs as an `XCom not found ... offset=<n>` error on every run
            return bronze.report(results[:])

        # Best effort and quick: the run stays open until it is done, and news it could not email
        # (SMTP or warehouse down) is emailed by the next check of the `freshness` DAG.
        @task(retries=1, retry_delay=timedelta(seconds=15), retry_exponential_backoff=False)
        def check_freshness() -> dict:
            """Compare every table's last load with its SLA; email when tables go stale or recover."""
            return freshness.check(strict=False)

        # A teardown: runs after everything, even when loads failed, and never decides the run's state
        # (a failed load still fails the run through `landed`; stale data does not fail it).
        landed(load.expand(table=plan_tables())) >> check_freshness().as_teardown()
    return [dag]


# one DAG per product (include/products/*.yml); a broken product gets a DAG that fails with its error
globals().update(dagkit.generate("bronze", bronze_dag, lambda product: [f"bronze_{product}"]))
