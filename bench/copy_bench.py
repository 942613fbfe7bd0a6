"""Table-copy benchmark: the bronze replication against a psql binary COPY pipe, in the same run.

    python bench/copy_bench.py [--rows 1000000] [--runs 3] [--tables ...] [--methods ...] [--before DIR]

Starts two embedded Postgres servers (source, warehouse; fsync on, shared_buffers 512MB, as in
../shared/bench; free ports), fills the tables server-side, then runs each method --runs times
round-robin (the pipe first, the others in a rotated order), each as its own process:

  psql_binary_pipe   psql COPY ... TO STDOUT (FORMAT BINARY) | psql COPY ... FROM STDIN (FORMAT BINARY)
                     into a plain table: the physical reference
  pipe_bronze_shape  the same pipe into a table shaped like bronze (+ _cursor, _loaded_at and _batch_id
                     defaults, _deleted_at, BRIN on _cursor): what bronze's own rows cost the warehouse
  medallion          medallion.replication.replicate(): a first (full-history) incremental load of a new
                     bronze table, psql reading the source; ledger row, BRIN index and ANALYZE included
  medallion_inproc   the same with MEDALLION_PSQL=off: rows read by psycopg on the source connection
  medallion_hourly   the next hour's incremental load after 1% of rows changed (split path: the lookback
                     staged, the rest straight in), with where its time goes (connect, schema, plan, copy,
                     merge, commit)
  *_before           with --before DIR: medallion and medallion_hourly with DIR as the plugins/ folder
                     (a worktree of an older commit), in the same rounds

Tables: browser_sessions (14 columns, Supabase-shaped, as in the shared harness) and narrow_events
(id bigint, ts timestamptz, n smallint). Ratios compare each run with the pipe of the same round.
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# --before runs some methods on another checkout's package too (the code before a change)
sys.path.insert(0, os.environ.get("MEDALLION_PLUGINS", str(ROOT / "plugins")))

import psycopg  # noqa: E402

from medallion.local.localpg import LocalPostgres, free_port  # noqa: E402

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
# The narrow table: id, timestamp, small int (the shape where per-row client work shows most).
NARROW_DDL = """
drop table if exists public.narrow_events;
create table public.narrow_events (id bigint not null, ts timestamptz not null, n smallint not null);
"""
NARROW_FILL = """
insert into public.narrow_events
select g,
       timestamptz '2025-01-01 00:00:00+00' + ((g::float8 / %(n)s) * 90 * 86400 + random() * 60) * interval '1 second',
       (g %% 30000)::smallint
