"""Bronze never loses a row silently: NULL, local-time and integer cursors, every source type
(Supabase's own auth and storage schemas), schema evolution under silver's views, and the small
edge cases (63-character names, full mode without cursor or key, NOT NULL DEFAULT columns, which
server broke mid-COPY). Real Postgres on both sides."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from checks import bronze_fingerprint, source_fingerprint
from conftest import AS_OF
from test_replication import load

from medallion.config import ConfigError
from medallion.replication import ReplicationError, SchemaDriftError, widens

HOUR = timedelta(hours=1)
AUTH_SQL = Path(__file__).parent / "sql" / "supabase_auth.sql"


def admin(dbs):
    conn = dbs.src_admin()
    conn.autocommit = True
    return conn


def same(dbs, s):
    with dbs.src() as src, dbs.wh() as wh:
        return bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)


@pytest.fixture
def auth(dbs):
    """The test source with Supabase's auth/storage schemas (and a product table using their types)."""
    with admin(dbs) as conn:
        conn.execute(AUTH_SQL.read_text())
    return dbs


def auth_spec(spec, name, schema="auth", **kw):
    if not kw.get("cursor_fallback"):
        kw.pop("cursor_fallback", None)
    return spec("users", name=name, source_schema=schema, bronze_schema=f"bronze_{schema}", **kw)


# --- 2. NULL cursors ------------------------------------------------------------------------------


def test_null_cursor_rows_are_loaded_and_rechecked_without_duplicates(auth, spec):
    """auth.users.updated_at is NULL for a third of the rows (filled on update only)."""
    s = auth_spec(spec, "users", cursor="updated_at", cursor_fallback=())
    first = load(s, auth, AS_OF - HOUR, AS_OF)
    with auth.wh() as wh:
        nulls = wh.execute("select count(*) from bronze_auth.users where _cursor is null").fetchone()[0]
    assert (first.rows_written, nulls) == (300, 100)
    assert same(auth, s)
    again = load(s, auth, AS_OF, AS_OF + HOUR)  # NULL-cursor rows are re-read every run...
    assert again.rows_read == 100 and again.rows_written == 0  # ...and written once
    with admin(auth) as conn:  # the update trigger's job: a never-updated row gets its first updated_at
        conn.execute("update auth.users set role = 'service', updated_at = %s where id = md5('user3')::uuid",
                     (AS_OF + 1.5 * HOUR,))  # fmt: skip
    assert load(s, auth, AS_OF + HOUR, AS_OF + 2 * HOUR).rows_written == 1
    assert same(auth, s) and bronze_rows_of(auth, "bronze_auth.users") == 301


def test_a_declared_fallback_cursor_loads_null_cursor_rows_by_created_at(auth, spec):
    s = auth_spec(spec, "users", cursor="updated_at", cursor_fallback=("created_at",))
    first = load(s, auth, AS_OF - HOUR, AS_OF)
    assert first.rows_written == 300 and same(auth, s)
    with auth.wh() as wh:
        assert wh.execute("select count(*) from bronze_auth.users where _cursor is null").fetchone()[0] == 0
    with admin(auth) as conn:  # a new never-updated user, and an update of an old one
        conn.execute("insert into auth.users (id, created_at) values (md5('new')::uuid, %s)", (AS_OF + 0.5 * HOUR,))
        conn.execute("update auth.users set updated_at = %s where id = md5('user3')::uuid", (AS_OF + 0.6 * HOUR,))
    nxt = load(s, auth, AS_OF, AS_OF + HOUR)
    assert (nxt.rows_read, nxt.rows_written) == (2, 2) and same(auth, s)
    assert load(s, auth, AS_OF, AS_OF + HOUR).rows_written == 0  # idempotent
    with auth.src() as src:  # the window predicate is answered by the two indexes, not a scan
        from medallion.replication import Cursor, source_columns

        cursor = Cursor.read(src, s, source_columns(src, s))
        src.execute("set enable_seqscan = off")
        query = psycopg.sql.SQL("explain select * from auth.users where {}").format(
            cursor.predicate(AS_OF, AS_OF + HOUR)
        )
        plan = "\n".join(r[0] for r in src.execute(query))
    assert "users_updated_at_idx" in plan and "users_created_at_idx" in plan, plan


