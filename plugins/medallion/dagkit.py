"""What every DAG of the bundle shares: owner, retries with backoff, alerts, deadlines, start date, assets."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AsyncCallback, DeadlineAlert, DeadlineReference

from medallion import alerts
from medallion.config import ConfigError

OWNER = "data-platform"
TIMEZONE = "UTC"
# First interval the schedules cover: bronze catches up every interval since (its loads read exactly
# their interval, so a skipped one would be a hole), silver/gold/freshness only the latest. A deployment
# sets it to when it starts loading; the local stack pins it to the hour before its first use
# (localstack.Stack.start_date), so unpausing never starts a month-long catch-up.
START_DATE = pendulum.parse(os.environ.get("MEDALLION_START_DATE", "2026-11-01T00:00:00+00:00"))

# One asset per layer: silver runs when bronze has landed, gold when silver has. Named for the tables,
# not like the DAGs, so lineage reads `bronze_supabase -> bronze_supabase_tables -> silver -> ...`.
BRONZE_SUPABASE = Asset(name="bronze_supabase_tables", uri="x-medallion://warehouse/bronze_supabase")
SILVER = Asset(name="silver_tables", uri="x-medallion://warehouse/silver")
GOLD = Asset(name="gold_tables", uri="x-medallion://warehouse/gold")

# One dbt build on the warehouse at a time (declared in include/airflow/pools.json, config.POOLS_FILE).
DBT_POOL = "medallion_dbt"


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


def default_args(**overrides) -> dict:
    args = {
        "owner": OWNER,
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        # one email per task failure, after the last retry (Airflow calls on_retry_callback before)
        "on_failure_callback": alerts.on_task_failure,
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
        callback=AsyncCallback(alerts.on_deadline_missed, kwargs={"within_minutes": within.total_seconds() / 60}),
    )
