"""Gold layer: dbt marts and metric views from silver, via Cosmos."""

from __future__ import annotations

from airflow.sdk import DAG

from medallion import dagkit, transform

DOCS = """
# gold — silver → `gold_marts` (tables) and `gold_metrics` (KPI views)

**What**: one `dbt build` of `include/dbt/models/marts` and `models/metrics` (models and their
tests), rendered by Cosmos from `include/dbt/target/manifest.json`. The `dbt_producer_watcher`
task runs the build; each `<model>_run` task is a light sensor showing that model's result;
`tests` is the verdict of the layer's data tests. Marts are rebuilt in full on every run (they
read the silver facts and dimensions), so a gold run is always consistent with silver. Metric
definitions (MRR, active organizations, error rate, retention...): `include/dbt/README.md`.
Last task `published` emits the `gold_tables` asset.

**Upstream**: runs when `silver` has published (asset `silver_tables`) and also hourly on its own data
interval. Connection: `warehouse` (dbt profile built from it by Cosmos).

**When it fails** (you got an email):
1. A red `<model>_run` names the model; a red `tests` means a data test failed (its log lists
   the failing tests). The `dbt_producer_watcher` log has the build's output.
2. The producer is skipped on retry (Cosmos watcher mode): each failed model's sensor reruns that
   model alone, and `tests` reruns the layer's tests once the sensors are done.
3. A failed data test (e.g. `assert_mrr_agrees_across_models`, `recency`) usually means silver is
   behind or wrong: check the last `silver` run first, rerun it, then gold.
4. Reruns are always safe (gold is rebuilt from silver). Backfill a range:
   `make backfill FROM=... TO=...` (bronze → silver → gold per hour of [FROM, TO)), or on the live stack
   `airflow backfill create --dag-id gold --from-date FIRST --to-date LAST` (the first and
   last hours' starts, both included) after silver's.

**Deadline**: a run not done `MEDALLION_GOLD_DEADLINE_MINUTES` (default 60) after it was queued
(a scheduled run at its interval end, an asset-triggered one when its upstream published) sends
one `[medallion] LATE gold ...` email naming the run and how late it is; a failed run does not
(its FAILED email is the alert), nor does a backfill.

**Manual run**: params `full_refresh` and `select` (a dbt selection within the layer, e.g. `v_mrr`).

**Alerts** go to the Airflow Variable `alert_emails` (Admin → Variables), else env
`MEDALLION_ALERT_EMAILS`: one email per problem (a failing model is one email, not one per run).
"""

with DAG(
    dag_id="gold",
    description="dbt gold (marts + metrics) from silver, via Cosmos",
    schedule=transform.schedule(dagkit.SILVER),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dagkit.default_args(),
    deadline=dagkit.deadline(dagkit.GOLD_DEADLINE),
    tags=["gold", "dbt"],
    doc_md=DOCS,
    params=transform.params(),
    user_defined_macros=transform.USER_DEFINED_MACROS,
) as dag:
    transform.dbt_task_group("gold") >> transform.publish(dagkit.GOLD)