def bronze_rows_of(dbs, table):
    with dbs.wh() as wh:
        return wh.execute(f"select count(*) from {table}").fetchone()[0]


# --- 3. local-time cursors ------------------------------------------------------------------------


def test_timestamp_without_time_zone_cursor_is_read_in_the_source_databases_time_zone(dbs, spec):
    """The app writes local New York time into a `timestamp` column; windows and _cursor are UTC."""
    with psycopg.connect(dbs.stack.source.uri("postgres"), autocommit=True) as conn:
        conn.execute(f"alter database {dbs.source_name} set timezone = 'America/New_York'")
    with admin(dbs) as conn:
        conn.execute("create table local_events (id int primary key, note text, updated_at timestamp not null)")
        conn.execute("create index on local_events (updated_at)")
        conn.execute("grant select on local_events to replicator")
        conn.execute("insert into local_events values (1, 'a', localtimestamp - interval '1 hour')")  # app's now()
        conn.execute("insert into local_events values (2, 'b', '2026-10-20 07:30'), (3, 'c', '2026-10-20 08:30'), "
                     "(4, 'd', '2026-10-20 11:30')")  # fmt: skip  # EDT: UTC-4
    s = spec("browser_sessions", name="local_events")
    noon = datetime(2026, 10, 20, 12, tzinfo=UTC)
    assert load(s, dbs, noon - HOUR, noon).rows_written == 1  # id 2 (11:30Z), not 3 (12:30Z) nor 1 (today)
    assert load(s, dbs, noon, noon + HOUR).rows_written == 1  # id 3
    assert load(s, dbs, noon + 3 * HOUR, noon + 4 * HOUR).rows_written == 1  # id 4 at 15:30Z
    with dbs.wh() as wh:
        cursors = dict(wh.execute("select id, _cursor from bronze_browser_infra.local_events").fetchall())
    assert cursors == {2: noon - 0.5 * HOUR, 3: noon + 0.5 * HOUR, 4: noon + 3.5 * HOUR}
    now = datetime.now(UTC)  # a row written "now" by the app lands in the window containing now
    assert load(s, dbs, now - HOUR, now + HOUR).rows_written == 1
    assert same(dbs, s)


# --- integer cursors ------------------------------------------------------------------------------


def test_integer_cursor_high_water_mark_rereads_ids_committed_out_of_order(dbs, spec):
    """An append-only event store keyed by identity: windows are id ranges. A lower id committed
    after a higher one was read is picked up: a window starts at the ids end of the newest batch that
    finished before the interval start minus the lookback (real times: intervals end at `now`)."""
    with admin(dbs) as conn:
        conn.execute("create table event_store (id bigint generated always as identity primary key, "
                     "stream text not null, payload jsonb)")  # fmt: skip
        conn.execute("insert into event_store (stream, payload) select 's' || g % 7, jsonb_build_object('n', g) "
                     "from generate_series(1, 500) g")  # fmt: skip
        conn.execute("grant select on event_store to replicator")
    s = spec("session_events", name="event_store", cursor="id", lookback=timedelta(0))
    e1 = datetime.now(UTC)
    first = load(s, dbs, e1 - HOUR, e1)
    assert (first.rows_written, first.path) == (500, "direct")
    with dbs.wh() as wh:
        assert wh.execute("select format_type(atttypid, atttypmod) from pg_attribute where "
                          "attrelid = 'bronze_browser_infra.event_store'::regclass and attname = '_cursor'"
                          ).fetchone()[0] == "bigint"  # fmt: skip
    slow = dbs.src_admin()  # a transaction takes id 501 and commits late
    slow.execute("insert into event_store (stream) values ('slow')")
    with admin(dbs) as conn:
        conn.execute("insert into event_store (stream) select 'fast' from generate_series(1, 20)")  # 502..521
    e2 = datetime.now(UTC)
    # no batch finished before this interval's start: every id is read again, the new ones written
    assert load(s, dbs, e1, e2).rows_written == 20
    slow.commit()
    slow.close()
    e3 = datetime.now(UTC)
    third = load(s, dbs, e2, e3)  # from the first batch's end: id 501 is read
    assert (third.rows_read, third.rows_written, third.path) == (21, 1, "staged")
    assert load(s, dbs, e2, e3).rows_written == 0  # idempotent
    with admin(dbs) as conn:
        conn.execute("insert into event_store (stream) select 'later' from generate_series(1, 5)")  # 522..526
    e4 = datetime.now(UTC)
    fourth = load(s, dbs, e3, e4)  # every batch before e3 read up to 522: only new ids, straight in
    assert (fourth.rows_read, fourth.rows_written, fourth.path) == (5, 5, "direct")
    assert same(dbs, s)
    with dbs.wh() as wh:
        ids = wh.execute("select window_start_id, window_end_id from ops.replication_batches "
                         "where table_name = 'event_store' order by finished_at").fetchall()  # fmt: skip
    assert ids == [(None, 501), (None, 522), (501, 522), (501, 522), (522, 527)]


