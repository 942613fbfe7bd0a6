"""Ops: `dbt docs generate` after any product's gold build, served in the Airflow UI (Browse → dbt Docs)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, AssetAny

from medallion import config, dagkit, transform

# Every product's gold assets: the docs follow the newest gold build, whichever product built it.
# A product whose declaration is broken is left out: its DAGs fail with the error (dagkit.generate).
GOLD_ASSETS = []
for _product_id in config.product_ids():
    try:
        _product = config.product(_product_id)
    except Exception:  # noqa: BLE001 - as dagkit.generate: a broken product never stops the others
        continue
    GOLD_ASSETS += [dagkit.asset(job.name, _product.id) for job in _product.dbt_jobs if job.layer == "gold"]

DOCS = f"""
# docs — the dbt project's documentation, in the Airflow UI

**What**: after every gold build of any product (one of the assets
{", ".join(f"`{a.name}`" for a in GOLD_ASSETS)}), one `dbt docs generate` of the whole dbt project:
every product's sources, models, columns, tests and lineage, and the warehouse's catalog (column
types, row counts). The files (`index.html`, `manifest.json`, `catalog.json`) are copied to
`MEDALLION_DBT_DOCS_DIR` (Docker: the `dbt-docs` volume), which the api-server serves through
Cosmos' dbt docs plugin: **Browse → dbt Docs (medallion warehouse)** opens it in a new tab
(`/cosmos/{transform.DOCS_SLUG}/dbt_docs_index.html`, configured by `[cosmos] dbt_docs_projects`).
One run at a time (two would write the same files).

**Secrets**: the docs contain every model's compiled SQL. No model reads a secret: `env_var()` is
allowed only in `profiles.yml` (connection settings, never compiled into docs) and for the run's
interval (`tests/test_dbt_conventions.py` enforces it).

**When it fails** (you got a FAILED email): the data is not affected, only the docs page is
stale (it keeps the last good docs; the page shows "index not found" before the first run).
- a dbt compile error names the model: the same error fails the next silver/gold build, fix it there;
- *could not connect*: the `warehouse` connection is down (the catalog reads information_schema);
- *dbt docs generate wrote no ...*: dbt's output changed; see the task log.
Rerun: clear the task, or trigger this DAG (safe at any time, it only rewrites the docs folder).
"""

with DAG(
    dag_id="docs",
    description="dbt docs generate after any gold build; served under Browse → dbt Docs",
    schedule=AssetAny(*GOLD_ASSETS) if GOLD_ASSETS else None,
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args=dagkit.default_args(retries=2, max_retry_delay=timedelta(minutes=4)),
    tags=["ops", "docs", "dbt"],
    doc_md=DOCS,
) as dag:
    transform.docs_task()
