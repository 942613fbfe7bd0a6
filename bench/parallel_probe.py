"""Throwaway probe: does a first load get faster when the source is read by 2-3 parallel streams?

    PYTHONPATH=plugins .venv/bin/python bench/parallel_probe.py [--runs 3] [--configs narrow:1000000 ...]

Reuses copy_bench (servers, generate(), Table definitions, its `pipe` and `medallion` children).
Per config (table:rows), interleaved rounds (method order rotated each round) of:

  pipe      copy_bench's psql_binary_pipe: psql COPY TO STDOUT (binary) | psql COPY FROM STDIN, plain table
  medallion copy_bench's `--child medallion`: replicate(), a first load (whole run, and its copy part)
  fwd1      the product's copy loop re-done here: one psql reader -> this process (read1(1MB) ->
            copy.write) -> one warehouse COPY (binary, freeze) into a bronze-shaped table truncated in
            the same transaction; read under an exported snapshot like fwdK
  fwd2/fwd3 2/3 psql readers, each `begin isolation level repeatable read; set transaction snapshot
            '<exported>'; copy (select ... where <range>) to stdout (format binary)`, all started at
            once; stream 1 is forwarded as it comes, streams 2.. are drained by threads into memory
            meanwhile and forwarded after it: the headers (19 bytes) of streams 2.. and the trailers
            (-1 int16) of all but the last are cut, so the warehouse sees ONE binary COPY in ONE
            transaction (the product's guarantee holds)
  fwd1q     fwd1, but the one reader is drained by a thread into memory (unbounded queue): the
            buffering fwd2 does for its later streams, without a second reader (control experiment)
  fwd2c     fwd2 with ctid ranges instead of key ranges (narrow only; browser_sessions always uses ctid)
  unsafe2   UNSAFE UPPER BOUND, breaks the one-transaction guarantee: 2 readers (same snapshot), 2
            forwarding threads, 2 warehouse connections, each COPY (freeze) into its own bronze-shaped
            table truncated in its own transaction (like 2 partitions), committed separately
  unsafe2s  the same into ONE table from 2 transactions, so no freeze

Ranges: narrow_events by id (1..N, equal widths); browser_sessions (uuid key, random physical order:
a key range is a full scan or a random index walk per reader) by ctid page ranges (TID range scan).
Every run is checked: row count in the warehouse = N; round 1 also compares a content checksum.
For fwd*/unsafe* the CPU seconds of each process (source backends, psql readers, this forwarder,
warehouse backends) are sampled from /proc/<pid>/stat every 50 ms and printed as % of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import copy_bench as cb  # noqa: E402
import psycopg  # noqa: E402

from medallion.local.localpg import LocalPostgres, free_port  # noqa: E402
from medallion.replication import psql_client  # noqa: E402

PIPE_BYTES = 1024 * 1024
HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags 0, header extension length 0
TRAILER = b"\xff\xff"
TICK = os.sysconf("SC_CLK_TCK")
BRONZE_EXTRA = (
    ", _loaded_at timestamptz not null default now(), _batch_id uuid default '00000000-0000-4000-8000-000000000000', "
    "_cursor timestamptz, _deleted_at timestamptz);\n"
    "create index on {t} using brin (_cursor) with (autosummarize = on);"
)


def cpu_of(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    except (OSError, IndexError):
        return None


class Sampler:
    """CPU seconds per process, polled (the last value seen before each process exits)."""

    def __init__(self, src_uri: str, apps: list[str]):
        self.pids: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.first: dict[str, float] = {}
        self.apps = apps  # source backends, found by application_name
        self.src_uri = src_uri
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def run(self) -> None:
        with psycopg.connect(self.src_uri, autocommit=True) as conn:
            while not self.stop.is_set():
                missing = [a for a in self.apps if f"src_backend:{a}" not in self.pids]
                if missing:
                    for app, pid in conn.execute(
                        "select application_name, pid from pg_stat_activity where application_name = any(%s)",
                        (missing,),
                    ):
                        self.pids[f"src_backend:{app}"] = pid
                for name, pid in list(self.pids.items()):
                    v = cpu_of(pid)
                    if v is not None:
                        self.first.setdefault(name, v)
                        self.last[name] = v
                time.sleep(0.05)

    def result(self, seconds: float) -> dict[str, float]:
        self.stop.set()
        self.thread.join()
        out: dict[str, float] = {}
        for name in self.last:
            kind = name.split(":")[0]
            base = 0.0 if kind in ("src_backend", "reader") else self.first[name]  # new processes start at 0
            out[kind] = out.get(kind, 0.0) + (self.last[name] - base)
        return {k: v / seconds for k, v in out.items()}  # cores


def reader(psql: str, src_uri: str, snapshot: str, select: str, app: str) -> subprocess.Popen:
    cmd = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", src_uri,
           "-c", "begin isolation level repeatable read", "-c", f"set transaction snapshot '{snapshot}'",
           "-c", f"copy ({select}) to stdout (format binary)", "-c", "commit"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env={**os.environ, "PGAPPNAME": app})
    try:
        import fcntl

        fcntl.fcntl(proc.stdout.fileno(), 1031, PIPE_BYTES)  # F_SETPIPE_SZ, as the product does
    except OSError:
        pass
    return proc


def strip(chunks, first: bool, last: bool):
    """One binary COPY stream's chunks, without its header (unless first) and trailer (unless last)."""
    pending = b""  # header bytes still to cut
    need_head = not first
    tail = b""
    for chunk in chunks:
        mv = memoryview(chunk)
        if need_head:
            take = min(19 - len(pending), len(mv))
            pending += bytes(mv[:take])
            mv = mv[take:]
            if len(pending) < 19:
                continue
            if pending != HEADER:
                raise RuntimeError(f"unexpected header {pending!r}")
            need_head = False
        if not len(mv):
            continue
        if last:
            yield mv
            continue
        joined = tail + bytes(mv) if len(mv) < 2 else None
        if joined is not None:  # tiny chunk: rare
            tail, rest = joined[-2:], joined[:-2]
            if rest:
                yield rest
            continue
        if tail:
            yield tail
        tail, mv = bytes(mv[-2:]), mv[:-2]
        if len(mv):
            yield mv
    if not last and tail != TRAILER:
        raise RuntimeError(f"stream does not end with the trailer: {tail!r}")