# --- 4. user-defined types ------------------------------------------------------------------------

AUTH_TABLES = [
    ("auth", "users", ("updated_at", "created_at")),
    ("auth", "identities", ("updated_at", "created_at")),
    ("auth", "sessions", ("updated_at", "created_at")),
    ("auth", "mfa_factors", ("updated_at",)),
    ("auth", "refresh_tokens", ("updated_at",)),
    ("auth", "audit_log_entries", ("created_at",)),
    ("auth", "flow_state", ("updated_at",)),
    ("storage", "buckets", ("updated_at",)),
    ("public", "customers", ("updated_at", "created_at")),
]


def test_supabase_auth_and_storage_replicate_exactly(auth, spec):
    for schema, name, cursor in AUTH_TABLES:
        s = auth_spec(spec, name, schema, cursor=cursor[0], cursor_fallback=cursor[1:])
        result = load(s, auth, AS_OF - HOUR, AS_OF)
        assert result.rows_written > 0, name
        assert same(auth, s), name
    with auth.wh() as wh:
        described = dict(wh.execute(
            """select c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod) || ' | '
                      || coalesce(col_description(a.attrelid, a.attnum), '')
                 from pg_attribute a join pg_class c on c.oid = a.attrelid
                where c.relnamespace::regnamespace::text like 'bronze_%' and a.attnum > 0"""
        ).fetchall())  # fmt: skip
        buckets = wh.execute("select id, type from bronze_storage.buckets order by id").fetchall()
        customer = wh.execute("select email, aliases, min_aal, allowed_factors, balance, last_payment "
                              "from bronze_public.customers where id = 12").fetchone()  # fmt: skip
    assert described["sessions.aal"] == "text | source type auth.aal_level (enum) held as text"
    assert described["mfa_factors.factor_type"] == "text | source type auth.factor_type (enum) held as text"
    assert described["flow_state.code_challenge_method"].startswith("text | source type auth.code_challenge_method")
    assert described["buckets.type"] == "text | source type storage.buckettype (enum) held as text"
    assert described["customers.email"] == (
        "text | source type extensions.email_address (domain over extensions.citext (extension citext)) held as text"
    )
    assert described["customers.aliases"].startswith("text[] | source type extensions.citext[] (array of ")
    assert described["customers.min_aal"].startswith("text | source type strong_aal (domain over auth.aal_level")
    assert described["customers.allowed_factors"].startswith("text[] | source type auth.factor_type[]")
    assert described["customers.balance"].startswith("numeric(12,2) | source type price_cents (domain over")
    assert described["customers.last_payment"].startswith("text | source type money_amount (composite)")
    assert described["users.email"] == "character varying(255) | "  # built-in types are kept, no comment
    assert described["sessions.refreshed_at"] == "timestamp without time zone | "
    assert buckets == [("avatars", "STANDARD"), ("events-lake", "ANALYTICS"), ("invoices", "STANDARD")]
    assert customer[0] == "Customer.12@Example.COM" and customer[1] == ["Alias12@x.io", "ALIAS12@Y.io"]
    assert customer[2:] == ("aal2", [], Decimal("148.08"), "(18.00,EUR)")


