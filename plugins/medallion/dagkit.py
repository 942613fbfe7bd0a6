"""What every DAG of the bundle shares: owner, retries with backoff, start date, assets, schedules."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset

OWNER = "data-platform"
TIMEZONE = "UTC"
# First interval the schedules cover (catchup runs every interval since). Override per deployment.
START_DATE = pendulum.parse(os.environ.get("MEDALLION_START_DATE", "2026-11-01T00:00:00+00:00"))

# One asset per layer: silver runs when bronze has landed, gold when silver has.
BRONZE_SUPABASE = Asset(name="bronze_supabase", uri="x-medallion://warehouse/bronze_supabase")
SILVER = Asset(name="silver", uri="x-medallion://warehouse/silver")
GOLD = Asset(name="gold", uri="x-medallion://warehouse/gold")


def default_args(**overrides) -> dict:
    args = {
        "owner": OWNER,
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
    }
    return {**args, **overrides}
