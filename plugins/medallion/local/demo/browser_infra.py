"""Deterministic demo data for the browser-infrastructure SaaS source database (Supabase-shaped).

`seed` fills ~90 days of history ending at `as_of`; `advance` moves the simulated clock forward:
new sessions and events, updates that touch updated_at, and a few hard deletes, so incremental
replication has real work. The same (seed, as_of, scale) always produces the same rows.

    python -m medallion.local.demo.browser_infra --dsn postgresql://... seed [--scale 1] [--as-of 2026-01-01T00:00Z]
    python -m medallion.local.demo.browser_infra --dsn postgresql://... advance --hours 6
    python -m medallion.local.demo.browser_infra --dsn postgresql://... migrate   (the schema, as the local stack does)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import psycopg

from medallion.local import demo

PRODUCT = "browser_infra"
TABLES = [
    "plans",
    "organizations",
    "users",
    "organization_members",
    "projects",
    "api_keys",
    "subscriptions",
    "browser_sessions",
    "session_events",
    "usage_records",
    "invoices",
]  # (FK-safe order; the replication list lives in the dbt sources YAML, not here)

PLANS = [  # code, name, monthly price (cents), included minutes, max concurrency, overage per minute
    ("free", "Free", 0, 100, 1, 0),
    ("hobby", "Hobby", 3900, 1_000, 3, 0.05),
    ("startup", "Startup", 9900, 5_000, 25, 0.04),
    ("scale", "Scale", 49900, 50_000, 100, 0.03),
]
REGIONS = ["us-west-2", "us-east-1", "eu-central-1", "ap-southeast-1"]
EVENT_TYPES = ["navigate", "click", "input", "screenshot", "console_error", "network_error", "captcha_solved"]
EVENT_WEIGHTS = [30, 30, 15, 12, 6, 5, 2]
INDUSTRIES = ["e-commerce", "fintech", "travel", "real-estate", "ai-agents", "qa-testing", "marketing"]
COUNTRIES = ["US", "DE", "GB", "FR", "IN", "BR", "SG", "CA"]
SDKS = ["python", "node", "playwright", "puppeteer", "selenium"]

BASE_ORGS, BASE_USERS_PER_ORG, BASE_SESSIONS, EVENTS_PER_SESSION = 50, 6, 5000, 8
DEFAULT_SEED = 42


def apply_migrations(conn: psycopg.Connection) -> None:
    """The generic Supabase files, then include/sql/source/browser_infra/*.sql, in order (idempotent)."""
    demo.apply_migrations(conn, PRODUCT)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _sessions_for(rng, org, start: datetime, end: datetime, rate_per_hour: float, as_of: datetime):
    """Yield (session row, [event rows]) for one organization between start and end."""
    hours = (end - start).total_seconds() / 3600
    n = _poisson(rng, rate_per_hour * hours)
    for _ in range(n):
        started = start + timedelta(seconds=rng.uniform(0, hours * 3600))
        project_id, region = rng.choice(org["projects"])
        sid = _uuid(rng)
        duration_ms = int(min(rng.lognormvariate(11, 1.1), 3_600_000))
        ended = started + timedelta(milliseconds=duration_ms)
        roll = rng.random()
        if ended > as_of:
            status, ended, duration_ms = "running", None, None
        elif roll < 0.84:
            status = "completed"
        elif roll < 0.93:
            status = "failed"
        else:
            status = "timed_out"
        updated = ended or started
        meta = {
            "sdk": rng.choice(SDKS),
            "sdk_version": f"2.{rng.randrange(20)}.{rng.randrange(10)}",
            "viewport": {"width": 1920, "height": 1080} if rng.random() < 0.5 else {"width": 1280, "height": 720},
        }
        if rng.random() < 0.3:
            meta["tags"] = ["scrape", "prod" if rng.random() < 0.7 else "staging"]
        session = (
            sid,
            org["id"],
            project_id,
            status,
            region,
            started,
            ended,
            duration_ms,
            0 if rng.random() < 0.6 else int(rng.random() ** 4 * 5e8),
            rng.random() < 0.15,
            f"Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/{rng.randrange(118, 131)}.0.0.0 Safari/537.36",
            json.dumps(meta),
            started,
            updated,
        )
        events = []
        span = ((ended or as_of) - started).total_seconds()
        for _ in range(_poisson(rng, EVENTS_PER_SESSION)):
            at = started + timedelta(seconds=rng.uniform(0, max(span, 1)))
            etype = rng.choices(EVENT_TYPES, EVENT_WEIGHTS)[0]
            payload = {"url": f"https://example.com/p/{rng.randrange(500)}"} if etype == "navigate" else {}
            if etype.endswith("_error"):
                payload = {"message": rng.choice(["timeout", "net::ERR_CONNECTION_RESET", "TypeError"])}
            events.append((sid, org["id"], etype, at, json.dumps(payload), at, at))
        yield session, events


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:  # normal approximation keeps big scales fast
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    k, p, threshold = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


class _Writer:
    """COPY rows into source tables; counts what was written."""

    def __init__(self, conn: psycopg.Connection):
        self.conn, self.counts, self._copies = conn, defaultdict(int), {}

    COLUMNS = {
        "browser_sessions": "id, organization_id, project_id, status, region, started_at, ended_at, duration_ms, "
        "proxy_bytes, keep_alive, user_agent, metadata, created_at, updated_at",
        "session_events": "session_id, organization_id, event_type, occurred_at, payload, created_at, updated_at",
    }

    def copy(self, table: str, columns: str, rows) -> None:
        with self.conn.cursor().copy(f"copy public.{table} ({columns}) from stdin") as cp:
            for row in rows:
                cp.write_row(row)
                self.counts[table] += 1


def _load_orgs(conn) -> list[dict]:
    orgs = {}
    for oid, created, status in conn.execute(
        "select id, created_at, status from public.organizations where deleted_at is null order by id"
    ):
        orgs[oid] = {"id": oid, "created_at": created, "status": status, "projects": []}
    for pid, oid, region in conn.execute("select id, organization_id, default_region from public.projects order by id"):
        if oid in orgs:
            orgs[oid]["projects"].append((pid, region))
    return [o for o in orgs.values() if o["projects"]]


def seed(
    conn: psycopg.Connection, as_of: datetime, scale: float = 1.0, seed: int = DEFAULT_SEED, days: int = 90
) -> dict[str, int]:
    """Fill an empty source with `days` of history ending at `as_of`. Returns rows per table."""
    apply_migrations(conn)
    if conn.execute("select exists (select from public.organizations)").fetchone()[0]:
        raise RuntimeError("source already seeded: drop its tables first or use `advance`")
    rng = random.Random(seed)
    w = _Writer(conn)
    begin = as_of - timedelta(days=days)
    last = as_of - timedelta(seconds=1)  # every timestamp is before as_of: the next interval starts there

    plans = [(_uuid(rng), *p, begin - timedelta(days=400)) for p in PLANS]
    w.copy(
        "plans",
        "id, code, name, monthly_price_cents, included_browser_minutes, max_concurrent_sessions, "
        "overage_cents_per_minute, created_at, updated_at",
        [(*p[:-1], p[-1], p[-1]) for p in plans],
    )

    n_orgs = max(4, round(BASE_ORGS * scale))
    orgs, users, members, projects, keys, subs, invoices = [], [], [], [], [], [], []
    for i in range(n_orgs):
        created = (
            begin + timedelta(days=rng.uniform(-200, days - 2))
            if i % 3
            else begin - timedelta(days=rng.uniform(30, 300))
        )
        status = rng.choices(["active", "suspended", "churned"], [90, 4, 6])[0]
        org = {"id": _uuid(rng), "created_at": created, "status": status, "projects": []}
        orgs.append(org)
        name = f"{rng.choice(['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Stark', 'Wayne'])} {i}"
        updated = created + timedelta(days=rng.uniform(0, max(0.1, (as_of - created).days)))
        deleted = updated if status == "churned" and rng.random() < 0.3 else None
        orgs_row = (
            org["id"],
            name,
            f"org-{i}",
            rng.choice(INDUSTRIES),
            rng.choice(COUNTRIES),
            status,
            json.dumps({"sso": rng.random() < 0.2}),
            created,
            min(updated, last),
            deleted,
        )
        org["row"] = orgs_row
        for j in range(max(1, _poisson(rng, BASE_USERS_PER_ORG))):
            uid = _uuid(rng)
            ucreated = min(last, created + timedelta(hours=rng.uniform(0, 24 * 10)))
            last_sign_in = min(last, ucreated + timedelta(days=rng.uniform(0, 60)))
            users.append(
                (
                    uid,
                    f"user{len(users)}@{name.split()[0].lower()}{i}.example",
                    f"User {len(users)}",
                    None,
                    last_sign_in,
                    ucreated,
                    last_sign_in,
                    None,
                )
            )
            role = "owner" if j == 0 else rng.choices(["admin", "member", "viewer"], [2, 6, 2])[0]
            members.append((_uuid(rng), org["id"], uid, role, ucreated, ucreated, None))
        for k in range(rng.randint(1, 4)):
            pid, region = _uuid(rng), rng.choice(REGIONS)
            org["projects"].append((pid, region))
            projects.append((pid, org["id"], f"project-{i}-{k}", region, created, created, None))
            for n in range(rng.randint(1, 3)):
                kc = min(last - timedelta(days=3), created + timedelta(days=rng.uniform(0, 5)))
                revoked = rng.random() < 0.15
                keys.append(
                    (
                        _uuid(rng),
                        org["id"],
                        pid,
                        f"key-{n}",
                        f"bb_live_{rng.getrandbits(32):08x}",
                        "revoked" if revoked else "active",
                        None,
                        kc + timedelta(days=3) if revoked else None,
                        kc,
                        kc + timedelta(days=3) if revoked else kc,
                    )
                )
        # subscription: paid orgs pay monthly from their creation; trials in the first 14 days
        plan = rng.choices(plans, [40, 25, 25, 10])[0]
        trial_end = created + timedelta(days=14)
        sub_status = (
            "trialing"
            if trial_end > as_of
            else ("canceled" if status == "churned" else rng.choices(["active", "past_due"], [95, 5])[0])
        )
        period_start = created
        while period_start + timedelta(days=30) < as_of:
            period_start += timedelta(days=30)
        canceled = min(last, created + timedelta(days=rng.uniform(20, 120))) if sub_status == "canceled" else None
        sid = _uuid(rng)
        subs.append(
            (
                sid,
                org["id"],
                plan[0],
                sub_status,
                "month",
                created,
                period_start,
                period_start + timedelta(days=30),
                canceled,
                created,
                canceled or period_start,
            )
        )
        period = created
        while plan[3] > 0 and period + timedelta(days=30) < min(as_of, canceled or as_of):
            end = period + timedelta(days=30)
            paid = rng.random() < 0.93
            paid_at = min(last, end + timedelta(days=2)) if paid else None
            invoices.append(
                (
                    _uuid(rng),
                    org["id"],
                    sid,
                    f"INV-{i:04d}-{len(invoices):05d}",
                    "paid" if paid else "open",
                    "USD",
                    plan[3],
                    plan[3] if paid else 0,
                    period.date(),
                    end.date(),
                    end,
                    paid_at,
                    end,
                    paid_at or end,
                )
            )
            period = end

    w.copy(
        "organizations",
        "id, name, slug, industry, country, status, settings, created_at, updated_at, deleted_at",
        [o["row"] for o in orgs],
    )
    w.copy("users", "id, email, full_name, avatar_url, last_sign_in_at, created_at, updated_at, deleted_at", users)
    w.copy("organization_members", "id, organization_id, user_id, role, created_at, updated_at, deleted_at", members)
    w.copy("projects", "id, organization_id, name, default_region, created_at, updated_at, deleted_at", projects)
    w.copy(
        "api_keys",
        "id, organization_id, project_id, name, key_prefix, status, last_used_at, revoked_at, created_at, updated_at",
        keys,
    )
    w.copy(
        "subscriptions",
        "id, organization_id, plan_id, status, billing_interval, started_at, current_period_start, "
        "current_period_end, canceled_at, created_at, updated_at",
        subs,
    )
    w.copy(
        "invoices",
        "id, organization_id, subscription_id, invoice_number, status, currency, amount_due_cents, "
        "amount_paid_cents, period_start, period_end, issued_at, paid_at, created_at, updated_at",
        invoices,
    )

    live = [o for o in orgs if o["status"] != "churned"]
    active_hours = sum((as_of - max(o["created_at"], begin)).total_seconds() / 3600 for o in live)
    base_rate = BASE_SESSIONS * scale / max(active_hours, 1)
    _write_activity(w, rng, seed, live, begin, as_of, base_rate, as_of)
    conn.execute(
        "insert into demo.clock (as_of) values (%s) on conflict (id) do update set as_of = excluded.as_of", (as_of,)
    )
    conn.commit()
    _analyze(conn)
    return dict(w.counts)


def _write_activity(w: _Writer, rng, seed, orgs, start, end, base_rate, as_of) -> None:
    """Sessions, their events and daily usage for each org between start and end."""
    usage = defaultdict(lambda: [0.0, 0, 0.0])  # (org, day) -> minutes, sessions, proxy GB
    events: list = []

    def sessions():
        for org in orgs:
            rate = base_rate * random.Random(f"{seed}:{org['id']}").lognormvariate(0, 0.8)  # busy and quiet orgs
            for s, ev in _sessions_for(rng, org, max(start, org["created_at"]), end, rate, as_of):
                day = s[5].date()
                u = usage[(org["id"], day)]
                u[0] += (s[7] or 0) / 60000
                u[1] += 1
                u[2] += s[8] / 1e9
                events.extend(ev)
                yield s

    w.copy("browser_sessions", _Writer.COLUMNS["browser_sessions"], sessions())
    w.copy("session_events", _Writer.COLUMNS["session_events"], events)
    # usage is reported once a day is complete
    rows = []
    for (org_id, day), (minutes, n, gb) in sorted(usage.items()):
        closed = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=1)
        if closed < as_of:
            for metric, q in (("browser_minutes", minutes), ("sessions", n), ("proxy_gb", gb)):
                rows.append((_uuid(rng), org_id, day, metric, round(q, 3), closed, closed))
    w.copy("usage_records", "id, organization_id, usage_date, metric, quantity, created_at, updated_at", rows)


def advance(conn: psycopg.Connection, hours: float = 1.0, seed: int = DEFAULT_SEED, deletes: int = 3) -> dict[str, int]:
    """Move the simulated clock forward: new activity, updates touching updated_at, hard deletes."""
    row = conn.execute("select as_of from demo.clock").fetchone()
    if row is None:
        raise RuntimeError("source is not seeded yet: run `seed` first")
    t0 = row[0]
    t1 = t0 + timedelta(hours=hours)
    rng = random.Random(f"{seed}:{t1.isoformat()}")
    w = _Writer(conn)
    orgs = _load_orgs(conn)
    live = [o for o in orgs if o["status"] != "churned"]
    total, first = conn.execute("select count(*), min(started_at) from public.browser_sessions").fetchone()
    base_rate = total / max((t0 - first).total_seconds() / 3600, 1) / max(len(live), 1) if total else 1.0
    # sessions still running at t0 finish during the new hours
    finished = conn.execute(
        """update public.browser_sessions s
              set status = case when abs(hashtext(s.id::text)) %% 10 = 0 then 'failed' else 'completed' end,
                  ended_at = f.ended,
                  duration_ms = (extract(epoch from f.ended - s.started_at) * 1000)::int,
                  updated_at = f.ended
             from (select id, %(t0)s::timestamptz + interval '1 second' * (1 + abs(hashtext(id::text)) %% %(span)s)
                          as ended
                     from public.browser_sessions where status = 'running' and started_at < %(t0)s) f
            where s.id = f.id""",
        {"t0": t0, "span": max(1, min(600, int(hours * 3600) - 2))},
    ).rowcount
    w.counts["browser_sessions (finished)"] = finished
    _write_activity(w, rng, seed, live, t0, t1, base_rate, t1)
    # profile edits and sign-ins touch updated_at
    touched = rng.sample(orgs, k=min(len(orgs), 2))
    for org in touched:
        at = t0 + timedelta(seconds=rng.uniform(1, hours * 3600 - 1))
        conn.execute(
            "update public.organizations set settings = settings || %s::jsonb, updated_at = %s where id = %s",
            (json.dumps({"last_edit": at.isoformat()}), at, org["id"]),
        )
    signed_in = conn.execute(
        """update public.users set last_sign_in_at = %(at)s, updated_at = %(at)s
            where id in (select id from public.users where deleted_at is null
                          order by md5(id::text || %(k)s) limit 5)""",
        {"at": t0 + timedelta(seconds=hours * 1800), "k": t1.isoformat()},
    ).rowcount
    w.counts["users (updated)"] = signed_in
    # a few hard deletes (GDPR erasure, test sessions purged); events go with their session
    deleted = conn.execute(
        """delete from public.browser_sessions
            where id in (select id from public.browser_sessions where started_at < %s
                          order by md5(id::text || %s) limit %s)""",
        (t0 - timedelta(days=1), t1.isoformat(), deletes),
    ).rowcount
    w.counts["browser_sessions (deleted)"] = deleted
    conn.execute("update demo.clock set as_of = %s", (t1,))
    conn.commit()
    return dict(w.counts)


def _analyze(conn) -> None:
    conn.commit()
    prev = conn.autocommit
    conn.autocommit = True
    conn.execute("analyze")
    conn.autocommit = prev


def clock(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute("select as_of from demo.clock").fetchone()
    return row[0] if row else None


floor_hour = demo.floor_hour


def gold_report(wh: psycopg.Connection, days: int = 7) -> str:
    """MRR, active organizations and sessions per day from gold, the last `days` days with data."""
    lines = [
        "Gold KPIs, last 7 days (gold_metrics.v_daily_kpis)",
        f"{'day':10} {'MRR ($)':>12} {'active orgs':>12} {'sessions':>10}",
    ]
    rows = wh.execute(
        """select date_day, mrr, active_organizations_1d, sessions_started from gold_metrics.v_daily_kpis
            order by date_day desc limit %s""",
        (days,),
    ).fetchall()
    for day, mrr, active, sessions in reversed(rows):
        lines.append(f"{day:%Y-%m-%d} {mrr:>12,.2f} {active:>12,} {sessions:>10,}")
    return "\n".join(lines)


def verify(wh: psycopg.Connection, src: psycopg.Connection) -> list[str]:
    """What `make demo` checks after its runs (bronze is checked by the demo for every product): gold's
    daily KPIs have rows."""
    days = wh.execute("select count(*) from gold_metrics.v_daily_kpis").fetchone()[0]
    return [] if days else ["gold_metrics.v_daily_kpis has no rows"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True, help="source database URI (a role that may create tables)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--scale", type=float, default=1.0, help="1 = ~50 orgs, ~5k sessions, ~40k events")
    s.add_argument("--as-of", type=datetime.fromisoformat, default=None, help="end of history (default: this hour)")
    s.add_argument("--seed", type=int, default=DEFAULT_SEED)
    sub.add_parser("migrate")
    a = sub.add_parser("advance")
    a.add_argument("--hours", type=float, default=1.0)
    a.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    with psycopg.connect(args.dsn) as conn:
        if args.cmd == "migrate":
            apply_migrations(conn)
            counts = {}
        elif args.cmd == "seed":
            as_of = args.as_of or floor_hour(datetime.now(UTC))
            counts = seed(conn, as_of, scale=args.scale, seed=args.seed)
        else:
            counts = advance(conn, hours=args.hours, seed=args.seed)
    for table, n in counts.items():
        print(f"{table:32} {n:>12,}")
    print(f"done in {time.perf_counter() - t:.1f}s")


if __name__ == "__main__":
    main()
