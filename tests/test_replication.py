"""The replication engine against real Postgres: windows, idempotency, full swap, drift, quoting.

Hard deletes: tests/test_reconcile.py.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from checks import bronze_fingerprint, bronze_rows, source_fingerprint
from conftest import AS_OF

from medallion.config import ConfigError
from medallion.connections import ConnectionFailed, connect
from medallion.local.demo import browser_infra as demo_source
from medallion.replication import ReplicationError, SchemaDriftError, replicate, widens

HOUR = timedelta(hours=1)


def load(spec, dbs, start=None, end=AS_OF, **kw):
    with dbs.src() as src, dbs.wh() as wh:
        return replicate(spec, src, wh, interval_start=start, interval_end=end, **kw)


def ledger(dbs, table):
    with dbs.wh() as wh:
        return wh.execute(
            "select mode, status, rows_read, rows_written, window_start, window_end, error "
            "from ops.replication_batches where table_name = %s order by finished_at",
            (table,),
        ).fetchall()


def test_first_load_copies_all_history_and_matches_source(dbs, spec):
    s = spec("browser_sessions")
    result = load(s, dbs, AS_OF - HOUR, AS_OF)
    assert result.path == "direct" and result.window_start is None
    with dbs.src() as src, dbs.wh() as wh:
        assert result.rows_read == source_fingerprint(src, s)[0] > 1000
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)
    assert ledger(dbs, "browser_sessions")[0][:4] == ("incremental", "success", result.rows_read, result.rows_read)


def test_incremental_reads_only_the_interval_plus_lookback(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.src_admin() as conn:
        counts = demo_source.advance(conn, hours=1, deletes=0)
        changed = conn.execute(
            "select count(*) from browser_sessions where updated_at >= %s and updated_at < %s",
            (AS_OF - s.lookback, AS_OF + HOUR),
        ).fetchone()[0]
    assert counts["browser_sessions"] > 0
    result = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert result.window_start == AS_OF - s.lookback and result.window_end == AS_OF + HOUR
    assert result.rows_read == changed  # the window, not the table
    assert result.path == "split"  # the lookback overlaps rows bronze already has
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)


def test_a_window_across_bronze_bound_stages_only_the_lookback(dbs, spec):
    """The next interval's window starts a lookback before the newest window loaded: that part may
    meet versions bronze holds (staged, only unseen versions appended), the rest cannot (COPYed
    straight in). A late commit dated inside the lookback is appended; a re-read version is not."""
    s = spec("browser_sessions")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.src_admin() as conn:
        conn.execute("set session_replication_role = replica")  # no touch_updated_at: the writer dates rows
        ids = [r[0] for r in conn.execute("select id from browser_sessions order by id limit 3")]
        late, reread, new = ids
        stamp = "update browser_sessions set user_agent = %s, updated_at = %s where id = %s"
        # committed after the first load, dated before its end
        conn.execute(stamp, ("late", AS_OF - s.lookback / 2, late))
        conn.execute(stamp, ("new", AS_OF + HOUR / 2, new))
        conn.execute("update browser_sessions set updated_at = %s where id = %s", (AS_OF - s.lookback / 3, reread))
        in_window = conn.execute(
            "select count(*) from browser_sessions where updated_at >= %s and updated_at < %s",
            (AS_OF - s.lookback, AS_OF + HOUR),
        ).fetchone()[0]  # the three, and any row the first load read inside the lookback
    with dbs.wh() as wh:  # bronze already holds `reread`'s version: as if an earlier window had read it
        wh.execute(
            "insert into bronze_browser_infra.browser_sessions select (b).* from ("
            "select b from bronze_browser_infra.browser_sessions b where id = %s) x",
            (reread,),
        )
        wh.execute("update bronze_browser_infra.browser_sessions set _cursor = %(c)s, updated_at = %(c)s "
                   "where ctid = (select max(ctid) from bronze_browser_infra.browser_sessions where id = %(id)s)",
                   {"c": AS_OF - s.lookback / 3, "id": reread})  # fmt: skip
        wh.commit()
    result = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert result.path == "split" and result.timings["merge"] > 0
    assert (result.rows_read, result.rows_written) == (in_window, 2)  # `reread` is read, not written again
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)
        versions = dict(wh.execute(
            "select id, count(*) from bronze_browser_infra.browser_sessions where id = any(%s) group by id", (ids,)
        ).fetchall())  # fmt: skip
        assert versions == {late: 2, reread: 2, new: 2}
    assert ledger(dbs, "browser_sessions")[-1][:4] == ("incremental", "success", in_window, 2)
    assert load(s, dbs, AS_OF, AS_OF + HOUR).rows_written == 0  # a retry: all of it is below the bound now


def test_rerunning_an_interval_writes_nothing_twice(dbs, spec):
    s = spec("session_events")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.src_admin() as conn:
        demo_source.advance(conn, hours=6, deletes=0)
    first = load(s, dbs, AS_OF, AS_OF + 6 * HOUR)
    with dbs.wh() as wh:
        rows_after_first = bronze_rows(wh, s)
    again = load(s, dbs, AS_OF, AS_OF + 6 * HOUR)  # a retry / clear / backfill of the same interval
    assert first.rows_written > 0 and again.rows_read == first.rows_read and again.rows_written == 0
    with dbs.wh() as wh:
        assert bronze_rows(wh, s) == rows_after_first
        dupes = wh.execute(
            "select count(*) from (select id, _cursor from bronze_browser_infra.session_events "
            "group by 1, 2 having count(*) > 1) d"
        ).fetchone()[0]
    assert dupes == 0


def test_backfill_out_of_order_converges_to_the_source(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.src_admin() as conn:
        demo_source.advance(conn, hours=3, deletes=0)
    for h in (2, 0, 1, 2):  # later interval first, then the gap, then a repeat
        load(s, dbs, AS_OF + h * HOUR, AS_OF + (h + 1) * HOUR)
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)


def test_manual_run_without_interval_continues_from_the_last_window(dbs, spec):
    s = spec("session_events")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.src_admin() as conn:
        demo_source.advance(conn, hours=1, deletes=0)
    result = load(s, dbs, None, None, now=AS_OF + 2 * HOUR)
    assert result.window_start == AS_OF - s.lookback and result.window_end == AS_OF + 2 * HOUR
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)


def test_incremental_query_uses_the_cursor_index(dbs, spec):
    """Cost grows with changed rows: the window predicate is answered by the updated_at index."""
    with dbs.src() as src:
        src.execute("set enable_seqscan = off")  # the tiny test table would otherwise be scanned
        plan = "\n".join(
            r[0]
            for r in src.execute(
                "explain select * from public.browser_sessions where updated_at >= %s and updated_at < %s",
                (AS_OF - HOUR, AS_OF),
            )
        )
    assert "browser_sessions_updated_at_idx" in plan


def test_full_mode_swaps_atomically_readers_never_see_empty_or_partial(dbs, spec):
    s = spec("browser_sessions", mode="full", cursor=None, reconcile_deletes=False)
    first = load(s, dbs, None, None)
    total = first.rows_read
    assert first.rows_written == total > 0  # the insert's count, not the delete's
    seen: set[int] = set()
    stop = threading.Event()

    def read():
        with dbs.wh() as wh:
            wh.autocommit = True
            while not stop.is_set():
                seen.add(wh.execute("select count(*) from bronze_browser_infra.browser_sessions").fetchone()[0])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with dbs.src_admin() as conn:
            conn.execute("delete from browser_sessions where id in (select id from browser_sessions limit 10)")
        for _ in range(5):
            load(s, dbs, None, None)
    finally:
        stop.set()
        reader.join()
    assert seen <= {total, total - 10}, f"a reader saw a partial table: {sorted(seen)}"
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)
        assert bronze_rows(wh, s) == total - 10  # a snapshot: the deleted rows are gone


def test_new_source_column_appears_in_bronze(dbs, spec):
    s = spec("organizations")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.src_admin() as conn:
        conn.execute("alter table organizations add column tier text")
        conn.execute(
            "update organizations set tier = 'gold', updated_at = %s where slug = 'org-1'", (AS_OF + 0.5 * HOUR,)
        )
    result = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert result.schema_changes == ["added column tier text"] and result.rows_written == 1
    with dbs.wh() as wh:
        assert wh.execute(
            "select tier from bronze_browser_infra.organizations where slug = 'org-1' order by _cursor desc limit 1"
        ).fetchone() == ("gold",)


def test_widening_type_change_follows_incompatible_one_fails_naming_everything(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.src_admin() as conn:
        conn.execute("alter table browser_sessions alter column duration_ms type bigint")
    assert load(s, dbs, AS_OF, AS_OF + HOUR).schema_changes == ["widened column duration_ms from integer to bigint"]
    with dbs.src_admin() as conn:
        conn.execute("alter table browser_sessions alter column keep_alive type text")
    with pytest.raises(SchemaDriftError) as err:
        load(s, dbs, AS_OF, AS_OF + HOUR)
    msg = str(err.value)
    assert "bronze_browser_infra.browser_sessions.keep_alive" in msg and "from boolean to text" in msg
    assert "\n" not in msg


def test_widens():
    assert widens("integer", "bigint") and widens("character varying(10)", "text")
    assert widens("numeric(10,2)", "numeric(12,2)") and not widens("bigint", "integer")
    assert not widens("boolean", "text") and not widens("numeric(10,2)", "numeric(10,3)")


def test_awkward_identifiers_are_quoted(dbs, spec):
    """Tables named `select` and `Order Items` with a column `from` replicate; names are never spliced raw."""
    with dbs.src_admin() as conn:
        conn.execute('create table "select" ("from" int primary key, "Updated At" timestamptz not null)')
        conn.execute('create table "Order Items" (id int primary key, "group" text, updated_at timestamptz not null)')
        conn.execute('insert into "select" values (1, %s), (2, %s)', (AS_OF - HOUR, AS_OF - 2 * HOUR))
        conn.execute('insert into "Order Items" values (1, %s, %s)', ("a'; drop table x; --", AS_OF - HOUR))
        conn.execute("grant select on all tables in schema public to replicator")
    for name, pk, cursor, n in (("select", ("from",), "Updated At", 2), ("Order Items", ("id",), "updated_at", 1)):
        s = spec("browser_sessions", name=name, primary_key=pk, cursor=cursor)
        assert load(s, dbs).rows_written == n
        with dbs.src() as src, dbs.wh() as wh:
            assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)


def test_config_cannot_inject_sql(dbs, spec):
    s = spec("browser_sessions", name='x"; drop table public.plans; --')
    with pytest.raises(ConfigError, match="not found in source"):
        load(s, dbs)
    with dbs.src_admin() as conn:
        assert conn.execute("select count(*) from plans").fetchone()[0] == 4


def test_missing_cursor_column_is_a_one_line_error(dbs, spec):
    s = spec("browser_sessions", cursor="modified_at")
    with pytest.raises(ConfigError) as err:
        load(s, dbs)
    msg = str(err.value)
    assert "cursor column 'modified_at' not found in source table public.browser_sessions" in msg
    assert "_browser_infra__sources.yml:" in msg and "\n" not in msg


def test_unknown_source_table_is_a_one_line_error(dbs, spec):
    with pytest.raises(ConfigError, match=r"table public\.nope not found in source connection 'browser_infra_source'"):
        load(spec("browser_sessions", name="nope"), dbs)


def test_unreachable_source_names_the_connection(stack):
    closed = stack.source.port + 1 if stack.source.port < 65000 else 1
    with pytest.raises(ConnectionFailed) as err:
        connect(
            f"host=127.0.0.1 port={closed} dbname=source user=replicator connect_timeout=2",
            "connection 'browser_infra_source'",
        )
    assert str(err.value).startswith(f"cannot connect to connection 'browser_infra_source' (127.0.0.1:{closed}/source)")


def test_failed_batch_leaves_bronze_untouched_and_is_in_the_ledger(dbs, spec):
    """A COPY that dies half-way (row 500 divides by zero) commits nothing, and the ledger says so."""
    with dbs.src_admin() as conn:
        conn.execute(
            "create view flaky as select g as id, '2026-10-31'::timestamptz + interval '1 minute' * g as updated_at, "
            "1 / (g - 500) as x from generate_series(1, 1000) g"
        )
        conn.execute("grant select on flaky to replicator")
    s = spec("browser_sessions", name="flaky")
    with pytest.raises(ReplicationError, match="bronze_browser_infra.flaky: load failed: division by zero"):
        load(s, dbs)
    with dbs.wh() as wh:
        assert bronze_rows(wh, s) == 0
    assert [r[:2] for r in ledger(dbs, "flaky")] == [("incremental", "failed")]
    assert "division by zero" in ledger(dbs, "flaky")[0][6]


def test_rls_hides_rows_from_app_roles_but_not_from_replication(dbs):
    with psycopg.connect(dbs.source_admin_uri) as conn:
        conn.execute("set role authenticated")
        assert conn.execute("select count(*) from browser_sessions").fetchone()[0] == 0
    with dbs.src() as src:
        assert src.execute("select count(*) from browser_sessions").fetchone()[0] > 0


@pytest.mark.parametrize("reader", ["psql", "psycopg"])
def test_both_copy_readers_load_the_same_rows_and_rerun_writes_nothing(dbs, spec, monkeypatch, reader):
    """The source is read by a psql client when one is on the machine, else on the source connection."""
    monkeypatch.setenv("MEDALLION_PSQL", "" if reader == "psql" else "off")
    s = spec("browser_sessions")
    first = load(s, dbs, AS_OF - HOUR, AS_OF)
    again = load(s, dbs, AS_OF - HOUR, AS_OF)
    assert first.rows_written > 0 and again.rows_written == 0
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)
        assert bronze_rows(wh, s) == first.rows_written


KILLED_LOAD = """
import sys
from datetime import datetime, timedelta
from dataclasses import replace
import psycopg
from medallion import config, replication
spec = replace(config.get_table("browser_infra", "browser_sessions"), name="slow", source_table="slow")
end = datetime.fromisoformat(sys.argv[3])
with psycopg.connect(sys.argv[1]) as src, psycopg.connect(sys.argv[2]) as wh:
    replication.replicate(spec, src, wh, interval_start=end - timedelta(hours=1), interval_end=end)
