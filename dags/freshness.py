"""Ops: check every table's freshness against its SLA every 15 minutes and email on-call on changes."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, task

from medallion import dagkit, freshness

DOCS = """
# freshness — are the warehouse's tables as fresh as their SLAs promise?

**What**: every 15 minutes, compares each declared table's last successful load (the newest
`success` row of `ops.replication_batches`, so an hour with no changed rows still counts) with its
SLA, the `freshness` (warn_after / error_after) declared once per table in
`include/dbt/models/staging/_supabase__sources.yml`. The SLAs are copied into `ops.table_slas` on
every check; the result is the view `ops.table_freshness` (last load, age, SLA, status, rows of the
last batch). `bronze_supabase` runs the same check after each load; this schedule also notices a
DAG that silently stopped running (paused, scheduler down, stuck run).

**Emails** (to the Variable `alert_emails`, else `MEDALLION_ALERT_EMAILS`): one when tables go stale
or get worse (`[medallion] WARN` / `STALE`), nothing while they stay stale, one `RECOVERED` when they
are fresh again. Incidents are rows of `ops.freshness_incidents`, so restarts and several workers
never repeat or lose one.

**When it fails** (you got a FAILED email for this DAG): the check itself could not run, usually
the warehouse connection (`warehouse`) or SMTP (`smtp_default`) is down; stale data alone never
fails it. Fix the connection, then clear the task or wait for the next run (it retries twice).
Until it runs again nobody is told about stale tables: `select * from ops.table_freshness`.
"""

with DAG(
    dag_id="freshness",
    description="Check each table's last load against its SLA; email when tables go stale or recover",
    schedule=CronTriggerTimetable("*/15 * * * *", timezone=dagkit.TIMEZONE),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=14),
    default_args=dagkit.default_args(retries=2, max_retry_delay=timedelta(minutes=4)),
    tags=["ops", "freshness", "alerts"],
    doc_md=DOCS,
) as dag:

    @task
    def check_freshness() -> dict:
        """Compare every table's last load with its SLA; email when tables go stale or recover."""
        return freshness.check()

    check_freshness()
