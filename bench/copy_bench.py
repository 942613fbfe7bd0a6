"""Table-copy benchmark: the bronze replication against a psql binary COPY pipe, in the same run.

    python bench/copy_bench.py [--rows 1000000] [--runs 3]

Starts two embedded Postgres servers (source, warehouse; fsync on, shared_buffers 512MB, as in
../shared/bench), fills public.browser_sessions (the 14-column Supabase-shaped table of the shared
harness) server-side, then runs each method --runs times round-robin, each as its own process:

  psql_binary_pipe   psql COPY ... TO STDOUT (FORMAT BINARY) | psql COPY ... FROM STDIN (FORMAT BINARY)
                     into a plain table: the physical reference
  medallion          medallion.replication.replicate(): a first (full-history) incremental load into
                     bronze_browser_infra.browser_sessions, ledger row, BRIN index and ANALYZE included
  medallion_hourly   the next hour's incremental load after 1% of rows changed (staged merge path)

Every run is verified (row count + content checksum against the source). Prints medians, the ratio
to the binary pipe, and each method's peak RSS (its own process, from wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

import psycopg  # noqa: E402

from medallion.localpg import LocalPostgres  # noqa: E402

COLS = (
    "id, organization_id, project_id, status, region, started_at, ended_at, duration_ms, proxy_bytes, "
    "keep_alive, user_agent, metadata, created_at, updated_at"
)
HOUR0 = "2025-03-31 00:00:00+00"  # the generated history spans 2025-01-01 .. 2025-04-01

DDL = """
drop table if exists public.browser_sessions;
create table public.browser_sessions (
    id uuid not null, organization_id uuid not null, project_id uuid not null, status text not null,
    region text not null, started_at timestamptz not null, ended_at timestamptz, duration_ms integer,
    proxy_bytes bigint not null default 0, keep_alive boolean not null default false, user_agent text,
    metadata jsonb not null default '{}'::jsonb, created_at timestamptz not null, updated_at timestamptz not null
);
"""
# Same shape and distributions as ../shared/bench/gen_source.py, seeded so every run is identical.
FILL = """
insert into public.browser_sessions
select md5('sess:' || g)::uuid, md5('org:' || (p %% 2000))::uuid, md5('proj:' || p)::uuid, status,
       (array['us-west-2','us-east-1','eu-central-1','ap-southeast-1','eu-west-2'])[1 + floor(r3 * 5)::int],
       started_at, case when dur is null then null else started_at + dur * interval '1 millisecond' end, dur,
       case when r6 < 0.6 then 0 else (power(r7, 4) * 5e9)::bigint end, r8 < 0.15,
       'Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/' || (100 + floor(r9 * 30)::int) || '.0.0.0 Safari/537.36',
       jsonb_build_object('sdk', (array['python','node','go','playwright','puppeteer'])[1 + floor(r12 * 5)::int],
                          'sdk_version', '2.' || floor(r13 * 20)::int || '.' || floor(r11 * 10)::int,
                          'viewport', jsonb_build_object('width', case when r14 < 0.5 then 1280 else 1920 end,
                                                         'height', case when r14 < 0.5 then 720 else 1080 end))
         || case when r15 < 0.6 then jsonb_build_object('user_id', 'usr_' || left(md5('u' || g), 12))
                 else '{}'::jsonb end,
       started_at - (r10 * 2000) * interval '1 millisecond',
       coalesce(started_at + dur * interval '1 millisecond', started_at) + (r11 * 500) * interval '1 millisecond'