def test_a_type_bronze_cannot_hold_fails_at_once_in_one_line(dbs, spec):
    """pg_stats.most_common_vals is anyarray, a pseudo-type (each row holds another element type):
    no table can have one, but a declared view can expose it."""
    s = spec("plans", name="pg_stats", source_schema="pg_catalog", cursor=None, primary_key=())
    with pytest.raises(ConfigError) as err:
        load(s, dbs)
    msg = str(err.value)
    assert msg.startswith("bronze_browser_infra.pg_stats.most_common_vals: source type anyarray") and "\n" not in msg
    assert "pseudo-type" in msg and bronze_rows_of_missing(dbs, "bronze_browser_infra.pg_stats")


def bronze_rows_of_missing(dbs, table):
    with dbs.wh() as wh:
        return wh.execute("select to_regclass(%s) is null", (table,)).fetchone()[0]


# --- 5. schema evolution with silver's views in place ---------------------------------------------


def silver_views(dbs):
    with dbs.wh() as wh:
        wh.execute("create schema silver")
        wh.execute("create view silver.stg_sessions with (security_invoker = true) as select id, duration_ms, "
                   "keep_alive, duration_ms * 2 as double_ms from bronze_browser_infra.browser_sessions")  # fmt: skip
        wh.execute("create view silver.daily (n, total_ms) as "
                   "select count(*), sum(duration_ms) from silver.stg_sessions")  # fmt: skip
        wh.execute("comment on view silver.stg_sessions is 'staging: sessions'")
        wh.execute("comment on column silver.daily.total_ms is 'sum of durations'")
        wh.execute("do $$ begin create role analyst; exception when duplicate_object then null; end $$")
        wh.execute("grant select on silver.daily to analyst")
        wh.commit()


