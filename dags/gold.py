"""Gold layer: per product and gold dbt job, its marts and metric views from silver, via Cosmos."""

from __future__ import annotations

from medallion import config, dagkit, transform


def docs(p: config.Product, job: config.DbtJob, dag_id: str) -> str:
    return f"""
# {dag_id} — product `{p.id}`: silver → its marts (tables) and metric views

{p.description}

**What**: one `dbt build` of `{" ".join(job.select)}` (models and their tests;
include/products/{p.id}.yml), rendered by Cosmos from `include/dbt/target/manifest.json`.
The `dbt_producer_watcher` task runs the build; each `<model>_run` task is a light sensor showing
that model's result; `tests` is the verdict of the layer's data tests. Marts are rebuilt in full on
every run (they read silver), so a gold run is always consistent with silver. Metric definitions:
the models' descriptions (Browse → dbt Docs) and `include/dbt/README.md`. Last task `published`
emits the `{dagkit.asset(job.name, p.id).name}` asset.

**When**: {transform.when_doc(p, job)}.
Connection: `warehouse` (dbt profile built from it by Cosmos).

**When it fails** (you got an email):
1. A red `<model>_run` names the model; a red `tests` means a data test failed (its log lists
   the failing tests). The `dbt_producer_watcher` log has the build's output.
2. The producer is skipped on retry (Cosmos watcher mode): each failed model's sensor reruns that
   model alone, and `tests` reruns the layer's tests once the sensors are done.
3. A failed data test (two marts that must agree, a `recency` test) usually means silver is behind
   or wrong: check the product's last silver run first, rerun it, then gold.
4. Reruns are always safe (gold is rebuilt from silver). Backfill a range:
   `make backfill FROM=... TO=...` (bronze → silver → gold per interval of [FROM, TO)), or on the live
   stack `airflow backfill create --dag-id {dag_id} --from-date FIRST --to-date LAST` (the first and
   last intervals' starts, both included) after silver's.

**Deadline**: a run not done `MEDALLION_GOLD_DEADLINE_MINUTES` (default 60) after it was queued
(a scheduled run at its interval end, an asset-triggered one when its upstream published) sends
one `[medallion] LATE {dag_id} ...` email naming the run and how late it is; a failed run does not
(its FAILED email is the alert), nor does a backfill.

**Manual run**: params `full_refresh` and `select` (a dbt selection within the layer).

**Alerts** go to the product's on-call: Airflow Variable `alert_emails_{p.id}`, else `alert_emails` in
`include/products/{p.id}.yml`, else the global Variable `alert_emails` / env `MEDALLION_ALERT_EMAILS`:
one email per problem (a failing model is one email, not one per run).
"""


def gold_dags(p: config.Product):
    return transform.dbt_dags(p, "gold", dagkit.GOLD_DEADLINE, docs)


# the gold dbt jobs of every product (include/products/*.yml); a broken product gets a DAG that fails with its error
globals().update(dagkit.generate("gold", gold_dags, lambda product: [f"gold_{product}"]))
