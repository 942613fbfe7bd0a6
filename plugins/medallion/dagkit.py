"""What every DAG of the bundle shares: owner, retries with backoff, alerts, deadlines, start date, assets."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, AsyncCallback, DeadlineAlert, DeadlineReference

from medallion import alerts, oncall
from medallion.config import ConfigError, Product

log = logging.getLogger(__name__)

OWNER = "data-platform"
TIMEZONE = "UTC"
# First interval the schedules cover: bronze catches up every interval since (its loads read exactly
# their interval, so a skipped one would be a hole), silver/gold/freshness only the latest. A deployment
# sets it to when it starts loading; the local stack pins it to the hour before its first use
# (localstack.Stack.start_date), so unpausing never starts a month-long catch-up.
START_DATE = pendulum.parse(os.environ.get("MEDALLION_START_DATE", "2026-11-01T00:00:00+00:00"))


def asset(layer: str, product: str) -> Asset:
    """One asset per product and layer: silver_<product> runs when bronze has landed, gold when silver has.

    Named for the tables, not like the DAGs, so lineage reads
    `bronze_browser_infra -> bronze_browser_infra_tables -> silver_browser_infra -> ...`.
    """
    return Asset(name=f"{layer}_{product}_tables", uri=f"x-medallion://warehouse/{layer}_{product}")


def _minutes(env: str, default: int) -> timedelta:
    value = os.environ.get(env, str(default))
    try:
        minutes = float(value)
    except ValueError:
        raise ConfigError(f"{env} must be a number of minutes, got {value!r}") from None
    if minutes <= 0:
        raise ConfigError(f"{env} must be a positive number of minutes, got {value!r}")
    return timedelta(minutes=minutes)


# How long after it is queued a layer's run may take before on-call hears about it: a scheduled run
# is queued at its interval end, an asset-triggered silver/gold run when its upstream layer published.
BRONZE_DEADLINE = _minutes("MEDALLION_BRONZE_DEADLINE_MINUTES", 45)
# Silver and gold: one dbt build each, which may wait behind the other layer's build.
SILVER_DEADLINE = _minutes("MEDALLION_SILVER_DEADLINE_MINUTES", 60)
GOLD_DEADLINE = _minutes("MEDALLION_GOLD_DEADLINE_MINUTES", 60)


def default_args(owner: str = OWNER, **overrides) -> dict:
    args = {
        "owner": owner,
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        # one email per task failure, after the last retry (Airflow calls on_retry_callback before)
        "on_failure_callback": oncall.on_task_failure,
    }
    return {**args, **overrides}


def deadline(within: timedelta) -> DeadlineAlert:
    """Email on-call when a run is not done `within` after it was queued.

    The scheduler queues a scheduled run when its data interval ends, so this is "within N minutes
    of the interval end", without firing for every catch-up run (each is queued when it can start).
    The callback runs in the triggerer; it stays quiet for failed runs (their FAILED email is the
    alert) and for backfills.
    """
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=within,
        callback=AsyncCallback(oncall.on_deadline_missed, kwargs={"within_minutes": within.total_seconds() / 60}),
    )


def generate(layer: str, build: Callable[[Product], list[DAG]], fallback_ids: Callable[[str], list[str]]) -> dict:
    """One layer's DAGs for every product: `build(product)` makes a product's DAGs.

    A product whose declaration is broken (ConfigError, or anything its DAGs fail on while built) never
    stops the others: it gets, under each of its `fallback_ids(product)`, a DAG whose only task fails at
    once with the one-line error, hourly, so on-call gets the FAILED email and the UI shows it red.
    Returns {dag_id: DAG} for the DAG file's globals.
    """
    from medallion import config

    dags: dict[str, DAG] = {}
    for product_id in config.product_ids():
        try:
            built = build(config.product(product_id))
        except OSError:  # a file every product needs (the dbt manifest): the bundle's import error, not one product's
            raise
        except Exception as exc:  # noqa: BLE001 - any broken product must leave the others parsed
            message = f"product {product_id}: {alerts.first_line(exc)}"
            log.error("%s DAGs of %s not built: %s", layer, product_id, message)
            built = [broken_dag(dag_id, product_id, layer, message) for dag_id in fallback_ids(product_id)]
        dags.update({dag.dag_id: dag for dag in built})
    return dags


def broken_dag(dag_id: str, product_id: str, layer: str, message: str) -> DAG:
    """A DAG standing for a product whose declaration is broken: its one task fails with the error."""
    from airflow.sdk import CronTriggerTimetable, task
    from airflow.sdk.exceptions import AirflowFailException

    doc = f"""
# {dag_id} — product `{product_id}` cannot be built

Its declaration is broken, so its {layer} DAGs are replaced by this one, whose task fails every hour
with the error (one FAILED email per problem). Other products are not affected.

**Error**: `{message}`

**When it fails**: fix the file and line the error names (`include/products/{product_id}.yml` or
`include/dbt/models/staging/{product_id}/_{product_id}__sources.yml`); the DAG processor then
builds the product's real DAGs.
"""
    with DAG(
        dag_id=dag_id,
        description=f"BROKEN declaration of product {product_id}: {message}"[:200],
        schedule=CronTriggerTimetable("0 * * * *", timezone=TIMEZONE),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(retries=0),
        tags=[layer, product_id, "broken"],
        doc_md=doc,
    ) as dag:

        @task(task_id="declaration_error")
        def declaration_error() -> None:
            """Fails at once: the product's declaration must be fixed (a retry cannot help)."""
            raise AirflowFailException(message)

        declaration_error()
    return dag