def test_widening_under_a_view_and_a_view_on_a_view(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    silver_views(dbs)
    with dbs.wh() as wh:
        before = wh.execute("select * from silver.daily").fetchone()
    with admin(dbs) as conn:
        conn.execute("alter table browser_sessions alter column duration_ms type bigint")
    result = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert result.schema_changes == ["widened column duration_ms from integer to bigint"]
    with dbs.wh() as wh:
        assert wh.execute("select * from silver.daily").fetchone() == before
        kept = wh.execute(
            """select obj_description('silver.stg_sessions'::regclass, 'pg_class'),
                      col_description('silver.daily'::regclass, 2),
                      has_table_privilege('analyst', 'silver.daily', 'select'),
                      (select reloptions from pg_class where oid = 'silver.stg_sessions'::regclass),
                      (select format_type(atttypid, atttypmod) from pg_attribute
                        where attrelid = 'silver.stg_sessions'::regclass and attname = 'duration_ms')"""
        ).fetchone()
    assert kept == ("staging: sessions", "sum of durations", True, ["security_invoker=true"], "bigint")
    assert same(dbs, s)


def test_lossless_type_changes_are_followed(dbs, spec):
    with admin(dbs) as conn:
        conn.execute("create table amounts (id int primary key, n int, price numeric(10,2), "
                     "updated_at timestamptz not null)")  # fmt: skip
        conn.execute("insert into amounts values (1, 7, 12.34, %s)", (AS_OF - HOUR,))
        conn.execute("grant select on amounts to replicator")
    s = spec("browser_sessions", name="amounts")
    load(s, dbs)
    with admin(dbs) as conn:
        conn.execute("alter table amounts alter column n type numeric, alter column price type numeric(12,4)")
        conn.execute("insert into amounts values (2, 1.5, 99999999.1234, %s)", (AS_OF + 0.5 * HOUR,))
    result = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert result.schema_changes == [
        "widened column n from integer to numeric",
        "widened column price from numeric(10,2) to numeric(12,4)",
    ]
    assert same(dbs, s)
    assert widens("smallint", "numeric(5,0)") and not widens("integer", "numeric(9,0)")
    assert widens("numeric(10,2)", "numeric(12,4)") and not widens("numeric(10,2)", "numeric(11,4)")


def test_incompatible_change_names_a_fix_that_works_with_views_in_place(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    silver_views(dbs)
    with admin(dbs) as conn:
        conn.execute("alter table browser_sessions alter column keep_alive type text")
    with pytest.raises(SchemaDriftError) as err:
        load(s, dbs, AS_OF, AS_OF + HOUR)
    msg = str(err.value)
    assert (
        "\n" not in msg and "bronze_browser_infra.browser_sessions.keep_alive" in msg and "from boolean to text" in msg
    )
    fix = re.search(r"`(select ops\.alter_column_type\(.*?\))`", msg)
    assert fix, msg
    with dbs.wh() as wh:  # exactly as written, by on-call, with silver's views in place
        wh.execute(fix[1])
        wh.commit()
    assert load(s, dbs, AS_OF, AS_OF + HOUR).schema_changes == []
    with dbs.wh() as wh:
        assert wh.execute("select count(*) from silver.stg_sessions").fetchone()[0] > 0
    assert same(dbs, s)


# --- the smaller ones -----------------------------------------------------------------------------


def test_a_63_character_table_name_loads(dbs, spec):
    name = "t" * 63
    with admin(dbs) as conn:
        conn.execute(f"create table {name} (id int primary key, updated_at timestamptz not null)")
        conn.execute(f"insert into {name} values (1, %s)", (AS_OF - HOUR,))
        conn.execute(f"grant select on {name} to replicator")
    s = spec("browser_sessions", name=name)
    assert load(s, dbs).rows_written == 1 and same(dbs, s)


def test_full_mode_needs_no_cursor_column_and_no_primary_key(dbs, spec):
    with admin(dbs) as conn:
        conn.execute("create table country_codes (code text, name text)")  # no key, no updated_at
        conn.execute("insert into country_codes values ('DE', 'Germany'), ('DE', 'Germany'), ('FR', 'France')")
        conn.execute("grant select on country_codes to replicator")
    s = spec("plans", name="country_codes", cursor=None, primary_key=())
    assert load(s, dbs).rows_written == 3
    assert load(s, dbs).rows_written == 3  # a snapshot replaces the previous one
    assert bronze_rows_of(dbs, "bronze_browser_infra.country_codes") == 3


def test_not_null_default_column_backfills_older_bronze_rows(dbs, spec):
    s = spec("organizations")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with admin(dbs) as conn:
        conn.execute("alter table organizations add column tier text not null default 'free'")
    result = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert result.schema_changes == [
        "added column tier text (older bronze rows set to 'free', as the source did to its older rows)"
    ]
    with dbs.wh() as wh:
        assert (
            wh.execute("select count(*) from bronze_browser_infra.organizations where tier is null").fetchone()[0] == 0
        )
        assert wh.execute("select column_default from information_schema.columns where table_name = 'organizations'"
                          " and column_name = 'tier'").fetchone()[0] is None  # fmt: skip
    assert same(dbs, s)


def test_volatile_not_null_default_says_older_bronze_rows_stay_null(dbs, spec):
    s = spec("organizations")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with admin(dbs) as conn:
        conn.execute("alter table organizations add column token uuid not null default gen_random_uuid()")
    result = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert result.schema_changes == [
        "added column token uuid (NOT NULL in the source, but its older rows' values are unknown to bronze: "
        "older bronze rows hold NULL until the reconciliation or a full_refresh reloads them)"
    ]


@pytest.mark.parametrize("reader", ["psql", "psycopg"])
def test_mid_copy_failure_names_the_server_that_broke(dbs, spec, monkeypatch, reader):
    monkeypatch.setenv("MEDALLION_PSQL", "" if reader == "psql" else "off")
    with admin(dbs) as conn:
        conn.execute(
            "create view flaky as select g as id, '2026-10-31'::timestamptz + interval '1 minute' * g as updated_at, "
            "1 / (g - 500) as x from generate_series(1, 1000) g"
        )
        conn.execute("grant select on flaky to replicator")
    s = spec("browser_sessions", name="flaky")
    with pytest.raises(ReplicationError) as err:
        load(s, dbs)
    assert str(err.value).startswith("bronze_browser_infra.flaky: load failed: division by zero (source, connection "
                                     "'browser_infra_source', during COPY)")  # fmt: skip
    # the warehouse side: bronze refuses a row (a constraint added to bronze by hand)
    s = spec("browser_sessions")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.wh() as wh:
        wh.execute("alter table bronze_browser_infra.browser_sessions "
                   "add constraint short check (duration_ms < 0) not valid")  # fmt: skip
        wh.commit()
    with admin(dbs) as conn:
        conn.execute("update browser_sessions set updated_at = %s "
                     "where id in (select id from browser_sessions limit 3)", (AS_OF + 1.5 * HOUR,))  # fmt: skip
    with pytest.raises(ReplicationError) as err:  # a window after everything loaded: COPYed straight into bronze
        load(s, dbs, AS_OF + HOUR, AS_OF + 2 * HOUR)
    assert "(warehouse, connection 'warehouse', " in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_switching_a_table_to_an_integer_cursor_is_refused_in_one_line(dbs, spec):
    s = spec("session_events")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with pytest.raises(SchemaDriftError) as err:
        load(spec("session_events", cursor="id"), dbs, AS_OF, AS_OF + HOUR)
    msg = str(err.value)
    assert msg.startswith("bronze_browser_infra.session_events._cursor is timestamp with time zone but the declared "
                          "cursor (id) needs bigint") and "\n" not in msg  # fmt: skip


def test_bronze_dag_docs_say_where_the_reason_is_and_give_the_view_safe_fix():
    """On-call reads the first line of the error, and the drift fix in the docs is the function
    the drift error names (which the test above runs as written)."""
    from medallion.config import ROOT

    docs = (ROOT / "dags" / "bronze.py").read_text()  # every product's bronze DAG docs
    assert "**first line**" in docs and "select ops.alter_column_type('bronze_{p.id}.T', 'C', 'text')" in docs


def test_a_nullable_cursor_without_null_rows_still_goes_straight_into_bronze(auth, spec):
    s = auth_spec(spec, "mfa_factors", cursor="last_challenged_at")  # nullable, NULL in 3 of 4 rows
    load(s, auth, AS_OF - HOUR, AS_OF)
    with admin(auth) as conn:
        conn.execute("update auth.mfa_factors set last_challenged_at = '2026-10-01' where last_challenged_at is null "
                     "and id in (select id from auth.mfa_factors order by id limit 1)")  # fmt: skip
        conn.execute("delete from auth.mfa_factors where last_challenged_at is null")
        conn.execute("update auth.mfa_factors set last_challenged_at = %s where id = md5('factor4')::uuid",
                     (AS_OF + 1.5 * HOUR,))  # fmt: skip
    result = load(s, auth, AS_OF + HOUR, AS_OF + 2 * HOUR)
    assert (result.rows_written, result.path) == (1, "direct")


def test_widening_under_a_materialized_view_fails_in_one_line_naming_it(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.wh() as wh:
        wh.execute(
            "create materialized view public.mv as select id, duration_ms from bronze_browser_infra.browser_sessions"
        )
        wh.commit()
    with admin(dbs) as conn:
        conn.execute("alter table browser_sessions alter column duration_ms type bigint")
    with pytest.raises(SchemaDriftError) as err:
        load(s, dbs, AS_OF, AS_OF + HOUR)
    msg = str(err.value)
    assert msg.startswith("cannot widen bronze_browser_infra.browser_sessions.duration_ms from integer to bigint: "
                          "materialized view public.mv depends on") and "\n" not in msg  # fmt: skip


def test_local_time_cursor_across_the_end_of_daylight_saving_time_loses_nothing(dbs, spec):
    """New York falls back on 2026-11-01 at 02:00 EDT (06:00Z): local 01:00-02:00 happens twice."""
    with psycopg.connect(dbs.stack.source.uri("postgres"), autocommit=True) as conn:
        conn.execute(f"alter database {dbs.source_name} set timezone = 'America/New_York'")
    with admin(dbs) as conn:
        conn.execute("create table local_clicks (id int primary key, updated_at timestamp not null)")
        conn.execute("insert into local_clicks select g, timestamp '2026-10-31 23:00' + g * interval '5 minutes' "
                     "from generate_series(1, 60) g")  # fmt: skip  # local 23:05 .. 04:00
        conn.execute("grant select on local_clicks to replicator")
    s = spec("browser_sessions", name="local_clicks", lookback=timedelta(0))
    hour = datetime(2026, 11, 1, 3, tzinfo=UTC)  # 23:00 EDT
    load(s, dbs, hour - HOUR, hour)
    written = [load(s, dbs, hour + h * HOUR, hour + (h + 1) * HOUR).rows_written for h in range(7)]
    assert sum(written) == 60 and written[2] == 0, written  # 05:00-06:00Z is local [01:00, 01:00): empty
    assert same(dbs, s)
