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
  `freshness` in `include/dbt/models/staging/browser_infra/_browser_infra__sources.yml`.
- **silver** and **gold** tables (`silver_core.*`, `gold_marts.*`): age of the newest interval the
  data covers, not of the last rebuild: `max(covered_by)` + one grain, e.g. a daily mart whose
  newest `date_day` is the 21st covers until the 22nd 00:00 UTC; silver's incremental facts cover
  until their newest `_cursor` (source change). Declared in the dbt project: `meta.covered_by` and
  `meta.freshness` in `include/dbt/dbt_project.yml` (the whole marts folder; four silver facts),
  overridden in a model's YAML. Each check measures the tables into `ops.gold_coverage` first. A
  table that does not exist (never built), is empty or cannot be measured reads as stale and says why.
- **holes** in bronze: hourly intervals between a table's first load and its newest that no
  successful load read (`ops.replication_gaps`), e.g. runs the scheduler never created.

The SLAs are copied into `ops.table_slas` on every check; the result is the view
`ops.table_freshness` (worst first: kind, table, last load or covered-until, age, SLA, status,
failing since, last error, a link to the DAG's runs). `bronze_browser_infra` runs the same check after
each load; this schedule also notices a DAG that silently stopped running (paused, scheduler down,
stuck run).

**Emails**: one when tables go stale or get worse (`[medallion] WARN` / `STALE`, with the
catch-up command: a bronze manual run, or `airflow dags trigger silver_<product>` / `gold_<product>`), nothing while
they stay stale, one `RECOVERED` when they are fresh again (`ops.freshness_incidents`). One
`HOLE` email per hole with the exact `airflow backfill create ... --from-date ... --to-date ...`
(both dates included, each an interval's start), one when it is loaded (`ops.gap_incidents`).
One `RECOVERED` email when a failing bronze load's table loads again (`ops.failure_problems`).
Every check also sends the alerts still waiting in the outbox (`ops.alert_outbox`).

**Recipients**: one email per product, to its on-call: the Airflow Variable `alert_emails_<product>`,
else `alert_emails` in `include/products/<product>.yml`, else the Airflow Variable `alert_emails`
(Admin → Variables, comma-separated), else env `MEDALLION_ALERT_EMAILS` of the workers and triggerer
(not visible in the UI).

**When it fails** (you got a FAILED email for this DAG, or see it red):
- *N alert(s) not sent, kept in ops.alert_outbox*: SMTP (`smtp_default`) is down or refuses;
  nothing is lost: each check retries them (`select * from ops.alert_outbox_status`). Fix the
  connection; the next check sends them, each once.
- *cannot read freshness from the warehouse*: the `warehouse` connection is down; stale data
  alone never fails the check. Until it runs again nobody is told about stale tables; alerts from
  failing tasks meanwhile go out directly, or are logged in full in their task's log.
- *dbt manifest not found*: the image or checkout lacks `include/dbt/target/manifest.json`
  (silver and gold SLAs are read from it): `make manifest`, or rebuild the image.
Fix, then clear the task or wait for the next run (it retries twice).
"""

with DAG(
    dag_id="freshness",
    description="Check bronze (last load), silver and gold (data covered) against their SLAs, and holes; email",
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
        """Compare every table's age (bronze: last load, silver/gold: data covered) with its SLA; email on changes."""
        return freshness.check()

    check_freshness()
