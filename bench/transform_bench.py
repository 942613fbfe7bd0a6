"""Silver + gold through Airflow and Cosmos vs a bare `dbt build` of the same selection, same data, same run.

    python bench/transform_bench.py [--scale 1.0] [--runs 3] [--modes watcher-subprocess,watcher-dbt_runner]

Starts its own local stack (embedded Postgres: source + warehouse, Airflow metadata DB in a temp dir),
seeds the demo source, loads bronze with the bronze_browser_infra DAG and builds silver and gold once
(untimed warm-up: first builds create every table). Then, per round, the source clock advances one
hour, bronze loads that hour (untimed), and each method processes the same interval in turn (order
rotated every round), all on the same data:

  bare_dbt             `dbt build --select <silver folders>` then `<gold folders>` (the DAGs' selection,
                       --indirect-selection cautious, the same interval in MEDALLION_INTERVAL_START/END), a
                       dbt CLI process each (its own target folder, kept between rounds for partial parsing),
                       as a person would run it: the reference
  bare_dbt-no-log-file the same without dbt's debug log file (--log-level-file none), as the DAGs' dbt
                       commands run (Cosmos would delete the file with its temporary copy of the project):
                       the DAGs against the same dbt work, printed alongside
  watcher-subprocess   silver.test() then gold.test(): the DAGs as shipped (Cosmos WATCHER: one dbt build
                       per layer, dbt in a subprocess, one sensor task per model, one `tests` verdict task)
  watcher-dbt_runner   the same DAGs with dbt invoked in-process (InvocationMode.DBT_RUNNER)
  local-dbt_runner     Cosmos LOCAL: a task per model running `dbt build --select <model>` in-process
                       (TestBehavior.BUILD, tests whose parents are all the model); every task starts dbt

Incremental models re-process the interval's keys on every method (delete+insert), so each does the
same work. Per method it prints the median of two wall times and their ratios to bare dbt (the
median of the rounds' ratios, each against bare dbt in the same round, and the worst round):

  run        from the first task's start to the last task's end, silver's plus gold's: the DAG runs'
             wall time, what Airflow shows as a run's duration
  dag.test   the two dag.test() calls: the runs plus what dag.test() does before each, re-parsing the
             whole bundle, writing its five DAGs to the metadata DB and creating the run (the
             dag-processor and the scheduler do that work elsewhere in a deployment)

and where a run's time went: the producer task's dbt build, the other tasks (sensors, `tests`,
`published`; for LOCAL every task) and the bookkeeping between tasks.
"""

from __future__ import annotations

