"""Silver + gold through Airflow and Cosmos vs a bare `dbt build` of the same selection, same data, same run.

    python bench/transform_bench.py [--scale 1.0] [--runs 3] [--modes watcher-subprocess,watcher-dbt_runner]

Starts its own local stack (embedded Postgres: source + warehouse, Airflow metadata DB in a temp dir),
seeds the demo source, loads bronze with the bronze_supabase DAG and builds silver and gold once
(untimed warm-up: first builds create every table). Then, per round, the source clock advances one
hour, bronze loads that hour (untimed), and each method processes the same interval in turn (order
rotated every round), all on the same data:

  bare_dbt             `dbt build --select <silver folders>` then `<gold folders>` (the DAGs' selection,
                       --indirect-selection cautious, the same interval in MEDALLION_INTERVAL_START/END), a
                       dbt CLI process each (its own target folder, kept between rounds for partial parsing),
                       as a person would run it: the reference
  watcher-subprocess   silver.test() then gold.test(): the DAGs as shipped (Cosmos WATCHER: one dbt build
                       per layer, dbt in a subprocess, one sensor task per model, one `tests` verdict task)
  watcher-dbt_runner   the same DAGs with dbt invoked in-process (InvocationMode.DBT_RUNNER)
  local-dbt_runner     Cosmos LOCAL: a task per model running `dbt build --select <model>` in-process
                       (TestBehavior.BUILD, tests whose parents are all the model); every task starts dbt

Incremental models re-process the interval's keys on every method (delete+insert), so each does the
same work. Prints medians, each method's ratio to bare dbt, and where the Airflow time went: the
producer task's dbt build, the other tasks (sensors, `published`; for LOCAL every task), and
dag.test()'s own bookkeeping (re-parsing the bundle, serializing the DAG, creating the run).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

MODES = {  # name: (execution mode, invocation mode)
    "watcher-subprocess": ("WATCHER", "SUBPROCESS"),
    "watcher-dbt_runner": ("WATCHER", "DBT_RUNNER"),
    "local-dbt_runner": ("LOCAL", "DBT_RUNNER"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=float(os.environ.get("SCALE", 1.0)), help="demo source scale")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", 3)))
    ap.add_argument("--modes", default=os.environ.get("MODES", ",".join(MODES)))
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        ap.error(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")

    base = Path(tempfile.mkdtemp(prefix="medallion-transform-bench-"))
    from medallion.localstack import Stack

    stack = Stack(base, source_port=free_port(), warehouse_port=free_port(), smtp_port=free_port())
    os.environ.update(stack.env())
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    # the table below is the output; every task's log lines would bury it (LOGGING_LEVEL=INFO to see them)
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    import psycopg

    from medallion import compat, demo_source, transform
    from medallion.config import DBT_PROJECT_DIR

    try:
        stack.up()
        as_of = demo_source.floor_hour(demo_source.datetime.now(demo_source.UTC)) - timedelta(hours=args.runs + 1)
        with psycopg.connect(stack.source_admin_uri) as conn:
            counts = demo_source.seed(conn, as_of, scale=args.scale)
        print(f"seeded source (scale {args.scale}): browser_sessions {counts['browser_sessions']:,}, "
              f"session_events {counts['session_events']:,}", flush=True)  # fmt: skip
        stack.migrate_airflow()
        compat.apply_all()
        from airflow.dag_processing.dagbag import DagBag

        def dags_for(mode: str) -> dict:
            execution, invocation = MODES[mode]  # read when a DAG file builds its task group
            transform.EXECUTION_MODE = transform.ExecutionMode[execution]
            transform.INVOCATION_MODE = transform.InvocationMode[invocation]
            bag = DagBag(dag_folder=str(ROOT / "dags"))
            assert not bag.import_errors, bag.import_errors
            dags = {d: bag.get_dag(d) for d in ("bronze_supabase", "silver", "gold")}
            for dag in dags.values():  # a failure ends the benchmark at once instead of waiting for retries
                for t in dag.tasks:
                    t.retries = 0
            return dags

        bags = {m: dags_for(m) for m in modes}
        first = bags[modes[0]]

        def dag_test(dag, when) -> dict:
            t0 = time.perf_counter()
            dr = dag.test(logical_date=when)
            seconds = time.perf_counter() - t0
            tis = dr.get_task_instances()
            if dr.state != "success":
                sys.exit(f"{dag.dag_id} failed: {[(t.task_id, t.state) for t in tis if t.state != 'success']}")
            producer = next((t.duration or 0 for t in tis if t.task_id.endswith("dbt_producer_watcher")), 0.0)
            tasks = sum(t.duration or 0 for t in tis)
            return {"seconds": seconds, "producer": producer, "other": tasks - producer, "tasks": len(tis)}

        def bare(interval: dict[str, str]) -> float:
            env = {**os.environ, **interval, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
            t0 = time.perf_counter()
            for layer in ("silver", "gold"):
                cmd = [transform.DBT_EXECUTABLE, "build", "--select", *transform.LAYERS[layer],
                       "--indirect-selection", "cautious",
                       "--profiles-dir", str(DBT_PROJECT_DIR), "--project-dir", str(DBT_PROJECT_DIR),
                       "--target-path", str(base / "dbt-target"), "--log-path", str(base / "dbt-logs"),
                       "--quiet"]  # fmt: skip
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode:
                    sys.exit(f"bare dbt build ({layer}) failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
            return time.perf_counter() - t0

        when = as_of
        print("warm-up: bronze first load, silver and gold first builds, bare dbt once (untimed) ...", flush=True)
        for dag_id in ("bronze_supabase", "silver", "gold"):
            dag_test(first[dag_id], when)
        bare(
            {
                "MEDALLION_INTERVAL_START": (when - timedelta(hours=1)).isoformat(),
                "MEDALLION_INTERVAL_END": when.isoformat(),
            }
        )
        methods = ["bare_dbt", *modes]
        results: dict[str, list[dict]] = {m: [] for m in methods}
        for round_ in range(args.runs):
            with psycopg.connect(stack.source_admin_uri) as conn:
                demo_source.advance(conn, hours=1)
            when += timedelta(hours=1)
            dag_test(first["bronze_supabase"], when)
            interval = {"MEDALLION_INTERVAL_START": (when - timedelta(hours=1)).isoformat(),
                        "MEDALLION_INTERVAL_END": when.isoformat()}  # fmt: skip
            order = methods[round_ % len(methods) :] + methods[: round_ % len(methods)]
            for method in order:
                if method == "bare_dbt":
                    res = {"seconds": bare(interval), "producer": 0.0, "other": 0.0, "tasks": 0}
                else:
                    s, g = dag_test(bags[method]["silver"], when), dag_test(bags[method]["gold"], when)
                    res = {k: s[k] + g[k] for k in s}
                results[method].append(res)
                print(f"round {round_ + 1} {method:20} {res['seconds']:7.1f}s", flush=True)

        ref = statistics.median(r["seconds"] for r in results["bare_dbt"])
        print(f"\nsilver + gold for one hourly interval, scale {args.scale}, median of {args.runs} rounds "
              f"(same run, same data)\n")  # fmt: skip
        print(f"{'method':20} {'median s':>9} {'vs bare dbt':>12} {'producer s':>11} {'other tasks s':>14} "
              f"{'dag.test s':>11} {'tasks':>6}")  # fmt: skip
        for method, runs in results.items():
            med = statistics.median(r["seconds"] for r in runs)
            if method == "bare_dbt":
                print(f"{method:20} {med:9.1f} {1:11.2f}x {'-':>11} {'-':>14} {'-':>11} {'-':>6}")
                continue
            prod, other = (statistics.median(r[k] for r in runs) for k in ("producer", "other"))
            book = statistics.median(r["seconds"] - r["producer"] - r["other"] for r in runs)
            print(f"{method:20} {med:9.1f} {med / ref:11.2f}x {prod:11.1f} {other:14.1f} {book:11.1f} "
                  f"{runs[0]['tasks']:6}")  # fmt: skip
        chosen = statistics.median(r["seconds"] for r in results[modes[0]]) / ref
        print(f"\nsilver+gold via Airflow ({modes[0]}, as shipped) = {chosen:.2f}x a bare dbt build (target <= 1.5x)")
    finally:
        if "airflow.settings" in sys.modules:
            sys.modules["airflow.settings"].dispose_orm()
        stack.down()


if __name__ == "__main__":
    main()
