"""Silver layer: dbt staging views and core entities/facts from bronze_supabase, via Cosmos."""

from __future__ import annotations

from airflow.sdk import DAG

from medallion import dagkit, transform

DOCS = """
# silver — bronze_supabase → `silver_stg` (views) and `silver_core` (tables)

**What**: one `dbt build` of `include/dbt/models/staging` and `models/core` (models and their
tests), rendered by Cosmos from `include/dbt/target/manifest.json`. The `dbt_producer_watcher`
task runs the build; each `<model>_run` task is a light sensor showing that model's result as dbt
reports it; `tests` is the verdict of the layer's data tests. The incremental facts
(`core_sessions`, `fct_browser_run`, `fct_event`, `fct_usage`) process only the keys bronze
touched in the run's interval (`MEDALLION_INTERVAL_START` / `_END` in dbt's environment);
everything else is rebuilt. Last task `published` emits the `silver_tables` asset, which starts `gold`.

**Upstream**: runs when `bronze_supabase` lands (asset `bronze_supabase_tables`; the interval comes from
the bronze run's event) and also hourly on its own data interval, so it can be backfilled.
Connection: `warehouse` (dbt profile built from it by Cosmos).

**When it fails** (you got an email):
1. A red `<model>_run` names the model; a red `tests` means a data test failed (its log lists
   the failing tests). The `dbt_producer_watcher` log has the build's output.
2. The producer never reruns on retry (it is skipped, by design of Cosmos' watcher mode): each
   failed model's sensor reruns that model alone (`dbt run --select <model>`), and `tests` reruns
   the layer's tests once the sensors are done. Clearing either does the same after a fix.
3. A failed data test means bad data or a broken assumption: query the model, fix upstream (or
   the model), then clear `tests`, or trigger with `select` = the model and its children
   (`core_sessions+`).
4. *on_schema_change* / a new column: trigger with `full_refresh` on.
5. Reruns are always safe (incremental models recompute touched keys from bronze). Backfill a
   range: `make backfill FROM=... TO=...` (bronze → silver → gold per hour of [FROM, TO)), or on the live stack
   `airflow backfill create --dag-id silver --from-date FIRST --to-date LAST` (the first and
   last hours' starts, both included).

**Deadline**: a run not done `MEDALLION_SILVER_DEADLINE_MINUTES` (default 60) after it was queued
(a scheduled run at its interval end, an asset-triggered one when its upstream published) sends
one `[medallion] LATE silver ...` email naming the run and how late it is; a failed run does not
(its FAILED email is the alert), nor does a backfill.

**Manual run**: params `full_refresh` (rebuild incrementals from all of bronze) and `select` (a dbt
selection within the layer). A manual run without an interval processes every key.

**Alerts** go to the Airflow Variable `alert_emails` (Admin → Variables), else env
`MEDALLION_ALERT_EMAILS`: one email per problem (a failing model is one email, not one per run).
"""

with DAG(
    dag_id="silver",
    description="dbt silver (staging + core) from bronze_supabase, via Cosmos",
    schedule=transform.schedule(dagkit.BRONZE_SUPABASE),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dagkit.default_args(),
    deadline=dagkit.deadline(dagkit.SILVER_DEADLINE),
    tags=["silver", "dbt"],
    doc_md=DOCS,
    params=transform.params(),
    user_defined_macros=transform.USER_DEFINED_MACROS,
) as dag:
    transform.dbt_task_group("silver") >> transform.publish(dagkit.SILVER)