import argparse
import os
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
    from medallion.local.localpg import free_port
    from medallion.local.localstack import Stack

    stack = Stack(base, source_port=free_port(), warehouse_port=free_port(), smtp_port=free_port())
    os.environ.update(stack.env())
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    # the table below is the output; every task's log lines would bury it (LOGGING_LEVEL=INFO to see them)
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    import psycopg

    from medallion import compat, config, transform
    from medallion.config import DBT_PROJECT_DIR
    from medallion.local.demo import browser_infra as demo_source

    try:
        stack.up()
        as_of = demo_source.floor_hour(demo_source.datetime.now(demo_source.UTC)) - timedelta(hours=args.runs + 1)
        with psycopg.connect(stack.source_uri("browser_infra")) as conn:
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
            dags = {d: bag.get_dag(d) for d in ("bronze_browser_infra", "silver_browser_infra", "gold_browser_infra")}
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
            run = (max(t.end_date for t in tis) - min(t.start_date for t in tis)).total_seconds()
            producer = next((t.duration or 0 for t in tis if t.task_id.endswith("dbt_producer_watcher")), 0.0)
            tasks = sum(t.duration or 0 for t in tis)
            return {"seconds": seconds, "run": run, "producer": producer, "other": tasks - producer, "tasks": len(tis)}

        def bare(interval: dict[str, str], log_file: bool = True) -> float:
            env = {**os.environ, **interval, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
            t0 = time.perf_counter()
            for job in config.product("browser_infra").dbt_jobs:  # silver, then gold: what the two DAGs select
                layer = job.name
                cmd = [transform.DBT_EXECUTABLE, "build", "--select", *job.select,
                       "--indirect-selection", "cautious",
                       "--profiles-dir", str(DBT_PROJECT_DIR), "--project-dir", str(DBT_PROJECT_DIR),
                       "--target-path", str(base / "dbt-target"), "--log-path", str(base / "dbt-logs"),
                       "--quiet", *([] if log_file else ["--log-level-file", "none"])]  # fmt: skip
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode:
                    sys.exit(f"bare dbt build ({layer}) failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
            return time.perf_counter() - t0

        when = as_of
        print("warm-up: bronze first load, silver and gold first builds, bare dbt once (untimed) ...", flush=True)
        for dag_id in ("bronze_browser_infra", "silver_browser_infra", "gold_browser_infra"):
            dag_test(first[dag_id], when)
        bare(
            {
                "MEDALLION_INTERVAL_START": (when - timedelta(hours=1)).isoformat(),
                "MEDALLION_INTERVAL_END": when.isoformat(),
            }
        )
        bares = {"bare_dbt": True, "bare_dbt-no-log-file": False}  # name: with dbt's log file
        methods = [*bares, *modes]
        results: dict[str, list[dict]] = {m: [] for m in methods}
        for round_ in range(args.runs):
            with psycopg.connect(stack.source_uri("browser_infra")) as conn:
                demo_source.advance(conn, hours=1)
            when += timedelta(hours=1)
            dag_test(first["bronze_browser_infra"], when)
            interval = {"MEDALLION_INTERVAL_START": (when - timedelta(hours=1)).isoformat(),
                        "MEDALLION_INTERVAL_END": when.isoformat()}  # fmt: skip
            order = methods[round_ % len(methods) :] + methods[: round_ % len(methods)]
            for method in order:
                if method in bares:
                    seconds = bare(interval, log_file=bares[method])
                    res = {"seconds": seconds, "run": seconds, "producer": 0.0, "other": 0.0, "tasks": 0}
                else:
                    s, g = (
                        dag_test(bags[method]["silver_browser_infra"], when),
                        dag_test(bags[method]["gold_browser_infra"], when),
                    )
                    res = {k: s[k] + g[k] for k in s}
                results[method].append(res)
                print(f"round {round_ + 1} {method:20} run {res['run']:5.1f}s  dag.test {res['seconds']:5.1f}s",
                      flush=True)  # fmt: skip

        def ratio(method: str, key: str, ref: str = "bare_dbt") -> tuple[float, float]:
            """Median and worst of the rounds' ratios, each against `ref` in the same round."""
            ratios = [r[key] / b["seconds"] for r, b in zip(results[method], results[ref], strict=True)]
            return statistics.median(ratios), max(ratios)

        def med(method: str, key: str) -> float:
            return statistics.median(r[key] for r in results[method])

        print(f"\nsilver + gold for one hourly interval, scale {args.scale}, {args.runs} rounds (same run, same data); "
              f"ratios to bare dbt: median of the rounds (worst)\n")  # fmt: skip
        print(f"{'method':20} {'run s':>6} {'vs bare dbt':>15} {'dag.test s':>11} {'vs bare dbt':>15} "
              f"{'producer s':>11} {'other tasks s':>14} {'between s':>10} {'tasks':>6}")  # fmt: skip
        for method in results:
            if method in bares:
                r = f"{ratio(method, 'seconds')[0]:.2f}x"
                print(f"{method:20} {med(method, 'run'):6.1f} {r:>15} {med(method, 'seconds'):11.1f} {r:>15}")
                continue
            (run_r, run_w), (test_r, test_w) = ratio(method, "run"), ratio(method, "seconds")
            between = statistics.median(r["run"] - r["producer"] - r["other"] for r in results[method])
            print(f"{method:20} {med(method, 'run'):6.1f} {f'{run_r:.2f}x ({run_w:.2f}x)':>15} "
                  f"{med(method, 'seconds'):11.1f} {f'{test_r:.2f}x ({test_w:.2f}x)':>15} "
                  f"{med(method, 'producer'):11.1f} {med(method, 'other'):14.1f} {between:10.1f} "
                  f"{results[method][0]['tasks']:6}")  # fmt: skip
        (run_r, run_w), (test_r, test_w) = ratio(modes[0], "run"), ratio(modes[0], "seconds")
        print(f"\nsilver+gold via Airflow ({modes[0]}, as shipped), against a bare dbt build (target <= 1.5x): "
              f"the runs {run_r:.2f}x (worst round {run_w:.2f}x), the dag.test() calls {test_r:.2f}x "
              f"(worst round {test_w:.2f}x)")  # fmt: skip
        (run_r, run_w), (test_r, test_w) = (ratio(modes[0], k, "bare_dbt-no-log-file") for k in ("run", "seconds"))
        print(f"against bare dbt without its log file too: the runs {run_r:.2f}x (worst round {run_w:.2f}x), "
              f"the dag.test() calls {test_r:.2f}x (worst round {test_w:.2f}x)")  # fmt: skip
    finally:
        if "airflow.settings" in sys.modules:
            sys.modules["airflow.settings"].dispose_orm()
        stack.down()


if __name__ == "__main__":
    main()