from (
    select g, r3, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15,
           floor(power(r1, 3) * 10000)::int as p,
           case when r2 < 0.70 then 'completed' when r2 < 0.82 then 'failed' when r2 < 0.90 then 'timed_out'
                when r2 < 0.97 then 'running' else 'pending' end as status,
           case when r2 >= 0.90 then null else floor(power(r5, 2) * 3600000)::int end as dur,
           timestamptz '2025-01-01 00:00:00+00' + ((g::float8 / %(n)s) * 90 * 86400 + r4 * 60) * interval '1 second'
               as started_at
    from (select g, random() r1, random() r2, random() r3, random() r4, random() r5, random() r6, random() r7,
                 random() r8, random() r9, random() r10, random() r11, random() r12, random() r13, random() r14,
                 random() r15
            from generate_series(1, %(n)s) g) raw
) d
"""
CHECKSUM = "select count(*), coalesce(sum(('x' || left(md5(ROW({cols})::text), 12))::bit(48)::bigint), 0) from {table}"


def generate(src_uri: str, n: int) -> None:
    with psycopg.connect(src_uri, autocommit=True) as conn:
        if conn.execute("select to_regclass('public.browser_sessions')").fetchone()[0]:
            if conn.execute("select count(*) from public.browser_sessions").fetchone()[0] == n:
                return
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute(DDL)
            conn.execute("select setseed(0.4242)")
            conn.execute(FILL, {"n": n})
        conn.execute("alter table public.browser_sessions add primary key (id)")
        conn.execute("create index on public.browser_sessions (updated_at)")
        conn.execute("vacuum (freeze, analyze) public.browser_sessions")
        conn.execute("checkpoint")
        print(f"generated {n:,} source rows in {time.perf_counter() - t0:.1f}s", flush=True)


def run_child(args: list[str]) -> dict:
    """Run one method in its own process (so its peak RSS is its own); return its JSON result line."""
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{args[-1]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_pipe(src_port: int, wh_port: int) -> None:
    """psql binary pipe into a plain table (truncated first, untimed)."""
    psql = LocalPostgres(Path("/"), 0).psql_path()
    wh = f"postgresql://postgres@127.0.0.1:{wh_port}/warehouse"
    with psycopg.connect(wh, autocommit=True) as conn:
        conn.execute("create schema if not exists ref")
        conn.execute(DDL.replace("public.", "ref."))
        conn.execute("checkpoint")
    t0 = time.perf_counter()
    src_cmd = [
        psql,
        "-X",
        "-q",
        "-d",
        f"postgresql://postgres@127.0.0.1:{src_port}/source",
        "-c",
        f"copy (select {COLS} from public.browser_sessions) to stdout (format binary)",
    ]
    wh_cmd = [psql, "-X", "-q", "-d", wh, "-c", f"copy ref.browser_sessions ({COLS}) from stdin (format binary)"]
    p1 = subprocess.Popen(src_cmd, stdout=subprocess.PIPE)
    p2 = subprocess.Popen(wh_cmd, stdin=p1.stdout, stdout=subprocess.DEVNULL)
    p1.stdout.close()
    rc2, rc1 = p2.wait(), p1.wait()
    seconds = time.perf_counter() - t0
    if rc1 or rc2:
        sys.exit(f"psql pipe failed: {rc1}, {rc2}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the larger of the two psql
    print(json.dumps({"table": "ref.browser_sessions", "seconds": seconds, "peak_rss_mb": rss}))


def child_medallion(src_port: int, wh_port: int, hourly: bool) -> None:
    import logging
    from datetime import datetime, timedelta

    from medallion import config, replication

    logging.basicConfig(level=logging.WARNING)
    spec = config.get_table("browser_infra", "browser_sessions")
    src = psycopg.connect(f"postgresql://postgres@127.0.0.1:{src_port}/source", prepare_threshold=None)
    wh = psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{wh_port}/warehouse", prepare_threshold=None, autocommit=True
    )
    hour0 = datetime.fromisoformat(HOUR0)
    wh.execute("drop schema if exists bronze_browser_infra cascade; drop schema if exists ops cascade")
    if hourly:  # untimed: load history up to hour0, then change 1% of rows inside the next hour
        replication.replicate(spec, src, wh, interval_start=hour0 - timedelta(hours=1), interval_end=hour0)
        # an hour later autovacuum has summarized the new BRIN ranges (autosummarize); do it now
        wh.execute("select brin_summarize_new_values('bronze_browser_infra.browser_sessions__cursor_brin')")
        src.execute(
            "update public.browser_sessions set status = 'completed', "
            "updated_at = %s + interval '1 second' * (abs(hashtext(id::text)) %% 3600) "
            "where abs(hashtext(id::text)) %% 100 = 0",
            (hour0,),
        )
        src.commit()
    wh.execute("checkpoint")
    start, end = (
        (hour0, hour0 + timedelta(hours=1)) if hourly else (hour0 - timedelta(hours=1), hour0 + timedelta(days=400))
    )
    t0 = time.perf_counter()  # the whole call: schema sync, window planning, copy, ledger, commit
    result = replication.replicate(spec, src, wh, interval_start=start, interval_end=end)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "table": "bronze_browser_infra.browser_sessions",
                "seconds": seconds,
                "rows": result.rows_read,
                "written": result.rows_written,
                "path": result.path,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def verify(src_uri: str, wh_uri: str, table: str, latest: bool) -> None:
    with psycopg.connect(src_uri) as src, psycopg.connect(wh_uri) as wh:
        expected = src.execute(CHECKSUM.format(cols=COLS, table="public.browser_sessions")).fetchone()
        target = (
            f"(select distinct on (id) * from {table} order by id, _cursor desc, _loaded_at desc) t"
            if latest
            else table
        )
        got = wh.execute(CHECKSUM.format(cols=COLS, table=target)).fetchone()
    if tuple(got) != tuple(expected):
        sys.exit(f"VERIFY FAILED for {table}: {got} != source {expected}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=int(os.environ.get("N", 1_000_000)))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", 3)))
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", str(Path(tempfile.gettempdir()) / "medallion-bench")))
    ap.add_argument("--child", choices=["pipe", "medallion", "medallion_hourly"], help=argparse.SUPPRESS)
    ap.add_argument("--ports", nargs=2, type=int, default=[55432, 55433])
    args = ap.parse_args()
    if args.child:
        if args.child == "pipe":
            child_pipe(*args.ports)
        else:
            child_medallion(*args.ports, hourly=args.child == "medallion_hourly")
        return

    settings = {"shared_buffers": "512MB", "max_wal_size": "1GB"}
    src = LocalPostgres(Path(args.dir) / "source", args.ports[0]).start(settings)
    wh = LocalPostgres(Path(args.dir) / "warehouse", args.ports[1]).start(settings)
    try:
        src_uri, wh_uri = src.create_database("source"), wh.create_database("warehouse")
        generate(src_uri, args.rows)
        methods = ["psql_binary_pipe", "medallion", "medallion_hourly"]
        results: dict[str, list[dict]] = {m: [] for m in methods}
        for round_ in range(1, args.runs + 1):
            for method in methods:
                child = {"psql_binary_pipe": "pipe"}.get(method, method)
                res = run_child([sys.executable, __file__, "--ports", *map(str, args.ports), "--child", child])
                res.setdefault("rows", args.rows)
                if method == "psql_binary_pipe":
                    verify(src_uri, wh_uri, "ref.browser_sessions", latest=False)
                elif method == "medallion":
                    verify(src_uri, wh_uri, "bronze_browser_infra.browser_sessions", latest=True)
                results[method].append(res)
                print(
                    f"round {round_} {method:18} {res['rows']:>10,} rows {res['seconds']:7.2f}s "
                    f"{res['rows'] / res['seconds']:>10,.0f} rows/s  peak RSS {res['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
        med = {m: statistics.median(r["seconds"] for r in runs) for m, runs in results.items()}
        ref = statistics.median(r["rows"] / r["seconds"] for r in results["psql_binary_pipe"])
        print(f"\n{args.rows:,} rows of browser_sessions, median of {args.runs} runs (same run, same machine)\n")
        print(f"{'method':18} {'rows':>10} {'median s':>9} {'rows/s':>10} {'vs binary pipe':>15} {'peak RSS MB':>12}")
        for method, runs in results.items():
            rate = statistics.median(r["rows"] / r["seconds"] for r in runs)
            ratio = f"{rate / ref:.2f}x" if method != "medallion_hourly" else "-"
            print(
                f"{method:18} {runs[0]['rows']:>10,} {med[method]:>9.2f} {rate:>10,.0f} {ratio:>15} "
                f"{max(r['peak_rss_mb'] for r in runs):>12.0f}"
            )
        rate = statistics.median(r["rows"] / r["seconds"] for r in results["medallion"])
        print(f"\nreplication throughput = {rate / ref:.2f}x the psql binary COPY pipe (target >= 0.80x)")
        print(
            f"an hourly incremental load ({results['medallion_hourly'][0]['rows']:,} changed rows, 1%) takes "
            f"{med['medallion_hourly'] / med['medallion']:.0%} of the time of a full copy"
        )
    finally:
        src.stop()
        wh.stop()


if __name__ == "__main__":
    main()
