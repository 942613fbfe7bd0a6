"""Run the product-analytics pipeline without its DAGs (cheap for many small intervals): replicate the
declared tables into bronze, then `dbt build --select tag:product_analytics` with the interval in
MEDALLION_INTERVAL_START/END, as the DAGs do (tests/test_product_analytics_dags.py runs the DAGs).
Used by tests/test_product_analytics.py and bench/analytics_bench.py."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

import psycopg

from medallion import config, replication, warehouse

PRODUCT = "product_analytics"
SILVER = "tag:product_analytics,path:models/staging tag:product_analytics,path:models/core"
GOLD = "tag:product_analytics,path:models/marts"
SILVER_MODELS = ["events_clean", "api_logs_clean", "user_sessions", "transactions_validated"]
GOLD_MODELS = ["daily_metrics", "user_cohorts", "revenue_summary", "kpi_dashboard"]


def specs() -> list[config.TableSpec]:
    return list(config.tables(PRODUCT).values())


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
) -> str:
    """dbt on the warehouse, in this process (dbtRunner: no interpreter start per run, which dominated
    a 3-day backfill of small intervals), with the profile and interval in the environment like the
    bare CLI. Its own target folder per database. Returns the log text; raises on a failure."""
    from dbt.cli.main import dbtRunner

    project = config.DBT_PROJECT_DIR
    dbname = psycopg.conninfo.conninfo_to_dict(wh_uri)["dbname"]
    target = target or Path(tempfile.gettempdir()) / f"medallion-dbt-{dbname}"
    cli = [command, "--select", *select.split(), "--project-dir", str(project), "--profiles-dir", str(project),
           "--target-path", str(target), "--log-path", str(target / "logs"), "--log-level-file", "none",
           "--log-format", "text", "--quiet", *args]  # fmt: skip
    lines: list[str] = []
    saved = os.environ.copy()
    os.environ.update(dbt_env(wh_uri, start, end))
    try:
        result = dbtRunner(callbacks=[lambda event: lines.append(event.info.msg)]).invoke(cli)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    log = "\n".join(str(line) for line in lines)
    if not result.success:
        raise AssertionError(f"dbt {command} {select} failed:\n{log[-6000:]}\n{result.exception or ''}")
    return log