from generate_series(1, %(n)s) g
"""


@dataclass(frozen=True)
class Table:
    name: str
    cols: str
    ddl: str
    fill: str
    key: str
    cursor: str
    change: str  # the hourly 1% change: %s is the hour's start


TABLES = {
    "browser_sessions": Table(
        "browser_sessions", COLS, DDL, FILL, "id", "updated_at",
        "update public.browser_sessions set status = 'completed', "
        "updated_at = %s + interval '1 second' * (abs(hashtext(id::text)) %% 3600) "
        "where abs(hashtext(id::text)) %% 100 = 0",
    ),
    "narrow_events": Table(
        "narrow_events", "id, ts, n", NARROW_DDL, NARROW_FILL, "id", "ts",
        "update public.narrow_events set n = n + 1, ts = %s + interval '1 second' * (id %% 3600) where id %% 100 = 0",
    ),
}  # fmt: skip
CHECKSUM = "select count(*), coalesce(sum(('x' || left(md5(ROW({cols})::text), 12))::bit(48)::bigint), 0) from {table}"


def generate(src_uri: str, table: Table, n: int) -> None:
    with psycopg.connect(src_uri, autocommit=True) as conn:
        if conn.execute("select to_regclass(%s)", (f"public.{table.name}",)).fetchone()[0]:
            if conn.execute(f"select count(*) from public.{table.name}").fetchone()[0] == n:
                return
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute(table.ddl)
            conn.execute("select setseed(0.4242)")
            conn.execute(table.fill, {"n": n})
        conn.execute(f"alter table public.{table.name} add primary key ({table.key})")
        conn.execute(f"create index on public.{table.name} ({table.cursor})")
        conn.execute(f"vacuum (freeze, analyze) public.{table.name}")
        conn.execute("checkpoint")
        print(f"generated {n:,} rows of {table.name} in {time.perf_counter() - t0:.1f}s", flush=True)


def run_child(args: list[str], env: dict | None = None) -> dict:
    """Run one method in its own process (so its peak RSS is its own); return its JSON result line."""
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"{args[-1]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


BRONZE_SHAPE = (
    ", _loaded_at timestamptz not null default now(), "
    "_batch_id uuid default '00000000-0000-4000-8000-000000000000', "
    "_cursor timestamptz, _deleted_at timestamptz);\ncreate index on ref.{name}_bronze using brin (_cursor) "
    "with (autosummarize = on);"
)


def child_pipe(src_port: int, wh_port: int, table: Table, bronze_shape: bool) -> None:
    """psql binary pipe into a plain table (created first, untimed); bronze_shape: into a table with
    bronze's metadata columns, defaults and BRIN index, the cursor sent as _cursor."""
    psql = LocalPostgres(Path("/"), 0).psql_path()
    wh = f"postgresql://postgres@127.0.0.1:{wh_port}/warehouse"
    target, cols, select = f"ref.{table.name}", table.cols, table.cols
    ddl = table.ddl.replace("public.", "ref.")
    if bronze_shape:
        target, cols, select = f"{target}_bronze", f"{cols}, _cursor", f"{cols}, {table.cursor}"
        ddl = ddl.replace(f"ref.{table.name}", target).rstrip().removesuffix(");") + BRONZE_SHAPE.format(
            name=table.name
        )
    with psycopg.connect(wh, autocommit=True) as conn:
        conn.execute("create schema if not exists ref")
        conn.execute(ddl)
        conn.execute("checkpoint")
    t0 = time.perf_counter()
    src_cmd = [
        psql,
        "-X",
        "-q",
        "-d",
        f"postgresql://postgres@127.0.0.1:{src_port}/source",
        "-c",
        f"copy (select {select} from public.{table.name}) to stdout (format binary)",
    ]
    copy_in = f"copy {target} ({cols}) from stdin (format binary)"
    p1 = subprocess.Popen(src_cmd, stdout=subprocess.PIPE)
    p2 = subprocess.Popen([psql, "-X", "-q", "-d", wh, "-c", copy_in], stdin=p1.stdout, stdout=subprocess.DEVNULL)
    p1.stdout.close()
    rc2, rc1 = p2.wait(), p1.wait()
    seconds = time.perf_counter() - t0
    if rc1 or rc2:
        sys.exit(f"psql pipe failed: {rc1}, {rc2}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the larger of the two psql
    print(json.dumps({"seconds": seconds, "peak_rss_mb": rss}))


def child_medallion(src_port: int, wh_port: int, table: Table, hourly: bool) -> None:
    """One replicate() call, timed whole (connect included); hourly: after an untimed first load and
    a 1% change inside the next hour."""
    import logging
    from dataclasses import replace
    from datetime import datetime, timedelta

    from medallion import config, replication, warehouse

    logging.basicConfig(level=logging.WARNING)
    spec = replace(
        config.get_table("browser_infra", "browser_sessions"),
        name=table.name,
        source_table=table.name,
        primary_key=(table.key,),
        cursor=table.cursor,
        cursor_fallback=(),
    )
    src_uri = f"postgresql://postgres@127.0.0.1:{src_port}/source"
    wh_uri = f"postgresql://postgres@127.0.0.1:{wh_port}/warehouse"
    with psycopg.connect(wh_uri, autocommit=True) as wh:  # untimed: a new table in an existing warehouse
        wh.execute(f"drop table if exists bronze_browser_infra.{table.name}; drop schema if exists ops cascade")
        warehouse.migrate(wh)
        wh.execute("checkpoint")  # as the pipe does: no run pays for the previous run's dirty pages
    hour0 = datetime.fromisoformat(HOUR0)
    if hourly:  # untimed: load history up to hour0, then change 1% of rows inside the next hour
        with psycopg.connect(src_uri) as src, psycopg.connect(wh_uri, autocommit=True) as wh:
            replication.replicate(spec, src, wh, interval_start=hour0 - timedelta(hours=1), interval_end=hour0)
            # an hour later autovacuum has summarized the new BRIN ranges (autosummarize); do it now
            wh.execute("select brin_summarize_new_values(%s)", (f"bronze_browser_infra.{table.name}__cursor_brin",))
            src.execute(table.change, (hour0,))
            src.commit()
            wh.execute("checkpoint")
    start, end = (
        (hour0, hour0 + timedelta(hours=1)) if hourly else (hour0 - timedelta(hours=1), hour0 + timedelta(days=400))
    )
    t0 = time.perf_counter()  # the whole run: connect, schema sync, window planning, copy, merge, ledger, commit
    src = psycopg.connect(src_uri, prepare_threshold=None)
    wh = psycopg.connect(wh_uri, prepare_threshold=None, autocommit=True)
    connect = time.perf_counter() - t0
    result = replication.replicate(spec, src, wh, interval_start=start, interval_end=end)
    seconds = time.perf_counter() - t0
    src.close()
    wh.close()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": result.rows_read,
                "written": result.rows_written,
                "path": result.path,
                "timings": {"connect": connect, **result.timings},
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def verify(src_uri: str, wh_uri: str, table: Table, target: str, latest: bool) -> None:
    with psycopg.connect(src_uri) as src, psycopg.connect(wh_uri) as wh:
        expected = src.execute(CHECKSUM.format(cols=table.cols, table=f"public.{table.name}")).fetchone()
        if latest:
            target = (
                f"(select distinct on ({table.key}) * from {target} "
                f"order by {table.key}, _cursor desc, _loaded_at desc) t"
            )
        got = wh.execute(CHECKSUM.format(cols=table.cols, table=target)).fetchone()
    if tuple(got) != tuple(expected):
        sys.exit(f"VERIFY FAILED for {target}: {got} != source {expected}")


METHODS = {  # name: (child, extra environment)
    "psql_binary_pipe": ("pipe", {}),
    "pipe_bronze_shape": ("pipe_bronze_shape", {}),  # the same pipe into a table shaped like bronze
    "medallion": ("medallion", {}),
    "medallion_inproc": ("medallion", {"MEDALLION_PSQL": "off"}),  # no psql: rows read by psycopg
    "medallion_hourly": ("medallion_hourly", {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=int(os.environ.get("N", 1_000_000)))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", 3)))
    ap.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    ap.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    ap.add_argument("--before", metavar="PLUGINS_DIR",
                    help="also run medallion and medallion_hourly with this plugins/ folder (e.g. a worktree of "
                    "the previous commit): methods medallion_before, medallion_hourly_before")  # fmt: skip
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", str(Path(tempfile.gettempdir()) / "medallion-bench")))
    ap.add_argument("--child", choices=sorted({c for c, _ in METHODS.values()}), help=argparse.SUPPRESS)
    ap.add_argument("--table", choices=list(TABLES), help=argparse.SUPPRESS)
    ap.add_argument("--ports", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        table = TABLES[args.table]
        if args.child in ("pipe", "pipe_bronze_shape"):
            child_pipe(*args.ports, table, bronze_shape=args.child == "pipe_bronze_shape")
        else:
            child_medallion(*args.ports, table, hourly=args.child == "medallion_hourly")
        return

    ports = [free_port(), free_port()]
    settings = {"shared_buffers": "512MB", "max_wal_size": "1GB"}
    src = LocalPostgres(Path(args.dir) / "source", ports[0]).start(settings)
    wh = LocalPostgres(Path(args.dir) / "warehouse", ports[1]).start(settings)
    loads = []
    try:
        src_uri, wh_uri = src.create_database("source"), wh.create_database("warehouse")
        for name in args.tables:
            generate(src_uri, TABLES[name], args.rows)
        methods = ["psql_binary_pipe", *(m for m in args.methods if m != "psql_binary_pipe")]
        if args.before:
            before = {"MEDALLION_PLUGINS": str(Path(args.before).resolve())}
            for method in ("medallion", "medallion_hourly"):
                if method in methods:
                    METHODS[f"{method}_before"] = (METHODS[method][0], {**METHODS[method][1], **before})
                    methods.insert(methods.index(method), f"{method}_before")
        results = {(t, m): [] for t in args.tables for m in methods}
        for round_ in range(1, args.runs + 1):
            for name in args.tables:
                table = TABLES[name]
                rest = methods[1:]  # the pipe first, the others in a rotated order: none always follows another
                shift = (round_ - 1) % len(rest) if rest else 0
                for method in [methods[0], *rest[shift:], *rest[:shift]]:
                    child, extra = METHODS[method]
                    cmd = [sys.executable, __file__, "--ports", *map(str, ports), "--child", child, "--table", name]
                    res = run_child(cmd, env={**os.environ, **extra})
                    loads.append(os.getloadavg()[0])
                    res.setdefault("rows", args.rows)
                    if method == "psql_binary_pipe":
                        verify(src_uri, wh_uri, table, f"ref.{name}", latest=False)
                    elif method == "pipe_bronze_shape":
                        verify(src_uri, wh_uri, table, f"ref.{name}_bronze", latest=False)
                    elif not method.startswith("medallion_hourly"):
                        verify(src_uri, wh_uri, table, f"bronze_browser_infra.{name}", latest=True)
                    results[name, method].append(res)
                    times = "  ".join(f"{k} {v:.2f}" for k, v in res.get("timings", {}).items())
                    print(
                        f"round {round_} {name:16} {method:17} {res['rows']:>10,} rows {res['seconds']:7.2f}s "
                        f"{res['rows'] / res['seconds']:>10,.0f} rows/s  RSS {res['peak_rss_mb']:4.0f} MB  "
                        f"load {loads[-1]:.1f}  {times}",
                        flush=True,
                    )
        report(args, methods, results, loads)
    finally:
        src.stop()
        wh.stop()


def report(args, methods: list[str], results: dict, loads: list[float]) -> None:
    """Per table: each method's median seconds and its ratio to the pipe of the same round (median
    and worst), the hourly load as a share of the full copy of the same round, and its breakdown."""
    print(
        f"\n{args.rows:,} rows per table, {args.runs} interleaved rounds; load average "
        f"{min(loads):.1f}..{max(loads):.1f} (2 cores)\n"
    )
    print(f"{'table':16} {'method':17} {'rows':>10} {'median s':>9} {'vs pipe median':>15} {'worst':>6} {'RSS MB':>7}")
    for name in args.tables:
        pipe = results[name, "psql_binary_pipe"]
        for method in methods:
            runs = results[name, method]
            med = statistics.median(r["seconds"] for r in runs)
            if method == "psql_binary_pipe" or method.startswith("medallion_hourly"):
                ratio = worst = "-"
            else:  # rows/s against the pipe's rows/s of the same round
                ratios = [p["seconds"] / r["seconds"] for p, r in zip(pipe, runs, strict=True)]
                ratio, worst = f"{statistics.median(ratios):.2f}x", f"{min(ratios):.2f}x"
            print(
                f"{name:16} {method:17} {runs[0]['rows']:>10,} {med:>9.2f} {ratio:>15} {worst:>6} "
                f"{max(r['peak_rss_mb'] for r in runs):>7.0f}"
            )
        if "pipe_bronze_shape" in methods and "medallion" in methods:
            shape, full = results[name, "pipe_bronze_shape"], results[name, "medallion"]
            ratios = [p["seconds"] / r["seconds"] for p, r in zip(shape, full, strict=True)]
            print(
                f"{name:16} medallion vs the pipe into a bronze-shaped table: {statistics.median(ratios):.2f}x "
                f"(worst {min(ratios):.2f}x)"
            )
        for suffix in ("_before", ""):
            if f"medallion_hourly{suffix}" not in methods or "medallion" not in methods:
                continue
            hourly, full = results[name, f"medallion_hourly{suffix}"], results[name, "medallion"]
            shares = [h["seconds"] / f["seconds"] for h, f in zip(hourly, full, strict=True)]
            parts = {k: statistics.median(h["timings"].get(k, 0.0) for h in hourly) for k in hourly[0]["timings"]}
            print(
                f"{name:16} hourly increment{suffix.replace('_', ' ')} ({hourly[0]['rows']:,} rows read, "
                f"{hourly[0]['path']}): {statistics.median(shares):.1%} of the full copy (worst {max(shares):.1%}); "
                + ", ".join(f"{k} {v:.3f}s" for k, v in parts.items())
            )
    print()


if __name__ == "__main__":
    main()
