"""What the bronze DAGs' tasks do: pick tables, load one table, reconcile one table with its source.

Kept out of the DAG file so the DAG reads like a sentence and the logic is testable on its own.
Errors that a retry cannot fix (bad declaration, schema drift) fail the task at once; connection
trouble and lost loads raise ordinary exceptions and are retried with backoff.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import UTC, datetime

from medallion import config, connections, reconcile, replication, warehouse
from medallion.config import ConfigError

log = logging.getLogger(__name__)


def _fail_now(exc: Exception) -> Exception:
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(str(exc))


def select_tables(requested: list[str] | None, product: str) -> list[str]:
    """The tables one run loads: the requested ones (validated) or every table of the product."""
    try:
        declared = config.tables(product)
        if not requested:
            return list(declared)
        unknown = [t for t in requested if t not in declared]
        if unknown:
            raise ConfigError(
                f"unknown table(s) {', '.join(map(repr, unknown))} of product {product}: "
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


def load_table(product: str, table: str, *, full_refresh: bool, context: dict) -> dict:
    """Replicate one table for the run's data interval; returns the batch summary (XCom).

    Every failure reaches the ledger as a 'failed' row (so ops.table_freshness shows it): a batch
    that failed records itself; a load that failed before its batch started (schema drift, source
    down, bad declaration) or whose warehouse connection died is recorded here, on a connection
    of its own.
    """
    context["table"] = table  # shown as the mapped task's name in the UI (map_index_template)
    started = datetime.now(UTC)
    try:
        spec = config.get_table(product, table)
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
    except Exception as exc:
        if getattr(exc, "failed_batch_id", None) is None:  # not in the ledger yet
            _record_failed_load(product, table, full_refresh, context, started, exc)
        if isinstance(exc, ConfigError):  # includes schema drift: a retry will not fix it
            raise _fail_now(exc) from None
        raise
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


def _record_failed_load(
    product: str, table: str, full_refresh: bool, context: dict, started: datetime, exc: BaseException
) -> None:
    """A 'failed' ledger row for a load that has none, on a fresh warehouse connection."""
    run = _run_info(context)
    spec = config.find_table(product, table)  # None when the declarations are what failed
    source = product
    mode = "full" if spec and spec.mode == "full" else "full_refresh" if full_refresh else "incremental"
    error = replication._first_line(exc)
    try:
        with connections.connect_airflow(config.WAREHOUSE_CONN_ID, "medallion-bronze-ledger") as wh:
            with wh.transaction():
                warehouse.migrate(wh)
                wh.execute(
                    f"""insert into {config.OPS_SCHEMA}.replication_batches
                          (batch_id, source, table_name, mode, interval_start, interval_end, rows_read, rows_written,
                           seconds, status, error, dag_id, run_id, started_at)
                        values (%s, %s, %s, %s, %s, %s, 0, 0, %s, 'failed', %s, %s, %s, %s)""",
                    (replication.new_batch_id(), source, table, mode, context.get("data_interval_start"),
                     context.get("data_interval_end"), (datetime.now(UTC) - started).total_seconds(), error,
                     run.get("dag_id"), run.get("run_id"), started),
                )  # fmt: skip
        log.info("failed load of %s recorded in the ledger: %s", table, error)
    except Exception:  # the warehouse is down too: the task's own error still says why
        log.exception("could not record the failed load of %s in the ledger", table)


def reconcile_table(product: str, table: str, *, method: str = "versions", context: dict) -> dict:
    """Prove one bronze table equals its source and repair what differs (medallion.reconcile)."""
    context["table"] = table
    try:
        spec = config.get_table(product, table)
        with ExitStack() as stack:
            src = stack.enter_context(connections.connect_airflow(spec.source_conn_id, "medallion-reconcile"))
            wh = stack.enter_context(connections.connect_airflow(config.WAREHOUSE_CONN_ID, "medallion-reconcile"))
            found = reconcile.reconcile(spec, src, wh, method=method, run=_run_info(context))
    except ConfigError as exc:
        raise _fail_now(exc) from None
    return found.as_dict()


# The scheduled run whose logical date falls in this UTC hour checks every column (method `rows`).
DEEP_HOUR = 0


def reconcile_method(deep: bool, dag_run=None) -> str:
    """`rows` (deep) when asked for, and for the day's first scheduled run; `versions` otherwise."""
    scheduled = getattr(dag_run, "run_type", None) == "scheduled"
    logical = getattr(dag_run, "logical_date", None)
    return "rows" if deep or (scheduled and logical is not None and logical.hour == DEEP_HOUR) else "versions"


def report_reconciliation(results: list[dict], run_id: str | None = None, product: str | None = None) -> str:
    """One line per table, logged; emails on-call when a table needed versions appended."""
    from medallion import alerts, outbox

    done = [r for r in results if r]
    lines = [f"{'table':24} {'method':8} {'checked':>10} {'missing':>8} {'stale':>8} {'deleted':>8} {'repaired':>9}"]
    for r in sorted(done, key=lambda r: r["table"]):
        if r.get("skipped"):
            lines.append(f"{r['table']:24} skipped: {r['skipped']}")
            continue
        lines.append(
            f"{r['table']:24} {r['method']:8} {r['rows_checked']:>10,} {r['missing']:>8,} {r['stale']:>8,} "
            f"{r['deleted']:>8,} {r['repaired']:>9,}"
        )
    text = "\n".join(lines)
    log.info("reconciliation summary:\n%s", text)
    email = alerts.reconciliation_email(done, run_id, product)
    if email is not None:
        try:
            outbox.deliver(email, "reconciliation")
            text += f"\nemailed: {email.subject}"
        except outbox.AlertsUndelivered as exc:  # kept in the outbox: the next freshness check sends it
            log.warning("%s", exc)
            text += f"\nnot emailed yet (outbox): {email.subject}"
    return text


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
