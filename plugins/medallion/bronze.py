"""What the bronze DAG's tasks do: pick tables, load one table, reconcile deletes of one table.

Kept out of the DAG file so the DAG reads like a sentence and the logic is testable on its own.
Errors that a retry cannot fix (bad declaration, schema drift) fail the task at once; connection
trouble and lost loads raise ordinary exceptions and are retried with backoff.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import UTC, datetime

from medallion import config, connections, replication
from medallion.config import ConfigError

log = logging.getLogger(__name__)


def _fail_now(exc: Exception) -> Exception:
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(str(exc))


def select_tables(requested: list[str] | None, source: str) -> list[str]:
    """The tables one run loads: the requested ones (validated) or every table of the source."""
    try:
        declared = {n: t for n, t in config.tables().items() if t.source == source}
        if not requested:
            return list(declared)
        unknown = [t for t in requested if t not in declared]
        if unknown:
            raise ConfigError(
                f"unknown table(s) {', '.join(map(repr, unknown))} for source {source!r}: "
                f"declared tables are {', '.join(sorted(declared))}"
            )
        return [t for t in declared if t in requested]  # declaration order, no duplicates
    except ConfigError as exc:
        raise _fail_now(exc) from None


def tables_param(tables: list[str], what: str):
    """The `tables` param of a bronze DAG's trigger form: a subset of `tables`, empty for all.

    `null` in the type makes the form show it as optional (no `*`); `examples` makes it a pick list
    of the declared tables instead of free text.
    """
    from airflow.sdk import Param

    return Param([], type=["array", "null"], items={"type": "string", "enum": tables}, uniqueItems=True,
                 examples=tables, title="Tables", description=f"Tables to {what}; leave empty for all.")  # fmt: skip


def _run_info(context: dict) -> dict:
    dag_run = context.get("dag_run")
    return {"dag_id": getattr(dag_run, "dag_id", None), "run_id": getattr(dag_run, "run_id", None)}


def load_table(table: str, *, full_refresh: bool, context: dict) -> dict:
    """Replicate one table for the run's data interval; returns the batch summary (XCom)."""
    context["table"] = table  # shown as the mapped task's name in the UI (map_index_template)
    try:
        spec = config.get_table(table)
        with ExitStack() as stack:
            src = stack.enter_context(connections.connect_airflow(spec.source_conn_id, "medallion-bronze"))
            wh = stack.enter_context(connections.connect_airflow(config.WAREHOUSE_CONN_ID, "medallion-bronze"))
            result = replication.replicate(
                spec,
                src,
                wh,
                interval_start=context.get("data_interval_start"),
                interval_end=context.get("data_interval_end"),
                full_refresh=full_refresh,
                run=_run_info(context),
                now=datetime.now(UTC),
            )
    except ConfigError as exc:  # includes schema drift: a retry will not fix it
        raise _fail_now(exc) from None
    return {
        "table": table,
        "batch_id": result.batch_id,
        "mode": result.mode,
        "path": result.path,
        "rows_read": result.rows_read,
        "rows_written": result.rows_written,
        "seconds": round(result.seconds, 3),
        "rows_per_s": round(result.rows_per_s),
        "schema_changes": result.schema_changes,
    }


def reconcile_table(table: str, *, context: dict) -> dict:
    """Tombstone hard deletes of one table."""
    context["table"] = table
    try:
        spec = config.get_table(table)
        if not spec.reconcile_deletes:
            log.info("%s: reconcile_deletes is off (mode %s); nothing to do", spec.qualified, spec.mode)
            return {"table": table, "tombstones": 0}
        with ExitStack() as stack:
            src = stack.enter_context(connections.connect_airflow(spec.source_conn_id, "medallion-deletes"))
            wh = stack.enter_context(connections.connect_airflow(config.WAREHOUSE_CONN_ID, "medallion-deletes"))
            result = replication.reconcile_deletes(spec, src, wh, run=_run_info(context))
    except ConfigError as exc:
        raise _fail_now(exc) from None
    return {"table": table, "source_keys": result.rows_read, "tombstones": result.rows_written}


def report(results: list[dict]) -> str:
    """One line per table, for the run's log and the demo."""
    lines = [f"{'table':24} {'mode':12} {'path':9} {'read':>10} {'written':>10} {'rows/s':>10}"]
    for r in sorted(results, key=lambda r: r["table"]):
        lines.append(
            f"{r['table']:24} {r['mode']:12} {r['path']:9} {r['rows_read']:>10,} {r['rows_written']:>10,} "
            f"{r['rows_per_s']:>10,}"
        )
    text = "\n".join(lines)
    log.info("bronze load summary:\n%s", text)
    return text