"""


def test_kill_9_mid_copy_commits_nothing_leaves_no_reader_and_the_retry_is_exact(dbs, spec, tmp_path):
    """A worker killed (SIGKILL) while rows stream: bronze and the ledger hold nothing of it, the
    source reader (psql) goes away with it, and the retry loads the table exactly."""
    import os
    import signal
    import subprocess
    import sys
    import time

    with dbs.src_admin() as conn:
        conn.execute("create function slow_id(g int) returns int language sql as $$ select g from pg_sleep(0.02) $$")
        conn.execute(
            "create view slow as select g as id, '2026-10-31'::timestamptz + interval '100 ms' * g as updated_at, "
            "case when g % 500 = 0 then slow_id(g) else g end as x from generate_series(1, 200000) g"
        )
        conn.execute("grant select on slow to replicator")
    s = spec("browser_sessions", name="slow")
    script = tmp_path / "load.py"
    script.write_text(KILLED_LOAD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), dbs.source_uri, dbs.warehouse_uri, AS_OF.isoformat()], env=env
    )
    copying = "select count(*) from pg_stat_activity where state = 'active' and query ilike 'copy %from stdin%'"
    with dbs.wh() as wh:
        wh.autocommit = True
        deadline = time.monotonic() + 30
        while not wh.execute(copying).fetchone()[0]:
            assert proc.poll() is None and time.monotonic() < deadline, "the load never reached its COPY"
            time.sleep(0.05)
        time.sleep(0.5)  # rows are streaming
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20
        while wh.execute(copying).fetchone()[0]:  # the warehouse sees the connection die
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert bronze_rows(wh, s) == 0
        assert wh.execute("select count(*) from ops.replication_batches where table_name = 'slow'").fetchone()[0] == 0
    with dbs.src_admin() as conn:  # no reader of the source outlives the worker
        conn.autocommit = True
        deadline = time.monotonic() + 20
        reading = "select count(*) from pg_stat_activity where query ilike 'copy (%slow%' and pid <> pg_backend_pid()"
        while conn.execute(reading).fetchone()[0]:
            assert time.monotonic() < deadline, "the source still serves the killed worker's COPY"
            time.sleep(0.1)
    result = load(s, dbs, AS_OF - HOUR, AS_OF)
    assert result.rows_written == 200000
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)
    assert [r[:2] for r in ledger(dbs, "slow")] == [("incremental", "success")]


def test_first_load_leaves_statistics_so_the_next_merge_reads_only_the_window(dbs, spec):
    """Without statistics the planner reads all of bronze for the next run's anti-join (0.9s at 1M
    rows, bench/copy_bench.py) instead of the window's BRIN ranges, which it picks by _cursor's
    correlation: the first load analyzes bronze's _cursor in its transaction."""
    s = spec("browser_sessions")
    first = load(s, dbs, AS_OF - HOUR, AS_OF)
    assert first.path == "direct"
    with dbs.wh() as wh:
        tuples = wh.execute(
            "select reltuples from pg_class where oid = 'bronze_browser_infra.browser_sessions'::regclass"
        )
        assert tuples.fetchone()[0] == first.rows_written
        correlation = wh.execute(
            "select correlation from pg_stats "
            "where schemaname = 'bronze_browser_infra' and tablename = 'browser_sessions' and attname = '_cursor'"
        ).fetchone()
        assert correlation is not None and correlation[0] is not None
        assert wh.execute("select count(*) from ops.replication_batches").fetchone()[0] == 1


