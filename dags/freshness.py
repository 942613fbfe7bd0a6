"""Ops: check every table's freshness against its SLA every 15 minutes and email on-call on changes."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, task

from medallion import dagkit, freshness

DOCS = """
# freshness — are the warehouse's tables as fresh as their SLAs promise?

**What**: every 15 minutes, compares each table's age with its SLA (warn_after / error_after):
- **bronze** tables: age of the last successful load (the newest `success` row of
  `ops.replication_batches`, so an hour with no changed rows still counts); SLA: the table's
  `freshness` in `include/dbt/models/staging/_supabase__sources.yml`.
- **gold** tables (`gold_marts.*`): age of the newest interval the data covers, not of the last
  rebuild: `max(covered_by)` + one grain, e.g. a daily mart whose newest `date_day` is the 21st
  covers until the 22nd 00:00 UTC. Declared in the dbt project: `meta.covered_by` and
  `meta.freshness` for the whole marts folder in `include/dbt/dbt_project.yml`, overridden in a
  model's YAML. Each check measures the tables into `ops.gold_coverage` first. A gold table that
  does not exist (never built), is empty or cannot be measured reads as stale and says why.

The SLAs are copied into `ops.table_slas` on every check; the result is the view
`ops.table_freshness` (kind, table, last load or covered-until, age, SLA, status). `bronze_supabase`
runs the same check after each load; this schedule also notices a DAG that silently stopped
running (paused, scheduler down, stuck run).

**Emails** (to the Variable `alert_emails`, else `MEDALLION_ALERT_EMAILS`): one when tables go stale
or get worse (`[medallion] WARN` / `STALE`, with the catch-up command: a bronze manual run, or
`airflow dags trigger gold`), nothing while they stay stale, one `RECOVERED` when they are fresh
again. Incidents are rows of `ops.freshness_incidents`, so restarts and several workers
never repeat or lose one.

**When it fails** (you got a FAILED email for this DAG): the check itself could not run, usually
the warehouse connection (`warehouse`) or SMTP (`smtp_default`) is down; stale data alone never
fails it. Fix the connection, then clear the task or wait for the next run (it retries twice).
Until it runs again nobody is told about stale tables: `select * from ops.table_freshness`.
A `dbt manifest not found` error: the image or checkout lacks `include/dbt/target/manifest.json`
(gold SLAs are read from it): `make manifest`, or rebuild the image.
"""

with DAG(
    dag_id="freshness",
    description="Check bronze (last load) and gold (data covered) against their SLAs; email on changes",
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
        """Compare every table's age (bronze: last load, gold: data covered) with its SLA; email on changes."""
        return freshness.check()

    check_freshness()
