"""The product-analytics demo generator (medallion.local.demo.product_analytics) on real Postgres:
deterministic per seed, every kind of dirty row the silver rules exist for, and a source with RLS
that only the replicator reads in full."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from test_product_analytics import AnalyticsDbs

from medallion.local.demo import product_analytics as generator


def checksums(conn: psycopg.Connection) -> dict[str, str]:
    return {
        t: conn.execute(
            f"select md5(coalesce(string_agg(r::text, '|' order by r::text), '')) from analytics.{t} as r"
        ).fetchone()[0]
        for t in generator.TABLES
    }


def test_generator_is_deterministic_and_makes_every_kind_of_dirty_row(stack):
    as_of = datetime(2026, 11, 1, tzinfo=UTC)
    a, b, c = (AnalyticsDbs(stack, None) for _ in range(3))
    for dbs, seed in ((a, 1), (b, 1), (c, 2)):
        with dbs.src() as conn:
            generator.seed(conn, as_of, events=20_000, seed=seed, days=40)
            generator.advance(conn, minutes=30, events=400, seed=seed)
    with a.src() as ca, b.src() as cb, c.src() as cc:
        assert checksums(ca) == checksums(cb)
        assert checksums(ca)["events_raw"] != checksums(cc)["events_raw"]
        assert generator.clock(ca) == as_of + timedelta(minutes=30)
        dirty = ca.execute(
            """select
                 count(*) filter (where event_type is null),
                 count(*) filter (where user_id is null),
                 count(*) filter (where session_id is null),
                 count(*) - count(distinct id),
                 count(*) filter (where ingested_at - created_at > interval '1 hour'),
                 max(ingested_at) >= %(end)s - interval '10 minutes' and max(ingested_at) < %(end)s
               from analytics.events_raw""",
            {"end": as_of + timedelta(minutes=30)},
        ).fetchone()
        assert all(dirty[:5]) and dirty[5], dirty
        redelivered_same = ca.execute(
            """select count(*) from (select id from analytics.events_raw group by id having count(*) > 1
                and count(distinct (event_type, user_id, session_id, properties, created_at)) = 1) as d"""
        ).fetchone()[0]
        assert redelivered_same > 0
        money = ca.execute(
            """select count(*) filter (where amount > 10000), count(*) filter (where amount > 5000 and amount <= 10000),
                      count(*) filter (where amount > 0 and amount <= 5000), count(*) filter (where amount = 0),
                      count(*) filter (where amount < 0), count(*) filter (where currency is null),
                      count(*) filter (where currency <> upper(trim(currency))),
                      count(*) - count(distinct external_id)
                 from analytics.transactions_raw"""
        ).fetchone()
        assert all(money), money
        api = ca.execute(
            """select count(*) filter (where endpoint is null), count(*) filter (where response_time_ms < 0),
                      count(*) filter (where method <> upper(method)), count(*) filter (where status_code = 0)
                 from analytics.api_logs_raw"""
        ).fetchone()
        assert all(api), api


def test_generator_source_has_rls_and_the_replicator_reads_it(stack):
    dbs = AnalyticsDbs(stack, None)
    with dbs.src() as conn:
        generator.seed(conn, datetime(2026, 11, 1, tzinfo=UTC), events=500, days=5)
        rls = "select count(*) from pg_tables where schemaname = 'analytics' and rowsecurity"
        assert conn.execute(rls).fetchone()[0] == 4
        total = conn.execute("select count(*) from analytics.events_raw").fetchone()[0]
        user = conn.execute("select user_id from analytics.events_raw where user_id is not null limit 1").fetchone()[0]
        conn.execute("set role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, false)", (f'{{"sub": "{user}"}}',))
        seen = conn.execute("select count(distinct user_id), count(*) from analytics.events_raw").fetchone()
        assert seen[0] == 1 and seen[1] > 0  # a signed-in user reads only their own events
    with psycopg.connect(dbs.replicator_uri) as conn:
        assert conn.execute("select count(*) from analytics.events_raw").fetchone()[0] == total > 0