def _visible_pages(wh, s) -> tuple[int, int]:
    """(pages, all-visible pages) of the bronze table, as the first load's analyze counted them."""
    return wh.execute(
        "select relpages, relallvisible from pg_class where oid = %s::regclass", (f"{s.bronze_schema}.{s.name}",)
    ).fetchone()


@pytest.mark.parametrize("reader", ["psql", "psycopg"])
def test_first_load_writes_frozen_all_visible_pages(dbs, spec, monkeypatch, reader):
    """A first load truncates the empty bronze table in its transaction and COPYs with FREEZE: its
    pages are written once, frozen and all-visible, so neither the first reader (hint bits) nor
    vacuum (freezing) rewrites them, and the copy itself is cheaper (bench/copy_bench.py)."""
    monkeypatch.setenv("MEDALLION_PSQL", "" if reader == "psql" else "off")
    s = spec("browser_sessions")
    first = load(s, dbs, AS_OF - HOUR, AS_OF)
    assert first.path == "direct" and first.rows_written > 1000
    with dbs.src() as src, dbs.wh() as wh:
        pages, visible = _visible_pages(wh, s)
        # COPY marks a page all-visible when it fills it from empty: all but where its batches meet
        assert pages > 0 and visible >= 0.9 * pages
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)
    with dbs.src_admin() as conn:
        demo_source.advance(conn, hours=1, deletes=0)
    nxt = load(s, dbs, AS_OF, AS_OF + HOUR)  # not a first load: appended as usual, nothing truncated
    assert nxt.rows_written > 0
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)