def pipe_chunks(proc: subprocess.Popen):
    read = proc.stdout.read1
    while chunk := read(PIPE_BYTES):
        yield chunk


def drain(proc: subprocess.Popen, q: queue.Queue, held: list) -> None:
    read = proc.stdout.read1
    while chunk := read(PIPE_BYTES):
        q.put(chunk)
        held[0] += len(chunk)
        held[1] = max(held[1], held[0])
    q.put(None)


def queue_chunks(q: queue.Queue, held: list):
    while (chunk := q.get()) is not None:
        held[0] -= len(chunk)
        yield chunk


def ranges(src_uri: str, table: cb.Table, n: int, k: int, by: str) -> list[str]:
    if by == "id":
        b = [1 + i * n // k for i in range(k)]
        return [
            f"id >= {b[i]}" + (f" and id < {b[i + 1]}" if i + 1 < k else "") for i in range(k)
        ]  # the last range open-ended
    with psycopg.connect(src_uri) as conn:
        pages = conn.execute(
            "select pg_relation_size(%s) / current_setting('block_size')::int", (f"public.{table.name}",)
        ).fetchone()[0]
    b = [i * pages // k for i in range(k)]
    out = []
    for i in range(k):
        conds = ([f"ctid >= '({b[i]},0)'::tid"] if i else []) + ([f"ctid < '({b[i + 1]},0)'::tid"] if i + 1 < k else [])
        out.append(" and ".join(conds) or "true")
    return out


def bronze_ddl(table: cb.Table, target: str) -> str:
    return table.ddl.replace(f"public.{table.name}", target).rstrip().removesuffix(");") + BRONZE_EXTRA.format(t=target)


def run_fwd(src_uri, wh_uri, table, n, k, by, sample=True, queued=False) -> dict:
    """k readers under one exported snapshot -> this process -> ONE warehouse COPY in ONE transaction."""
    psql = psql_client()
    target = f"probe.{table.name}_fwd"
    with psycopg.connect(wh_uri, autocommit=True) as conn:  # untimed
        conn.execute("create schema if not exists probe")
        conn.execute(bronze_ddl(table, target))
        conn.execute("checkpoint")
    conds = ranges(src_uri, table, n, k, by)
    selects = [f"select {table.cols}, {table.cursor} from public.{table.name} where {c}" for c in conds]
    t0 = time.perf_counter()
    snap = psycopg.connect(src_uri, autocommit=True)
    snap.execute("begin isolation level repeatable read")
    snapshot = snap.execute("select pg_export_snapshot()").fetchone()[0]
    wh = psycopg.connect(wh_uri, autocommit=True)
    apps = [f"probe-r{i}-{os.getpid()}-{time.monotonic_ns()}" for i in range(k)]
    sampler = Sampler(src_uri, apps)
    sampler.add("forwarder:self", os.getpid())
    sampler.add("wh_backend:0", wh.info.backend_pid)
    if sample:
        sampler.thread.start()
    procs = [reader(psql, src_uri, snapshot, s, a) for s, a in zip(selects, apps, strict=False)]
    for i, p in enumerate(procs):
        sampler.add(f"reader:{i}", p.pid)
    held = [0, 0]
    drained = procs if queued else procs[1:]  # queued: stream 1 too is drained by a thread (a big buffer)
    queues = [queue.Queue() for _ in drained]
    threads = [
        threading.Thread(target=drain, args=(p, q, held), daemon=True) for p, q in zip(drained, queues, strict=False)
    ]
    for t in threads:
        t.start()
    wh.execute("begin")
    wh.execute(f"truncate {target}")
    with wh.cursor() as cur:
        cols = f"{table.cols}, _cursor"
        with cur.copy(f"copy {target} ({cols}) from stdin (format binary, freeze)") as cp:
            write = cp.write
            sources = [] if queued else [pipe_chunks(procs[0])]
            sources += [queue_chunks(q, held) for q in queues]
            for i, chunks in enumerate(sources):
                for piece in strip(chunks, first=i == 0, last=i == k - 1):
                    write(piece)
            for p in procs:
                if p.wait():
                    raise RuntimeError(f"reader failed: {p.returncode}")
        rows = cur.rowcount
    wh.execute("commit")
    snap.execute("commit")
    seconds = time.perf_counter() - t0
    cpu = sampler.result(seconds) if sample else {}
    wh.close()
    snap.close()
    return {"seconds": seconds, "rows": rows, "cpu": cpu, "held_mb": held[1] / 1e6, "targets": [target]}


def run_unsafe(src_uri, wh_uri, table, n, k, by, separate: bool) -> dict:
    """UNSAFE: k readers (one snapshot) -> k threads -> k warehouse connections, k transactions."""
    psql = psql_client()
    targets = [f"probe.{table.name}_u{i}" for i in range(k)] if separate else [f"probe.{table.name}_us"] * k
    with psycopg.connect(wh_uri, autocommit=True) as conn:
        conn.execute("create schema if not exists probe")
        for t in sorted(set(targets)):
            conn.execute(bronze_ddl(table, t))
        conn.execute("checkpoint")
    conds = ranges(src_uri, table, n, k, by)
    selects = [f"select {table.cols}, {table.cursor} from public.{table.name} where {c}" for c in conds]
    t0 = time.perf_counter()
    snap = psycopg.connect(src_uri, autocommit=True)
    snap.execute("begin isolation level repeatable read")
    snapshot = snap.execute("select pg_export_snapshot()").fetchone()[0]
    whs = [psycopg.connect(wh_uri, autocommit=True) for _ in range(k)]
    apps = [f"probe-u{i}-{os.getpid()}-{time.monotonic_ns()}" for i in range(k)]
    sampler = Sampler(src_uri, apps)
    sampler.add("forwarder:self", os.getpid())
    for i, w in enumerate(whs):
        sampler.add(f"wh_backend:{i}", w.info.backend_pid)
    sampler.thread.start()
    procs = [reader(psql, src_uri, snapshot, s, a) for s, a in zip(selects, apps, strict=False)]
    for i, p in enumerate(procs):
        sampler.add(f"reader:{i}", p.pid)
    counts = [0] * k
    errors = []

    def one(i: int) -> None:
        try:
            w = whs[i]
            w.execute("begin")
            if separate:
                w.execute(f"truncate {targets[i]}")
            with w.cursor() as cur:
                opts = "format binary, freeze" if separate else "format binary"
                with cur.copy(f"copy {targets[i]} ({table.cols}, _cursor) from stdin ({opts})") as cp:
                    for chunk in pipe_chunks(procs[i]):
                        cp.write(chunk)
                counts[i] = cur.rowcount
            if procs[i].wait():
                raise RuntimeError("reader failed")
            w.execute("commit")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    snap.execute("commit")
    seconds = time.perf_counter() - t0
    cpu = sampler.result(seconds)
    for w in whs:
        w.close()
    snap.close()
    return {"seconds": seconds, "rows": sum(counts), "cpu": cpu, "targets": sorted(set(targets))}


def profile_medallion(src_uri: str, wh_uri: str, ports: list[int], name: str) -> dict:
    """copy_bench's `--child medallion` (the product's replicate()), its processes' CPU sampled while
    its psql reader (application_name medallion-copy) runs: source backend, psql, the python
    process, the warehouse backend running the COPY; as cores over the psql reader's lifetime."""
    proc = subprocess.Popen([sys.executable, cb.__file__, "--ports", *map(str, ports), "--child", "medallion",
                             "--table", name], stdout=subprocess.PIPE, text=True)  # fmt: skip
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    seen: list[float] = []
    pids: dict[str, int] = {"forwarder": proc.pid}
    with psycopg.connect(src_uri, autocommit=True) as s, psycopg.connect(wh_uri, autocommit=True) as w:
        while proc.poll() is None:
            psql = [int(d) for d in os.listdir("/proc") if d.isdigit() and _ppid(int(d)) == proc.pid]
            if psql:
                pids["reader"] = psql[0]
                if "src_backend" not in pids:
                    row = s.execute(
                        "select pid from pg_stat_activity where application_name = 'medallion-copy'"
                    ).fetchone()
                    if row:
                        pids["src_backend"] = row[0]
                if "wh_backend" not in pids:
                    row = w.execute("select pid from pg_stat_activity where query ilike 'copy %from stdin%' "
                                    "and state = 'active'").fetchone()  # fmt: skip
                    if row:
                        pids["wh_backend"] = row[0]
                now = time.perf_counter()
                seen = [seen[0] if seen else now, now]
                for k, pid in pids.items():
                    if (v := cpu_of(pid)) is not None:
                        first.setdefault(k, 0.0 if k in ("reader", "src_backend") else v)
                        last[k] = v
            time.sleep(0.05)
    out = json.loads(proc.stdout.read().strip().splitlines()[-1])
    span = seen[1] - seen[0]
    out["cpu"] = {k: (last[k] - first[k]) / span for k in last}
    out["span"] = span
    return out


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def child(cb_args: list[str]) -> dict:
    return cb.run_child([sys.executable, cb.__file__, *cb_args])


def check(wh_uri: str, table: cb.Table, targets: list[str], n: int, expected: tuple | None) -> None:
    with psycopg.connect(wh_uri) as conn:
        if expected is None:
            got = sum(conn.execute(f"select count(*) from {t}").fetchone()[0] for t in targets)
            if got != n:
                sys.exit(f"COUNT FAILED {targets}: {got} != {n}")
            return
        union = " union all ".join(f"select {table.cols} from {t}" for t in targets)
        got = conn.execute(cb.CHECKSUM.format(cols=table.cols, table=f"({union}) u")).fetchone()
    if tuple(got) != tuple(expected):
        sys.exit(f"CHECKSUM FAILED {targets}: {got} != {expected}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--configs", nargs="+", default=["narrow_events:1000000", "browser_sessions:1000000",
                                                     "narrow_events:5000000"])  # fmt: skip
    ap.add_argument("--methods", nargs="+",
                    default=["pipe", "medallion", "fwd1", "fwd2", "fwd3", "fwd2c", "unsafe2", "unsafe2s"])  # fmt: skip
    ap.add_argument("--dir", default="/tmp/par-probe")
    ap.add_argument("--json", default="/tmp/par-probe/results.json")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        help="instead of the rounds: N CPU-sampled runs of copy_bench's medallion child per config",
    )
    ap.add_argument("--autovacuum-off", action="store_true", help="both servers: autovacuum = off (less noise)")
    args = ap.parse_args()
    ports = [free_port(), free_port()]
    settings = {"shared_buffers": "512MB", "max_wal_size": "1GB"}
    if args.autovacuum_off:
        settings["autovacuum"] = "off"
    src = LocalPostgres(Path(args.dir) / "source", ports[0]).start(settings)
    wh = LocalPostgres(Path(args.dir) / "warehouse", ports[1]).start(settings)
    all_results = []
    try:
        src_uri, wh_uri = src.create_database("source"), wh.create_database("warehouse")
        for config in args.configs:
            name, n = config.split(":")
            n = int(n)
            table = cb.TABLES[name]
            cb.generate(src_uri, table, n)
            by = "id" if name == "narrow_events" else "ctid"
            with psycopg.connect(src_uri) as conn:
                expected = tuple(conn.execute(cb.CHECKSUM.format(cols=table.cols, table=f"public.{name}")).fetchone())
                for c in ranges(src_uri, table, n, 2, by):
                    plan = conn.execute(f"explain select {table.cols} from public.{name} where {c}").fetchall()
                    print(f"plan [{c}]: {plan[0][0]}", flush=True)
            if args.profile:
                for _ in range(args.profile):
                    out = profile_medallion(src_uri, wh_uri, ports, name)
                    check(wh_uri, table, [f"bronze_browser_infra.{name}"], n, None)
                    cpu = "  ".join(f"{k} {v:.2f}" for k, v in sorted(out["cpu"].items()))
                    print(
                        f"profile {name} {n:,} medallion {out['seconds']:.2f}s (copy {out['timings']['copy']:.2f}s, "
                        f"sampled {out['span']:.2f}s) load {os.getloadavg()[0]:.2f}  cores: {cpu}",
                        flush=True,
                    )
                continue
            methods = [m for m in args.methods if not (m == "fwd2c" and by == "ctid")]
            res: dict[str, list[dict]] = {m: [] for m in methods}
            for r in range(args.runs):
                order = methods[r % len(methods) :] + methods[: r % len(methods)]
                for m in order:
                    ck = expected if r == 0 else None
                    p = ["--ports", *map(str, ports)]
                    if m == "pipe":
                        out = child([*p, "--child", "pipe", "--table", name])
                        out["rows"] = n
                        check(wh_uri, table, [f"ref.{name}"], n, ck)
                    elif m == "medallion":
                        out = child([*p, "--child", "medallion", "--table", name])
                        check(wh_uri, table, [f"bronze_browser_infra.{name}"], n, ck)
                    elif m.startswith("fwd"):
                        k = int(m[3])
                        out = run_fwd(
                            src_uri, wh_uri, table, n, k, "ctid" if m.endswith("c") else by, queued=m.endswith("q")
                        )
                        check(wh_uri, table, out["targets"], n, ck)
                    else:
                        out = run_unsafe(src_uri, wh_uri, table, n, 2, by, separate=m == "unsafe2")
                        check(wh_uri, table, out["targets"], n, ck)
                    if out["rows"] != n:
                        sys.exit(f"{m}: {out['rows']} rows != {n}")
                    out["load"] = os.getloadavg()[0]
                    out["round"] = r + 1
                    res[m].append(out)
                    cpu = "  ".join(f"{k} {v:.0%}" for k, v in sorted(out.get("cpu", {}).items()))
                    extra = f"copy {out['timings']['copy']:.2f}s" if "timings" in out else ""
                    if "held_mb" in out:
                        extra += f"held {out['held_mb']:.0f}MB"
                    print(f"round {r + 1} {name:16} {n:>9,} {m:9} {out['seconds']:7.2f}s "
                          f"{n / out['seconds']:>10,.0f} rows/s  load {out['load']:.2f}  {extra}  cpu[{cpu}]",
                          flush=True)  # fmt: skip
            all_results.append({"table": name, "rows": n, "results": res})
            summarize(name, n, res)
        Path(args.json).write_text(json.dumps(all_results, indent=1, default=str))
    finally:
        src.stop()
        wh.stop()


def summarize(name: str, n: int, res: dict) -> None:
    pipe = res["pipe"]
    loads = [o["load"] for rs in res.values() for o in rs]
    print(f"\n== {name} {n:,} rows, {len(pipe)} rounds, load avg {min(loads):.2f}..{max(loads):.2f} (2 cores)")
    print(
        f"{'method':10} {'median s':>9} {'rows/s med':>11} {'vs pipe med':>12} {'worst':>6} {'vs fwd1 med':>12} "
        f"{'worst':>6}  cpu (median, cores)"
    )
    for m, rs in res.items():
        med = statistics.median(o["seconds"] for o in rs)
        ratios = [p["seconds"] / o["seconds"] for p, o in zip(pipe, rs, strict=False)]
        f1 = [p["seconds"] / o["seconds"] for p, o in zip(res.get("fwd1", []), rs, strict=False)]
        vs1 = f"{statistics.median(f1):11.2f}x {min(f1):5.2f}x" if f1 else f"{'-':>12} {'-':>6}"
        cpu = {}
        for k in sorted({k for o in rs for k in o.get("cpu", {})}):
            cpu[k] = statistics.median(o["cpu"].get(k, 0) for o in rs)
        cpus = " ".join(f"{k}={v:.2f}" for k, v in cpu.items())
        extra = ""
        if m == "medallion":
            copy_med = statistics.median(o["timings"]["copy"] for o in rs)
            extra = f" (copy part median {copy_med:.2f}s = {n / copy_med:,.0f} rows/s)"
        print(
            f"{m:10} {med:9.2f} {n / med:11,.0f} {statistics.median(ratios):11.2f}x {min(ratios):5.2f}x "
            f"{vs1}  {cpus}{extra}"
        )
    print(flush=True)


if __name__ == "__main__":
    main()
