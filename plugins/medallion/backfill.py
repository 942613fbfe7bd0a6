"""Backfill a date range through Airflow, per product in order: bronze → silver → gold, one interval at a time.

    python -m medallion.backfill --from 2026-11-20T00:00 --to 2026-11-21T00:00 [--step hour|day] [--product P]
    python -m medallion.local.localstack backfill --from ... (the same, on the local stack's Airflow and databases)
    make backfill FROM=2026-11-20T00:00 TO=2026-11-21T00:00 [STEP=day] [PRODUCT=browser_infra]

Covers the data of [FROM, TO): for each product (every one, or --product) and each interval `[start, end)`
of the step it runs `bronze_<product>`, then the product's silver dbt jobs (`silver_<product>`), then
its gold ones (`gold_<product>`, ...) with dag.test() (the DAGs' own code, tasks and dbt interval, in this process,
against the stack's metadata DB); `bronze_<product>_reconcile` runs once, after the first bronze
interval, so every later silver run drops the keys deleted in the source. A failed run stops the
backfill and names the DAG and interval; rerunning the same command is safe (every layer is
idempotent per interval). `--step day` gives each run a day-long data interval (the DAGs' hourly
cron swapped for a daily one in this process): same code path, 24× fewer runs.

This is the no-scheduler path (the local stack, tests, CI). On a running Airflow use its own backfill,
which the scheduler executes run by run (`max_active_runs=1`). Its range means something else:
Airflow runs every interval whose *start* (logical date) lies in [--from-date, --to-date], both
ends included, so the same data [FROM, TO) is `--to-date` = the last hour's start, TO - 1h (the
UI's Backfill form: From = FROM, To = TO - 1h). `--dry-run` prints the intervals and that command:

    airflow backfill create --dag-id bronze_browser_infra --from-date FROM --to-date TO-1h \
        --reprocess-behavior completed

and silver and gold follow on their own: each bronze run's asset event carries its interval, silver
runs on it (several events: the span of their intervals), then gold on silver's event. To rebuild only
silver/gold for a range, backfill `silver` (then `gold`) the same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

STEPS = {"hour": ("0 * * * *", timedelta(hours=1)), "day": ("0 0 * * *", timedelta(days=1))}


def _utc(value: str) -> datetime:
    ts = datetime.fromisoformat(value)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def intervals(start: datetime, end: datetime, step: str) -> list[tuple[datetime, datetime]]:
    """The step's intervals covering [start, end); start and end must be on the step's boundaries."""
    width = STEPS[step][1]
    if end <= start:
        raise ValueError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    aligned = datetime(2000, 1, 1, tzinfo=UTC)
    for name, ts in (("--from", start), ("--to", end)):
        if (ts - aligned) % width:
            raise ValueError(f"{name} {ts.isoformat()} is not on a {step} boundary")
    out, t = [], start
    while t < end:
        out.append((t, t + width))
        t += width
    return out


def airflow_command(start: datetime, end: datetime, dag_id: str = "bronze_browser_infra") -> str:
    """Airflow's backfill of the hourly DAG over the data [start, end): its --to-date is the last hour's start."""
    last = end - STEPS["hour"][1]
    return (f"airflow backfill create --dag-id {dag_id} --from-date {start:%Y-%m-%dT%H:%M} "
            f"--to-date {last:%Y-%m-%dT%H:%M} --reprocess-behavior completed")  # fmt: skip


def dag_order(product) -> list[str]:
    """A product's scheduled DAGs in the order its layers feed each other: bronze, silver jobs, gold jobs
    (manual-only jobs, `schedule: null`, are never part of a backfill or the demo's chain)."""
    jobs = [j.name for layer in ("silver", "gold") for j in product.dbt_jobs if j.layer == layer and j.schedule]
    return [product.dag_id(job) for job in ("bronze", *jobs)]


def run(start: datetime, end: datetime, step: str = "hour", dag_folder: str | None = None, log=print,
        products: list[str] | None = None) -> None:  # fmt: skip
    """Run each product's pipeline over [start, end), interval by interval. Airflow must already be configured."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    from medallion import compat, config

    compat.apply_all()
    todo = intervals(start, end, step)
    bag = DagBag(dag_folder=dag_folder or str(config.ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    orders = {p: dag_order(config.product(p)) for p in (products or config.product_ids())}
    dags = {d: bag.get_dag(d) for order in orders.values() for d in (*order, f"{order[0]}_reconcile")}
    if step != "hour":
        timetable = CronDataIntervalTimetable(STEPS[step][0], timezone="UTC")
        for dag in dags.values():
            if isinstance(dag.timetable, AssetOrTimeSchedule):
                dag.timetable = AssetOrTimeSchedule(timetable=timetable, assets=dag.timetable.asset_condition)
            elif isinstance(dag.timetable, CronDataIntervalTimetable):
                dag.timetable = timetable

    def one(dag_id: str, interval_end: datetime) -> None:
        t0 = time.monotonic()
        dr = dags[dag_id].test(logical_date=interval_end)  # dag.test(): data interval = the step ending here
        if dr.state != "success":
            failed = [ti.task_id for ti in dr.get_task_instances() if ti.state not in ("success", "skipped")]
            raise SystemExit(
                f"backfill stopped: {dag_id} failed for the interval ending {interval_end.isoformat()} "
                f"(failed tasks: {', '.join(failed) or '?'}); rerun the same command to resume"
            )
        log(f"  {dag_id:24} ok  {time.monotonic() - t0:6.1f}s")

    for product, order in orders.items():
        for n, (s, e) in enumerate(todo, 1):
            log(f"{product} [{n}/{len(todo)}] [{s:%Y-%m-%d %H:%M}, {e:%Y-%m-%d %H:%M}) UTC")
            one(order[0], e)
            if n == 1:
                one(f"{order[0]}_reconcile", e)
            for dag_id in order[1:]:
                one(dag_id, e)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="start", required=True, help="first interval start (ISO, UTC if no offset)")
    ap.add_argument("--to", dest="end", required=True, help="last interval end (ISO, exclusive)")
    ap.add_argument("--step", choices=sorted(STEPS), default="hour", help="interval width (default: hour)")
    ap.add_argument("--product", action="append", help="only this product (repeatable; default: every product)")
    ap.add_argument("--dry-run", action="store_true", help="list the intervals and Airflow's equivalent backfill")
    args = ap.parse_args(argv)
    try:
        start, end = _utc(args.start), _utc(args.end)
        todo = intervals(start, end, args.step)
    except ValueError as exc:
        ap.error(str(exc))
    if args.dry_run:
        for s, e in todo:
            print(f"[{s:%Y-%m-%d %H:%M}, {e:%Y-%m-%d %H:%M}) UTC")
        print(f"{len(todo)} interval(s), the data of [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC; on a running "
              f"Airflow the same hours are (per product):")  # fmt: skip
        from medallion import config

        for product in args.product or config.product_ids():
            print(f"  {airflow_command(start, end, f'bronze_{product}')}")
        return
    t0 = time.monotonic()
    run(start, end, args.step, products=args.product)
    print(f"backfill of [{start.isoformat()}, {end.isoformat()}) done in {time.monotonic() - t0:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