def test_first_load_behind_a_reader_of_the_empty_table_does_not_wait_for_it(dbs, spec):
    """Freezing needs bronze's exclusive lock; when a reader (a dbt run over the still-empty table)
    holds it, the first load does not wait for that reader: it loads without FREEZE."""
    from medallion.replication import Cursor, source_columns, sync_bronze_schema

    s = spec("browser_sessions")
    with dbs.src() as src, dbs.wh() as wh:
        columns = source_columns(src, s)
        sync_bronze_schema(wh, s, columns, Cursor.read(src, s, columns).bronze_type)
        wh.commit()
    with dbs.wh() as reader:
        assert reader.execute(f"select count(*) from {s.bronze_schema}.{s.name}").fetchone()[0] == 0  # lock held
        first = load(s, dbs, AS_OF - HOUR, AS_OF)
        reader.rollback()
    assert first.path == "direct" and first.rows_written > 1000
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, s) == source_fingerprint(src, s)
        assert _visible_pages(wh, s)[1] == 0


def test_every_row_carries_its_batch_id_and_bronze_keeps_its_default(dbs, spec):
    """A first load gives `_batch_id` the batch's id as a constant for its COPY (no function call per
    row); the next load, split at bronze's bound, gives it in the COPY stream (direct rows) and in the
    insert's select (staged rows). Every row carries its own batch's id, as a uuid, and the column's
    default is the per-transaction setting again once the load commits."""
    s = spec("browser_sessions")
    first = load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.src_admin() as conn:
        demo_source.advance(conn, hours=1, deletes=0)
        conn.execute("update public.browser_sessions set updated_at = %s where id = (select id from "
                     "public.browser_sessions order by id limit 1)", (AS_OF - timedelta(minutes=1),))  # fmt: skip
    nxt = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert nxt.path == "split" and nxt.rows_written > 1
    with dbs.wh() as wh:
        by_batch = dict(
            wh.execute(f"select _batch_id::text, count(*) from {s.bronze_schema}.{s.name} group by 1").fetchall()
        )
        assert by_batch == {first.batch_id: first.rows_written, nxt.batch_id: nxt.rows_written}
        default = wh.execute(
            "select pg_get_expr(adbin, adrelid) from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid "
            "and a.attnum = d.adnum where d.adrelid = %s::regclass and a.attname = '_batch_id'",
            (f"{s.bronze_schema}.{s.name}",),
        ).fetchone()[0]
        assert default == "(NULLIF(current_setting('medallion.batch_id'::text, true), ''::text))::uuid"


