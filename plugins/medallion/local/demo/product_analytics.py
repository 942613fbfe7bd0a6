"""Deterministic demo data for the product-analytics Supabase database (schema `analytics`).

`seed` fills `days` of history ending at `as_of` into the four append-only raw tables; `advance`
moves the simulated clock forward: new events keep arriving (some sessions continue across the
clock tick), a few arrive hours after they happened, some are delivered twice. The same
(seed, as_of, scale) always produces the same rows.

Dirty rows, on purpose (what the silver rules in include/dbt/models/core/product_analytics exist for):
  events_raw        null event_type, null user_id, null session_id; the same event delivered twice
                    (same id and payload, a later ingested_at: silver keeps one row per id, the
                    document's dedup rule); events ingested minutes to hours after created_at
  transactions_raw  zero and negative amounts, missing currency, lower-case / padded currency codes,
                    amounts in each fraud tier (> 10000, > 5000, else), a payment webhook delivered
                    twice (new id, same external_id: silver flags it is_duplicate)
  api_logs_raw      null endpoint, negative response times, lower-case methods, status code 0

Scale 1 = 100k events (plus ~10k API logs, ~5k user actions, ~3k transactions); `--events N`
sets the event count directly, up to 10M (binary COPY from a second connection while the next day
is generated: ~80k rows/s measured on a 2-core machine, `bench/analytics_bench.py` prints it).

    python -m medallion.local.demo.product_analytics --dsn postgresql://... seed [--scale 1 | --events N]
    python -m medallion.local.demo.product_analytics --dsn postgresql://... advance --minutes 5 [--events N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import random
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from medallion import config
from medallion.local import demo

ROOT = config.ROOT  # the bundle (the same path wherever this module sits)
# the generic Supabase platform files (roles, auth.uid(), replicator), then this product's own
PRODUCT = "product_analytics"
TABLES = ["events_raw", "api_logs_raw", "user_actions_raw", "transactions_raw"]
DEFAULT_SEED = 7
BASE_EVENTS = 100_000  # scale 1
EVENTS_PER_SESSION = 7
EVENTS_PER_USER = 150  # over the whole history: the user base grows with the scale

EVENT_TYPES = ["page_view", "click", "form_submit", "search", "feature_used", "purchase", "error"]
EVENT_WEIGHTS = [45, 25, 8, 7, 10, 3, 2]
EVENT_CUM = list(itertools.accumulate(EVENT_WEIGHTS))  # choices() with cum_weights: no sum per call
PAGES = ["/", "/dashboard", "/reports", "/settings", "/billing", "/projects", "/projects/new", "/docs", "/pricing"]
EVENT_SOURCES = ["web", "web", "web", "ios", "android", "api"]
ENDPOINTS = ["/api/v1/events", "/api/v1/projects", "/api/v1/reports", "/api/v1/users/me", "/api/v1/billing"]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
STATUSES = [200, 201, 204, 400, 401, 404, 500, 503]
STATUS_WEIGHTS = [80, 5, 2, 4, 2, 4, 2, 1]
ACTIONS = ["create", "update", "delete", "share", "view"]
ENTITIES = ["dashboard", "report", "project", "comment"]
PAYMENT_METHODS = ["card", "card", "paypal", "apple_pay", "bank_transfer"]
TX_STATUSES = ["succeeded", "failed", "refunded"]
TX_STATUS_WEIGHTS = [88, 9, 3]

# dirty-data rates
P_NULL_EVENT_TYPE, P_NULL_USER, P_NULL_SESSION = 0.01, 0.03, 0.04
P_EVENT_REDELIVERED, P_TX_REDELIVERED = 0.015, 0.03
P_LATE_MINUTES, P_LATE_HOURS = 0.04, 0.01
GAP_MINUTES_NEAR_TIMEOUT = (25, 35)  # some gaps straddle the 30-minute session timeout

# properties payloads, serialized once (json.dumps per row was a fifth of the generation time)
_PAGE_PROPS = {p: json.dumps({"page": p}) for p in PAGES}
_SEARCH_PROPS = [json.dumps({"query_length": n}) for n in range(1, 41)]
_FEATURE_PROPS = [json.dumps({"feature": f}) for f in ("export", "share", "filter", "alerts")]

COLUMNS = {
    "events_raw": ("id, event_type, user_id, session_id, properties, source, created_at, ingested_at",
                   ["uuid", "text", "uuid", "text", "jsonb", "text", "timestamptz", "timestamptz"]),
    "api_logs_raw": ("id, user_id, method, endpoint, status_code, response_time_ms, properties, source, "
                     "created_at, ingested_at",
                     ["uuid", "uuid", "text", "text", "int4", "int4", "jsonb", "text", "timestamptz", "timestamptz"]),
    "user_actions_raw": ("id, user_id, action, entity_type, entity_id, properties, source, created_at, ingested_at",
                         ["uuid", "uuid", "text", "text", "text", "jsonb", "text", "timestamptz", "timestamptz"]),
    "transactions_raw": ("id, external_id, user_id, amount, currency, status, payment_method, properties, source, "
                         "created_at, ingested_at",
                         ["uuid", "text", "uuid", "numeric", "text", "text", "text", "jsonb", "text",
                          "timestamptz", "timestamptz"]),
}  # fmt: skip


def apply_migrations(conn: psycopg.Connection) -> None:
    """The Supabase platform files, include/sql/source/product_analytics/*.sql and the demo clock
    (medallion.local.demo.apply_migrations, idempotent), then the simulated user base."""
    demo.apply_migrations(conn, PRODUCT)
    # the simulated user base (not replicated: the product only knows users through their events)
    conn.execute(
        "create table if not exists demo.users (id uuid primary key, signup_at timestamptz not null, "
        "weight float8 not null)"
    )
    conn.commit()


class _Gen:
    """One generation pass: a random stream, row buffers per table, binary COPY at the end."""

    def __init__(self, rng: random.Random, until: datetime):
        self.rng, self.until = rng, until
        self.rows: dict[str, list] = defaultdict(list)

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128))

    def latency(self) -> timedelta:
        """created_at -> ingested_at: seconds mostly, minutes sometimes, hours for a few."""
        r = self.rng.random()
        if r < P_LATE_HOURS:
            return timedelta(hours=self.rng.uniform(1, 6))
        if r < P_LATE_HOURS + P_LATE_MINUTES:
            return timedelta(minutes=self.rng.uniform(1, 20))
        return timedelta(seconds=self.rng.uniform(0.2, 20))

    def session(self, user: tuple, start: datetime, n_events: int, client_session: str | None = None) -> None:
        """One visit: events with short gaps (a few near the 30-minute timeout), maybe a payment."""
        rng = self.rng
        uid = user[0]
        sid = client_session or f"s_{rng.getrandbits(48):012x}"
        source = rng.choice(EVENT_SOURCES)
        at = start
        paid_at = None
        for i in range(n_events):
            if i:
                if rng.random() < 0.03:
                    at += timedelta(minutes=rng.uniform(*GAP_MINUTES_NEAR_TIMEOUT))
                else:
                    at += timedelta(seconds=rng.expovariate(1 / 45))
            if at >= self.until:
                break
            etype = rng.choices(EVENT_TYPES, cum_weights=EVENT_CUM)[0]
            props = _PAGE_PROPS[rng.choice(PAGES)] if etype in ("page_view", "click") else "{}"
            if etype == "search":
                props = _SEARCH_PROPS[rng.randrange(40)]
            elif etype == "feature_used":
                props = _FEATURE_PROPS[rng.randrange(4)]
            elif etype == "purchase":
                paid_at = at
            r = rng.random()
            self.event(
                None if r < P_NULL_EVENT_TYPE else etype,
                None if rng.random() < P_NULL_USER else uid,
                None if rng.random() < P_NULL_SESSION else sid,
                props,
                source,
                at,
            )
        if paid_at is not None or rng.random() < 0.05:
            self.transaction(uid, paid_at or (at if at < self.until else start))

    def event(self, etype, uid, sid, props: str, source: str, at: datetime, latency: timedelta | None = None):
        ingested = at + (latency if latency is not None else self.latency())
        if ingested >= self.until:
            return  # still in flight at the end of the generated time: it never arrives in this run
        row = (self.uuid(), etype, uid, sid, props, source, at, ingested)
        self.rows["events_raw"].append(row)
        if self.rng.random() < P_EVENT_REDELIVERED:  # an SDK retry: same id and payload, lands again later
            again = ingested + timedelta(seconds=self.rng.uniform(1, 3600))
            if again < self.until:
                self.rows["events_raw"].append((*row[:7], again))

    def transaction(self, uid, at: datetime) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.01:
            amount = round(rng.uniform(10_000.01, 50_000), 2)  # fraud tier 0.80
        elif r < 0.02:
            amount = round(rng.uniform(5_000.01, 10_000), 2)  # fraud tier 0.50
        elif r < 0.03:
            amount = 0.0
        elif r < 0.04:
            amount = -round(rng.uniform(1, 200), 2)  # a refund booked as a negative charge: invalid
        else:
            amount = round(min(rng.lognormvariate(3.6, 0.9), 4_999.0), 2)
        c = rng.random()
        currency = None if c < 0.02 else ("usd" if c < 0.05 else (" USD" if c < 0.06 else "USD"))
        ingested = at + self.latency()
        if ingested >= self.until:
            return
        props = {"plan": rng.choice(["starter", "pro", "team"]), "coupon": rng.random() < 0.1}
        row = [self.uuid(), f"ch_{rng.getrandbits(64):016x}", uid, Decimal(f"{amount:.2f}"), currency,
               rng.choices(TX_STATUSES, TX_STATUS_WEIGHTS)[0], rng.choice(PAYMENT_METHODS), json.dumps(props),
               "stripe_webhook", at, ingested]  # fmt: skip
        self.rows["transactions_raw"].append(tuple(row))
        if rng.random() < P_TX_REDELIVERED:  # the payment provider retries the webhook: a new row
            again = ingested + timedelta(seconds=rng.uniform(5, 900))
            if again < self.until:
                self.rows["transactions_raw"].append((self.uuid(), *row[1:10], again))

    def api_log(self, uid, at: datetime) -> None:
        rng = self.rng
        ingested = at + timedelta(seconds=rng.uniform(0.1, 5))
        if ingested >= self.until:
            return
        method = rng.choice(METHODS)
        if rng.random() < 0.02:
            method = method.lower()
        endpoint = rng.choice(ENDPOINTS) + (f"?page={rng.randint(1, 9)}" if rng.random() < 0.2 else "")
        if rng.random() < 0.005:
            endpoint = None
        status = rng.choices(STATUSES, STATUS_WEIGHTS)[0] if rng.random() > 0.003 else 0
        ms = int(rng.lognormvariate(4.5, 0.8))
        if rng.random() < 0.003:
            ms = -ms  # clock skew between the edge function and the API
        props = {"region": rng.choice(["us-east-1", "eu-west-1"]), "bytes": rng.randint(100, 90_000)}
        self.rows["api_logs_raw"].append(
            (self.uuid(), uid, method, endpoint, status, ms, json.dumps(props), "edge_function", at, ingested)
        )

    def user_action(self, uid, at: datetime) -> None:
        rng = self.rng
        ingested = at + timedelta(seconds=rng.uniform(0.1, 30))
        if ingested >= self.until:
            return
        entity = rng.choice(ENTITIES)
        self.rows["user_actions_raw"].append(
            (
                self.uuid(),
                uid,
                rng.choice(ACTIONS),
                entity,
                f"{entity}_{rng.randrange(5000)}",
                json.dumps({"via": rng.choice(["ui", "api"])}),
                "client_sdk",
                at,
                ingested,
            )  # fmt: skip
        )

    def write(self, conn: psycopg.Connection) -> dict[str, int]:
        counts = {}
        for table in TABLES:
            rows = self.rows.pop(table, [])
            columns, types = COLUMNS[table]
            with conn.cursor().copy(f"copy analytics.{table} ({columns}) from stdin (format binary)") as cp:
                cp.set_types(types)
                for row in rows:
                    cp.write_row(row)
            counts[table] = len(rows)
        return counts


def _activity(gen: _Gen, users: list[tuple], start: datetime, end: datetime, n_events: int) -> None:
    """Sessions (with their events and payments), API calls and entity actions of `users` in [start, end)."""
    rng = gen.rng
    live = [u for u in users if u[1] < end]
    if not live or n_events <= 0:
        return
    # busier users visit more; a user visits only after signing up
    weights = [u[2] for u in live]
    span = (end - start).total_seconds()
    n_sessions = max(1, round(n_events / EVENTS_PER_SESSION))
    for user in rng.choices(live, weights, k=n_sessions):
        first = max(start, user[1])
        at = first + timedelta(seconds=rng.uniform(0, max((end - first).total_seconds(), 1)))
        gen.session(user, at, 1 + int(rng.expovariate(1 / (EVENTS_PER_SESSION - 1))))
    for user in rng.choices(live, weights, k=max(1, n_events // 10)):
        gen.api_log(None if rng.random() < 0.1 else user[0], start + timedelta(seconds=rng.uniform(0, span)))
    for user in rng.choices(live, weights, k=max(1, n_events // 20)):
        gen.user_action(user[0], max(start, user[1]) + timedelta(seconds=rng.uniform(0, span)))


def _new_users(rng: random.Random, n: int, start: datetime, end: datetime) -> list[tuple]:
    span = (end - start).total_seconds()
    return [
        (uuid.UUID(int=rng.getrandbits(128)), start + timedelta(seconds=rng.uniform(0, span)), rng.lognormvariate(0, 1))
        for _ in range(n)
    ]


def seed(
    conn: psycopg.Connection,
    as_of: datetime,
    scale: float = 1.0,
    seed: int = DEFAULT_SEED,
    days: int = 120,
    events: int | None = None,
) -> dict[str, int]:
    """Fill an empty source with `days` of history ending at `as_of`. Returns rows per table."""
    apply_migrations(conn)
    if conn.execute("select exists (select from analytics.events_raw)").fetchone()[0]:
        raise RuntimeError("analytics source already seeded: drop its tables first or use `advance`")
    n_events = events if events is not None else round(BASE_EVENTS * scale)
    rng = random.Random(seed)
    begin = as_of - timedelta(days=days)
    # a third signed up before the history starts; the rest over it (monthly cohorts fill)
    n_users = max(20, n_events // EVENTS_PER_USER)
    users = _new_users(rng, n_users // 3, begin - timedelta(days=60), begin)
    users += _new_users(rng, n_users - len(users), begin, as_of - timedelta(hours=1))
    with conn.cursor().copy("copy demo.users (id, signup_at, weight) from stdin (format binary)") as cp:
        cp.set_types(["uuid", "timestamptz", "float8"])
        for u in users:
            cp.write_row(u)
    conn.commit()
    counts: dict[str, int] = defaultdict(int)
    # A day at a time (bounded memory at 10M events; activity grows with the user base). A second
    # connection COPYs day d while this thread generates day d + 1: the server parses and indexes
    # on the other core. Generation stays in this thread, in order: the rows do not depend on timing.
    day_weights = [sum(u[2] for u in users if u[1] < begin + timedelta(days=d + 1)) for d in range(days)]
    total_weight = sum(day_weights) or 1
    days_out: queue.Queue = queue.Queue(maxsize=1)
    failed: list[BaseException] = []

    def copier() -> None:
        try:
            with psycopg.connect(conn.info.dsn, password=conn.info.password) as writer:
                while (gen := days_out.get()) is not None:
                    for table, n in gen.write(writer).items():
                        counts[table] += n
        except BaseException as exc:  # re-raised by the generating thread
            failed.append(exc)
            while days_out.get() is not None:  # drain so the producer never blocks
                pass

    thread = threading.Thread(target=copier, name="analytics-seed-copy")
    thread.start()
    try:
        for d in range(days):
            gen = _Gen(rng, as_of)
            day = begin + timedelta(days=d)
            _activity(gen, users, day, day + timedelta(days=1), round(n_events * day_weights[d] / total_weight))
            days_out.put(gen)
            if failed:
                break
    finally:
        days_out.put(None)
        thread.join()
    if failed:
        raise failed[0]
    conn.execute(
        "insert into demo.clock (as_of) values (%s) on conflict (id) do update set as_of = excluded.as_of", (as_of,)
    )
    conn.commit()
    _analyze(conn)
    return dict(counts)


def advance(
    conn: psycopg.Connection,
    minutes: float = 5.0,
    seed: int = DEFAULT_SEED,
    events: int | None = None,
    hours: float | None = None,
) -> dict[str, int]:
    """Move the clock forward `minutes`: new events (about the last day's rate, or `events`), sessions of
    users active just before the tick continuing after it, late arrivals from hours ago, redeliveries."""
    if hours is not None:  # the local stack's demo advances every product by hours
        minutes = hours * 60
    t0 = clock(conn)
    if t0 is None:
        raise RuntimeError("analytics source is not seeded yet: run `seed` first")
    t1 = t0 + timedelta(minutes=minutes)
    rng = random.Random(f"{seed}:{t1.isoformat()}")
    if events is None:
        per_day = conn.execute(
            "select count(*) from analytics.events_raw where created_at >= %s", (t0 - timedelta(days=1),)
        ).fetchone()[0]
        events = max(1, round(per_day * minutes / 1440))
    signups = _new_users(rng, max(1, round(events / EVENTS_PER_USER / 10)), t0, t1)
    with conn.cursor().copy("copy demo.users (id, signup_at, weight) from stdin (format binary)") as cp:
        cp.set_types(["uuid", "timestamptz", "float8"])
        for u in signups:
            cp.write_row(u)
    users = [tuple(r) for r in conn.execute("select id, signup_at, weight from demo.users order by id")]
    gen = _Gen(rng, t1)
    # visits still going at the tick: their next events arrive now (a session spanning two loads)
    recent = conn.execute(
        """select distinct on (user_id) user_id, session_id, created_at from analytics.events_raw
            where created_at >= %s and user_id is not null and session_id is not null
            order by user_id, created_at desc""",
        (t0 - timedelta(minutes=20),),
    ).fetchall()
    recent.sort(key=lambda r: (r[2], r[0]))
    for uid, sid, last in rng.sample(recent, k=min(len(recent), max(1, events // 20))):
        gen.session((uid,), max(t0, last + timedelta(seconds=rng.uniform(5, 600))), rng.randint(1, 4), sid)
    # late arrivals: a phone back online sends events from hours ago (may join or extend old sessions)
    for user in rng.choices(users, [u[2] for u in users], k=max(1, events // 50)):
        at = t0 - timedelta(hours=rng.uniform(0.5, 6))
        if at > user[1]:
            gen.event(rng.choices(EVENT_TYPES, cum_weights=EVENT_CUM)[0], user[0], f"s_{rng.getrandbits(48):012x}",
                      json.dumps({"page": rng.choice(PAGES), "offline": True}), "ios", at,
                      latency=t0 - at + timedelta(seconds=rng.uniform(0, minutes * 60)))  # fmt: skip
    _activity(gen, users, t0, t1, max(0, events - len(gen.rows["events_raw"])))
    counts = gen.write(conn)
    conn.execute("update demo.clock set as_of = %s", (t1,))
    conn.commit()
    return counts


def _analyze(conn) -> None:
    conn.commit()
    prev = conn.autocommit
    conn.autocommit = True
    for table in TABLES:
        conn.execute(f"analyze analytics.{table}")
    conn.autocommit = prev


def clock(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute("select as_of from demo.clock").fetchone()
    return row[0] if row else None


def gold_report(wh: psycopg.Connection) -> str:
    """Silver's row counts, then daily metrics of the last 7 days and the 24h KPIs, from gold (what
    `make demo` prints; its lines: a title, a header, then the numbers)."""
    silver = wh.execute(
        """select (select count(*) from silver_product_analytics.events_clean),
                  (select count(*) filter (where is_valid) from silver_product_analytics.events_clean),
                  (select count(*) from silver_product_analytics.user_sessions),
                  (select count(*) from silver_product_analytics.transactions_validated)"""
    ).fetchone()
    rows = wh.execute(
        "select date, active_users, new_users, total_sessions, total_revenue from gold_product_analytics.daily_metrics "
        "where date >= current_date - 7 order by date desc"
    ).fetchall()
    kpis = wh.execute(
        "select metric_name, metric_value, trend from gold_product_analytics.kpi_dashboard "
        "where time_period = '24h' order by metric_name"
    ).fetchall()
    lines = ["Gold daily metrics, last 7 days (gold_product_analytics.daily_metrics)"]
    lines.append(f"{'date':12} {'active users':>13} {'new users':>10} {'sessions':>10} {'revenue':>12}")
    lines += [f"{d!s:12} {a or 0:>13,} {n or 0:>10,} {s or 0:>10,} {r or 0:>12,.2f}" for d, a, n, s, r in rows]
    lines.append(f"silver: {silver[0]:,} events ({silver[1]:,} valid), {silver[2]:,} sessions, "
                 f"{silver[3]:,} transactions")  # fmt: skip
    lines.append("KPIs, last 24h (gold_product_analytics.kpi_dashboard): "
                 + ", ".join(f"{m} {v:,.2f} ({t})" for m, v, t in kpis))  # fmt: skip
    return "\n".join(lines)


SESSIONS_SQL = config.SQL_DIR / "demo" / "product_analytics_source_sessions.sql"


def verify(wh: psycopg.Connection, src: psycopg.Connection) -> list[str]:
    """What `make demo` checks after its runs: silver holds each source event once, every source
    session (30-minute gap, computed here on the source) is one silver session, and gold has the
    previous day's metrics and the 24 KPI rows. Returns the problems found (none: all good)."""
    problems = []
    events = src.execute("select count(distinct id) from analytics.events_raw").fetchone()[0]
    sessions = src.execute(SESSIONS_SQL.read_text()).fetchone()[0]
    day_before = (clock(src) - timedelta(days=1)).date()
    got = wh.execute(
        """select (select count(*) from silver_product_analytics.events_clean),
                  (select count(*) from silver_product_analytics.user_sessions),
                  (select count(*) from gold_product_analytics.daily_metrics where date = %s and active_users > 0),
                  (select count(*) from gold_product_analytics.kpi_dashboard)""",
        (day_before,),
    ).fetchone()
    if got[0] != events:
        problems.append(f"silver events_clean has {got[0]:,} events, the source {events:,}")
    if got[1] != sessions:
        problems.append(f"silver user_sessions has {got[1]:,} sessions, the source's events make {sessions:,}")
    if got[2] != 1:
        problems.append(f"gold daily_metrics has no row with active users for {day_before}")
    if got[3] != 24:
        problems.append(f"gold kpi_dashboard has {got[3]} rows, not 24 (8 metrics x 24h/7d/30d)")
    return problems


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True, help="product-analytics source database URI (may create tables)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--scale", type=float, default=1.0, help=f"1 = {BASE_EVENTS:,} events over 120 days")
    s.add_argument("--events", type=int, default=None, help="number of events (overrides --scale; up to 10M)")
    s.add_argument("--as-of", type=datetime.fromisoformat, default=None, help="end of history (default: this hour)")
    s.add_argument("--seed", type=int, default=DEFAULT_SEED)
    a = sub.add_parser("advance")
    a.add_argument("--minutes", type=float, default=5.0)
    a.add_argument("--events", type=int, default=None, help="new events (default: the last day's rate)")
    a.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    with psycopg.connect(args.dsn) as conn:
        if args.cmd == "seed":
            as_of = args.as_of or floor_hour(datetime.now(UTC))
            counts = seed(conn, as_of, scale=args.scale, seed=args.seed, events=args.events)
        else:
            counts = advance(conn, minutes=args.minutes, seed=args.seed, events=args.events)
    seconds = time.perf_counter() - t
    for table, n in counts.items():
        print(f"{table:20} {n:>12,}")
    total = sum(counts.values())
    print(f"done in {seconds:.1f}s ({total / max(seconds, 1e-9):,.0f} rows/s)")


if __name__ == "__main__":
    main()
