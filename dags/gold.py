"""Gold layer: per product and gold dbt job, its marts and metric views from silver, via Cosmos."""

from __future__ import annotations

from airflow.sdk import DAG

from medallion import config, dagkit, transform


def docs(p: config.Product, job: config.DbtJob, dag_id: str) -> str:
    select = " ".join(job.select)
    upstream = (
        f"runs when `{p.dag_id(job.after)}` has published (asset `{dagkit.asset(job.after, p.id).name}`; the "
        "interval comes from its event)"
        if job.after
        else "runs"
    )
    when = (
        f"on schedule `{job.schedule}` (UTC)"
        if job.schedule
        else (
            "**on demand only** (`schedule: null`: no schedule, no upstream asset; trigger it by hand or from the API)"
        )
    )
    return f"""
# {dag_id} — product `{p.id}`: silver → its marts (tables) and metric views

{p.description}

**What**: {when}, one `dbt build` of `{select}` (models and their
tests; include/products/{p.id}.yml), rendered by Cosmos from `include/dbt/target/manifest.json`.
The `dbt_producer_watcher`
task runs the build; each `<model>_run` task is a light sensor showing that model's result;
`tests` is the verdict of the layer's data tests. Marts are rebuilt in full on every run (they
read the silver facts and dimensions), so a gold run is always consistent with silver. Metric
definitions (MRR, active organizations, error rate, retention...): `include/dbt/README.md`.
Last task `published` emits the `{dagkit.asset(job.name, p.id).name}` asset.

**Upstream**: {upstream} and on its own data interval. Connection: `warehouse` (dbt profile built from it by Cosmos).

**When it fails** (you got an email):
1. A red `<model>_run` names the model; a red `tests` means a data test failed (its log lists
   the failing tests). The `dbt_producer_watcher` log has the build's output.
2. The producer is skipped on retry (Cosmos watcher mode): each failed model's sensor reruns that
   model alone, and `tests` reruns the layer's tests once the sensors are done.
3. A failed data test (e.g. `assert_mrr_agrees_across_models`, `recency`) usually means silver is
   behind or wrong: check the last `silver` run first, rerun it, then gold.
4. Reruns are always safe (gold is rebuilt from silver). Backfill a range:
   `make backfill FROM=... TO=...` (bronze → silver → gold per hour of [FROM, TO)), or on the live stack
   `airflow backfill create --dag-id {dag_id} --from-date FIRST --to-date LAST` (the first and
   last hours' starts, both included) after silver's.

**Deadline**: a run not done `MEDALLION_GOLD_DEADLINE_MINUTES` (default 60) after it was queued
(a scheduled run at its interval end, an asset-triggered one when its upstream published) sends
one `[medallion] LATE {dag_id} ...` email naming the run and how late it is; a failed run does not
(its FAILED email is the alert), nor does a backfill.

**Manual run**: params `full_refresh` and `select` (a dbt selection within the layer, e.g. `v_mrr`).

**Alerts** go to the product's on-call: Airflow Variable `alert_emails_{p.id}`, else `alert_emails` in
`include/products/{p.id}.yml`, else the global Variable `alert_emails` / env `MEDALLION_ALERT_EMAILS`:
one email per problem (a failing model is one email, not one per run).
"""


def gold_dags(p: config.Product) -> list[DAG]:
    """One DAG per gold dbt job of the product (`<job>_<product>`), in the product's dbt pool."""
    dags = []
    for job in (j for j in p.dbt_jobs if j.layer == "gold"):
        dag_id = p.dag_id(job.name)
        with DAG(
            dag_id=dag_id,
            description=f"{p.id}: dbt gold job {job.name} ({' '.join(job.select)}), via Cosmos"[:200],
            schedule=transform.schedule(job.schedule, dagkit.asset(job.after, p.id) if job.after else None),
            start_date=dagkit.START_DATE,
            catchup=False,
            max_active_runs=1,
            default_args=dagkit.default_args(owner=p.owner),
            deadline=dagkit.deadline(dagkit.GOLD_DEADLINE),
            tags=["gold", p.id, "dbt"],
            doc_md=docs(p, job, dag_id),
            params=transform.params(),
            user_defined_macros=transform.USER_DEFINED_MACROS,
        ) as dag:
            transform.dbt_task_group(job.select, p.dbt_pool) >> transform.publish(dagkit.asset(job.name, p.id))
        dags.append(dag)
    return dags


# the gold dbt jobs of every product (include/products/*.yml); a broken product gets a DAG that fails with its error
globals().update(dagkit.generate("gold", gold_dags, lambda product: [f"gold_{product}"]))