def test_a_bronze_table_with_text_batch_ids_is_converted_to_uuid_once(dbs, spec):
    """Bronze tables made before `_batch_id` was a uuid held it as text (the id in hex). The next
    load converts the column, keeping every row's id and a view that reads it; a value that is not
    a batch id becomes NULL (and is counted); the load then goes on as usual."""
    s = spec("browser_sessions")
    table = f"{s.bronze_schema}.{s.name}"
    first = load(s, dbs, AS_OF - HOUR, AS_OF)
    with dbs.wh() as wh:  # bronze as the older release made it
        wh.execute(f"alter table {table} alter column _batch_id drop default")
        wh.execute(f"alter table {table} alter column _batch_id type text using replace(_batch_id::text, '-', '')")
        default = "current_setting('medallion.batch_id', true)"
        wh.execute(f"alter table {table} alter column _batch_id set default {default}")
        wh.execute(f"update {table} set _batch_id = '' where id = (select id from {table} order by id limit 1)")
        wh.execute(f"create view public.batches_seen as select distinct _batch_id from {table}")
        wh.commit()
    with dbs.src_admin() as conn:
        demo_source.advance(conn, hours=1, deletes=0)
    nxt = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert "converted _batch_id from text to uuid (1 values that were not batch ids set to NULL)" in nxt.schema_changes
    with dbs.wh() as wh:
        by_batch = dict(wh.execute(f"select _batch_id::text, count(*) from {table} group by 1").fetchall())
        assert by_batch == {first.batch_id: first.rows_written - 1, None: 1, nxt.batch_id: nxt.rows_written}
        assert wh.execute("select count(*) from public.batches_seen").fetchone()[0] == 3  # the view is kept
        assert (
            wh.execute(
                "select format_type(atttypid, atttypmod) from pg_attribute "
                "where attrelid = 'public.batches_seen'::regclass and attname = '_batch_id'"
            ).fetchone()[0]
            == "uuid"
        )
        wh.execute("drop view public.batches_seen")
        wh.commit()
    again = load(s, dbs, AS_OF, AS_OF + HOUR)
    assert again.schema_changes == [] and again.rows_written == 0
