"""Product analytics: does a 5-minute silver run cost the same with 10M events in bronze as with 1M?

    python bench/analytics_bench.py [--sizes 1000000,10000000] [--new-events 3000] [--rounds 3]

Starts its own embedded Postgres pair (source + warehouse, temp dir). Per size: seeds the
product-analytics source with that many events (binary COPY; rows/s printed), loads bronze and
builds silver in full and lets the warehouse settle (vacuum analyze, checkpoint: what autovacuum
would do during the first rounds; untimed set-up, times printed), then per round: the source clock advances
5 minutes with the same number of new events at every size, bronze loads that interval (untimed)
and the silver models run for it (`dbt run --select tag:product_analytics,path:models/staging
tag:product_analytics,path:models/core`, interval in MEDALLION_INTERVAL_START/END, as the DAG will).

Printed per size: the median and worst of the rounds, as
  wall    the dbt invocation (parse, connect, 8 models; what a DAG task would take)
  models  the models' own execution time (run_results.json): the SQL the data size could slow down
and the ratio 10M / 1M of each median (the goal: at most 1.5: cost follows new events, not table size).
Data tests are not in the timed run: unique/not_null scan whole tables (their time at each size is
printed once, after the rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "tests"))


def settle(wh_uri: str) -> None:
    """What autovacuum and the checkpointer do once after a bulk load, done before the timed rounds:
    otherwise they run during them (vacuuming 11M fresh rows, full-page writes after a checkpoint)
    and the rounds time the set-up's aftermath, not a 5-minute run in steady state."""
    import psycopg

    with psycopg.connect(wh_uri, autocommit=True) as conn:
        conn.execute("vacuum (analyze)")
        conn.execute("checkpoint")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=os.environ.get("SIZES", "1000000,10000000"))
    ap.add_argument("--new-events", type=int, default=int(os.environ.get("NEW_EVENTS", 3000)))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 3)))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import product_analytics_pipeline as pipeline
    import psycopg

    from medallion.local.demo import product_analytics as generator
    from medallion.local.localpg import LocalPostgres, free_port

    base = Path(tempfile.mkdtemp(prefix="medallion-analytics-bench-"))
    source = LocalPostgres(base / "pg-source", free_port()).start()
    warehouse = LocalPostgres(base / "pg-warehouse", free_port()).start()
    as_of = generator.floor_hour(datetime.now(UTC)) - timedelta(hours=1)
    results: dict[int, dict] = {}
    try:
        for n, size in enumerate(sizes):
            src_admin, wh = source.create_database(f"analytics_{n}"), warehouse.create_database(f"warehouse_{n}")
            src = source.uri(f"analytics_{n}", user="replicator")
            t = time.perf_counter()
            with psycopg.connect(src_admin) as conn:
                counts = generator.seed(conn, as_of, events=size)
            seconds = time.perf_counter() - t
            total = sum(counts.values())
            print(f"[{size:,}] seeded {counts['events_raw']:,} events ({total:,} rows) in {seconds:.0f}s: "
                  f"{total / seconds:,.0f} rows/s", flush=True)  # fmt: skip
            t = time.perf_counter()
            pipeline.load_bronze(src, wh, None, as_of)
            print(f"[{size:,}] bronze first load {time.perf_counter() - t:.0f}s", flush=True)
            target = base / f"dbt-target-{n}"
            t = time.perf_counter()
            pipeline.dbt("run", pipeline.SILVER, wh, None, None, target=target)
            print(f"[{size:,}] silver full build {time.perf_counter() - t:.0f}s", flush=True)
            t = time.perf_counter()
            settle(wh)
            print(f"[{size:,}] vacuum analyze + checkpoint {time.perf_counter() - t:.0f}s", flush=True)
            walls, models = [], []
            start = as_of
            for r in range(args.rounds + 1):  # round 0 warms the caches of the incremental path, untimed
                end = start + timedelta(minutes=5)
                with psycopg.connect(src_admin) as conn:
                    generator.advance(conn, minutes=5, events=args.new_events)
                pipeline.load_bronze(src, wh, start, end)
                t = time.perf_counter()
                pipeline.dbt("run", pipeline.SILVER, wh, start, end, target=target)
                wall = time.perf_counter() - t
                run = json.loads((target / "run_results.json").read_text())
                model_seconds = sum(r["execution_time"] for r in run["results"])
                if r:
                    walls.append(wall)
                    models.append(model_seconds)
                    print(f"[{size:,}] round {r}: wall {wall:.2f}s, models {model_seconds:.2f}s", flush=True)
                start = end
            t = time.perf_counter()
            pipeline.dbt("test", pipeline.SILVER, wh, start - timedelta(minutes=5), start, target=target)
            tests = time.perf_counter() - t
            results[size] = {"wall": walls, "models": models, "tests": tests}
    finally:
        source.stop()
        warehouse.stop()

    print(f"\nproduct analytics, 5-minute silver run with {args.new_events:,} new events ({args.rounds} rounds)")
    print(f"{'events in bronze':>18} {'wall median':>12} {'wall worst':>11} {'models median':>14} {'models worst':>13}"
          f" {'tests':>7}")  # fmt: skip
    for size, r in results.items():
        print(f"{size:>18,} {statistics.median(r['wall']):>11.2f}s {max(r['wall']):>10.2f}s "
              f"{statistics.median(r['models']):>13.2f}s {max(r['models']):>12.2f}s {r['tests']:>6.1f}s")  # fmt: skip
    if len(results) >= 2:
        small, big = results[sizes[0]], results[sizes[-1]]
        for key in ("wall", "models"):
            ratio = statistics.median(big[key]) / statistics.median(small[key])
            verdict = "ok" if ratio <= 1.5 else "OVER 1.5"
            print(f"ratio {sizes[-1]:,} / {sizes[0]:,} ({key} median): {ratio:.2f}  {verdict}")


if __name__ == "__main__":
    main()
