"""Silver layer: per product and silver dbt job, its staging views and core tables from bronze_<product>, via Cosmos."""

from __future__ import annotations

from medallion import config, dagkit, transform


def docs(p: config.Product, job: config.DbtJob, dag_id: str) -> str:
    return f"""
# {dag_id} — product `{p.id}`: bronze_{p.id} → its staging views and core tables

{p.description}

**What**: one `dbt build` of `{" ".join(job.select)}` (models and their tests;
include/products/{p.id}.yml), rendered by Cosmos from `include/dbt/target/manifest.json`.
The `dbt_producer_watcher` task runs the build; each `<model>_run` task is a light sensor showing
that model's result as dbt reports it; `tests` is the verdict of the layer's data tests. The
incremental models process only the keys bronze touched in the run's interval
(`MEDALLION_INTERVAL_START` / `_END` in dbt's environment); everything else is rebuilt. Last task
`published` emits the `{dagkit.asset(job.name, p.id).name}` asset.

**When**: {transform.when_doc(p, job)}.
Connection: `warehouse` (dbt profile built from it by Cosmos).

**When it fails** (you got an email):
1. A red `<model>_run` names the model; a red `tests` means a data test failed (its log lists
   the failing tests). The `dbt_producer_watcher` log has the build's output.
2. The producer never reruns on retry (it is skipped, by design of Cosmos' watcher mode): each
   failed model's sensor reruns that model alone (`dbt run --select <model>`), and `tests` reruns
   the layer's tests once the sensors are done. Clearing either does the same after a fix.
3. A failed data test means bad data or a broken assumption: query the model, fix upstream (or
   the model), then clear `tests`, or trigger with `select` = the model and its children
   (`<model>+`).
4. *on_schema_change* / a new column: trigger with `full_refresh` on.
5. Reruns are always safe (incremental models recompute touched keys from bronze). Backfill a
   range: `make backfill FROM=... TO=...` (bronze → silver → gold per interval of [FROM, TO)), or on the
   live stack `airflow backfill create --dag-id {dag_id} --from-date FIRST --to-date LAST` (the first
   and last intervals' starts, both included).

**Deadline**: a run not done `MEDALLION_SILVER_DEADLINE_MINUTES` (default 60) after it was queued
(a scheduled run at its interval end, an asset-triggered one when its upstream published) sends
one `[medallion] LATE {dag_id} ...` email naming the run and how late it is; a failed run does not
(its FAILED email is the alert), nor does a backfill.

**Manual run**: params `full_refresh` (rebuild incrementals from all of bronze) and `select` (a dbt
selection within the layer). A manual run without an interval processes every key.

**Alerts** go to the product's on-call: Airflow Variable `alert_emails_{p.id}`, else `alert_emails` in
`include/products/{p.id}.yml`, else the global Variable `alert_emails` / env `MEDALLION_ALERT_EMAILS`:
one email per problem (a failing model is one email, not one per run).
"""


def silver_dags(p: config.Product):
    return transform.dbt_dags(p, "silver", dagkit.SILVER_DEADLINE, docs)


# the silver dbt jobs of every product (include/products/*.yml); a broken product gets a DAG that fails with its error
globals().update(dagkit.generate("silver", silver_dags, lambda product: [f"silver_{product}"]))
