"""Reconciliation benchmark: proving 1M rows equal against `select count(*)` on the source, same run.

    python bench/reconcile_bench.py [--rows 1000000] [--rounds 5]

Starts two embedded Postgres servers on free ports (source, warehouse; shared_buffers 512MB as in
copy_bench.py), fills public.browser_sessions the same way (copy_bench.generate), loads it into
bronze and reconciles once (untimed: builds the latest-version index; VACUUM first, as autovacuum
does after a load). Then, interleaved round by round:

  count          select count(*) from public.browser_sessions on the source: the reference
  reconcile      medallion.reconcile.reconcile(), method `versions`, nothing to repair (whole call:
                 schema check, ledger, both checksums, commit)
  reconcile_rows the same with method `rows` (every column hashed: the deep check)
  repair_0.1%    0.1% of rows get a newer version committed late (inside the loaded windows), then one
                 reconcile() finds and appends exactly those (asserted), from a clean state each round

Prints each round and the median and worst per-round ratio to count(*).

--source-index adds an index on the source holding key and cursor, `(id) include (updated_at)`: the
source's side of the check is then an index-only scan, like count(*). Without it the check must read
every row's cursor from the table's heap (the reference reads only its smallest index).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "bench"))

import copy_bench  # noqa: E402
import psycopg  # noqa: E402

from medallion import config, reconcile, replication  # noqa: E402
from medallion.local.localpg import LocalPostgres, free_port  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "medallion-reconcile-bench"))
    ap.add_argument("--source-index", action="store_true", help="index (id) include (updated_at) on the source")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    settings = {"shared_buffers": "512MB", "max_wal_size": "1GB"}
    src_pg = LocalPostgres(Path(args.dir) / "source", free_port()).start(settings)
    wh_pg = LocalPostgres(Path(args.dir) / "warehouse", free_port()).start(settings)
    try:
        src_uri, wh_uri = src_pg.create_database("source"), wh_pg.create_database("warehouse")
        copy_bench.generate(src_uri, copy_bench.TABLES["browser_sessions"], args.rows)
        with psycopg.connect(src_uri, autocommit=True) as conn:
            conn.execute("drop index if exists public.browser_sessions_id_cursor")
            if args.source_index:
                conn.execute(
                    "create index browser_sessions_id_cursor on public.browser_sessions (id) include (updated_at)"
                )
                conn.execute("vacuum analyze public.browser_sessions")
        spec = config.get_table("browser_infra", "browser_sessions")
        src = psycopg.connect(src_uri, prepare_threshold=None)
        wh = psycopg.connect(wh_uri, prepare_threshold=None, autocommit=True)
        wh.execute("drop schema if exists bronze_browser_infra cascade; drop schema if exists ops cascade")
        wh.autocommit = False
        end = datetime.fromisoformat(copy_bench.HOUR0) + timedelta(days=400)  # all history
        seconds, _ = timed(lambda: replication.replicate(spec, src, wh, interval_start=end - timedelta(hours=1),
                                                         interval_end=end))  # fmt: skip
        print(f"loaded {args.rows:,} rows into bronze in {seconds:.1f}s", flush=True)
        seconds, first = timed(lambda: reconcile.reconcile(spec, src, wh))
        wh.autocommit = True
        wh.execute("vacuum analyze bronze_browser_infra.browser_sessions")
        wh.autocommit = False
        print(f"first reconcile (builds the latest-version index) {seconds:.1f}s: {first.summary()}", flush=True)
        assert first.repaired == 0

        def count() -> int:
            n = src.execute("select count(*) from public.browser_sessions").fetchone()[0]
            src.rollback()
            return n

        rows: dict[str, list[float]] = {"count": [], "reconcile": [], "reconcile_rows": [], "repair_0.1%": []}
        for r in range(1, args.rounds + 1):
            t_count, n = timed(count)
            t_rec, found = timed(lambda: reconcile.reconcile(spec, src, wh))
            assert found.rows_checked == n and found.repaired == 0 and found.ranges_compared == 1, found
            t_rows, deep = timed(lambda: reconcile.reconcile(spec, src, wh, method="rows"))
            assert deep.repaired == 0, deep
            # 0.1% of rows: a newer version committed late (its cursor inside the loaded windows)
            changed = src.execute(
                "update public.browser_sessions set proxy_bytes = proxy_bytes + 1, "
                "updated_at = updated_at + interval '1 millisecond' where abs(hashtext(id::text || %s)) %% 1000 = 0",
                (str(r),),
            ).rowcount
            src.commit()
            t_fix, fixed = timed(lambda: reconcile.reconcile(spec, src, wh))
            assert fixed.stale == changed and fixed.appended == changed and fixed.missing == fixed.deleted == 0, fixed
            for key, value in (("count", t_count), ("reconcile", t_rec), ("reconcile_rows", t_rows),
                               ("repair_0.1%", t_fix)):  # fmt: skip
                rows[key].append(value)
            print(
                f"round {r}: count(*) {t_count * 1000:6.0f} ms  reconcile {t_rec * 1000:6.0f} ms "
                f"({t_rec / t_count:4.1f}x, bronze: {found.bronze_side})  "
                f"deep {t_rows * 1000:6.0f} ms ({t_rows / t_count:4.1f}x)  "
                f"repair of {changed:,} stale rows {t_fix:5.2f}s ({fixed.keys_compared:,} keys compared, "
                f"{fixed.ranges_compared:,} ranges)",
                flush=True,
            )
        index = "with" if args.source_index else "without"
        print(f"\n{args.rows:,} rows of browser_sessions, {args.rounds} interleaved rounds (same run, same machine), "
              f"{index} a source index on (id) include (updated_at)\n")  # fmt: skip
        for key in ("reconcile", "reconcile_rows"):
            ratios = [t / c for t, c in zip(rows[key], rows["count"], strict=True)]
            print(
                f"{key:15} median {statistics.median(rows[key]) * 1000:6.0f} ms = {statistics.median(ratios):4.1f}x "
                f"count(*) (worst round {max(ratios):4.1f}x; count(*) median "
                f"{statistics.median(rows['count']) * 1000:.0f} ms)"
            )
        fix = rows["repair_0.1%"]
        print(f"{'repair 0.1%':15} median {statistics.median(fix):.2f}s, worst {max(fix):.2f}s "
              f"(find and append {changed:,} stale versions among {args.rows:,} rows)")  # fmt: skip
        print("\ntarget: reconcile (nothing to repair) <= 3x select count(*)")
    finally:
        src_pg.stop()
        wh_pg.stop()


if __name__ == "__main__":
    main()
