"""Run the product-analytics pipeline without DAGs (until the framework wires them): replicate the
declared tables into bronze, then `dbt build --select tag:product_analytics` with the interval in
MEDALLION_INTERVAL_START/END, as the DAGs will. Used by tests/test_product_analytics.py and
bench/analytics_bench.py."""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

import psycopg

from medallion import config, replication, warehouse
from medallion.transform import DBT_EXECUTABLE

PRODUCT = "product_analytics"
SILVER = "tag:product_analytics,path:models/staging tag:product_analytics,path:models/core"
GOLD = "tag:product_analytics,path:models/marts"
SILVER_MODELS = ["events_clean", "api_logs_clean", "user_sessions", "transactions_validated"]
GOLD_MODELS = ["daily_metrics", "user_cohorts", "revenue_summary", "kpi_dashboard"]


def specs() -> list[config.TableSpec]:
    return [s for s in config.load_tables().values() if s.source == PRODUCT]


def load_bronze(src_uri: str, wh_uri: str, start: datetime | None = None, end: datetime | None = None) -> dict:
    """Replicate every declared product-analytics table for [start, end); rows written per table."""
    written = {}
    with psycopg.connect(src_uri) as src, psycopg.connect(wh_uri) as wh:
        warehouse.migrate(wh)
        wh.commit()
        for spec in specs():
            result = replication.replicate(spec, src, wh, interval_start=start, interval_end=end, now=end)
            written[spec.name] = result.rows_written
    return written


def dbt_env(wh_uri: str, start: datetime | None = None, end: datetime | None = None) -> dict[str, str]:
    info = psycopg.conninfo.conninfo_to_dict(wh_uri)
    return {
        **os.environ,
        "WAREHOUSE_HOST": str(info.get("host", "127.0.0.1")),
        "WAREHOUSE_PORT": str(info.get("port", 5432)),
        "WAREHOUSE_USER": str(info.get("user", "postgres")),
        "WAREHOUSE_PASSWORD": str(info.get("password", "")),
        "WAREHOUSE_DB": str(info["dbname"]),
        "MEDALLION_INTERVAL_START": start.isoformat() if start else "",
        "MEDALLION_INTERVAL_END": end.isoformat() if end else "",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def dbt(
    command: str,
    select: str,
    wh_uri: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *args: str,
    target: Path | None = None,
) -> subprocess.CompletedProcess:
    """Bare dbt CLI on the warehouse (its own target folder: parallel test databases don't share one)."""
    project = config.DBT_PROJECT_DIR
    dbname = psycopg.conninfo.conninfo_to_dict(wh_uri)["dbname"]
    target = target or Path(tempfile.gettempdir()) / f"medallion-dbt-{dbname}"
    cmd = [DBT_EXECUTABLE, command, "--select", *select.split(), "--project-dir", str(project),
           "--profiles-dir", str(project), "--target-path", str(target), "--log-path", str(target / "logs"),
           "--log-level-file", "none", *args]  # fmt: skip
    proc = subprocess.run(cmd, env=dbt_env(wh_uri, start, end), capture_output=True, text=True)
    if proc.returncode:
        raise AssertionError(f"dbt {command} {select} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    return proc
