"""Bronze layer: find rows hard-deleted in Supabase and tombstone them in bronze_supabase."""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable, get_current_context, task

from medallion import bronze, config, dagkit

SOURCE = "supabase"
TABLES = [t.name for t in config.sources()[SOURCE] if t.reconcile_deletes]

DOCS = f"""
# bronze_supabase_deletes — hard-delete reconciliation

**What**: every 6 hours, reads the primary keys of each incremental table in Supabase and writes a
tombstone row (`_deleted_at` set, key columns only) into `bronze_supabase.<table>` for every key
that bronze still holds as live but the source no longer has. Incremental loads cannot see hard
deletes (a deleted row has no `updated_at` to find), hence this separate pass. Silver drops keys
whose latest bronze row is a tombstone. Tables: {", ".join(TABLES)}.

**Cost**: one key scan per table in the source and a sort of bronze by key; run it off-peak.

**When it fails**: the log names the table and the reason; clearing the task is always safe
(a key already tombstoned is not tombstoned twice). It waits for a table's running bronze load
(one lock per table).
"""

with DAG(
    dag_id="bronze_supabase_deletes",
    description="Tombstone rows hard-deleted in Supabase (primary-key reconciliation)",
    schedule=CronTriggerTimetable("30 */6 * * *", timezone=dagkit.TIMEZONE),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dagkit.default_args(),
    tags=["bronze", SOURCE, "deletes"],
    doc_md=DOCS,
    params={"tables": bronze.tables_param(TABLES, "reconcile")},
) as dag:

    @task
    def plan_tables(params: dict) -> list[str]:
        """Validate the requested tables (an unknown name fails the run at once)."""
        return [t for t in bronze.select_tables(params.get("tables"), SOURCE) if t in TABLES]

    @task(map_index_template="{{ table }}")
    def reconcile(table: str) -> dict:
        """Compare one table's keys with the source and tombstone the missing ones."""
        return bronze.reconcile_table(table, context=get_current_context())

    reconcile.expand(table=plan_tables())
