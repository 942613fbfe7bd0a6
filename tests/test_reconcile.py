"""Reconciliation against real Postgres: bronze is proven equal to the source, or repaired until it is.

Every test makes bronze diverge the way production does (a late commit, a hard delete, an update that
kept its cursor, NULL cursors) and checks the repair row for row, the ledger's counts, and that a
second run finds nothing. The DAG test runs through Airflow and reads the email a real SMTP server got.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from checks import bronze_fingerprint, bronze_rows, source_fingerprint
from conftest import AS_OF, STACK, reset_connection_databases
from test_alerts import Inbox

from medallion import alerts, config, reconcile
from medallion.local.demo import browser_infra as demo_source
from medallion.replication import ReplicationError, replicate

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def load(spec, dbs, start=AS_OF - HOUR, end=AS_OF):
    with dbs.src() as src, dbs.wh() as wh:
        return replicate(spec, src, wh, interval_start=start, interval_end=end)


def check(spec, dbs, method="versions") -> reconcile.Reconciliation:
    with dbs.src() as src, dbs.wh() as wh:
        return reconcile.reconcile(spec, src, wh, method=method)


def assert_equal(spec, dbs):
    with dbs.src() as src, dbs.wh() as wh:
        assert bronze_fingerprint(wh, src, spec) == source_fingerprint(src, spec)


def assert_nothing_found(spec, dbs):
    again = check(spec, dbs)
    assert (again.missing, again.stale, again.deleted, again.repaired) == (0, 0, 0, 0)
    assert again.ranges_compared == 1 and again.keys_compared == 0, "equal: one checksum per side, no keys"


def ledger(dbs, batch_id) -> dict:
    with dbs.wh() as wh:
        wh.row_factory = psycopg.rows.dict_row
        return wh.execute("select * from ops.replication_batches where batch_id = %s", (batch_id,)).fetchone()


def source_table(dbs, ddl: str, *statements: str) -> None:
    with dbs.src_admin() as conn:
        conn.execute(ddl)
        for statement in statements:
            conn.execute(statement)
        conn.execute("grant select on all tables in schema public to replicator")


def big_table(dbs, spec, rows: int = 200_000):
    """public.big_events: `rows` rows, cursors one second apart ending just before AS_OF, loaded into bronze."""
    source_table(
        dbs,
        "create table big_events (id bigint primary key, payload text not null, amount numeric(12,2), "
        "updated_at timestamptz not null)",
        f"insert into big_events select g, md5(g::text), g / 100.0, '{AS_OF.isoformat()}'::timestamptz "
        f"- ({rows + 1} - g) * interval '1 second' from generate_series(1, {rows}) g",
        "create index on big_events (updated_at)",
        "analyze big_events",
    )
    s = spec("browser_sessions", name="big_events")
    assert load(s, dbs).rows_written == rows
    return s


def test_hard_deletes_are_tombstoned_and_a_second_run_finds_nothing(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs)
    with dbs.src_admin() as conn:
        deleted = [r[0] for r in conn.execute(
            "delete from browser_sessions where id in (select id from browser_sessions order by id limit 4) "
            "returning id"
        )]  # fmt: skip
    found = check(s, dbs)
    assert (found.deleted, found.tombstoned, found.missing, found.stale, found.appended) == (4, 4, 0, 0, 0)
    with dbs.wh() as wh:
        tombs = wh.execute("select id, status from bronze_browser_infra.browser_sessions where _deleted_at is not null "
                           "order by id").fetchall()  # fmt: skip
    assert [t[0] for t in tombs] == sorted(deleted) and all(t[1] is None for t in tombs)
    assert_equal(s, dbs)
    assert_nothing_found(s, dbs)
    load(s, dbs)  # re-running the loaded interval neither resurrects nor removes a tombstone
    assert_equal(s, dbs)
    assert_nothing_found(s, dbs)


def test_a_late_commit_is_found_and_appended_with_its_own_cursor(dbs, spec):
    """A row (and a newer version of another) committed after the load that read their window."""
    s = spec("browser_sessions")
    load(s, dbs)
    with dbs.src_admin() as conn:
        demo_source.advance(conn, hours=1, deletes=0)
        # committed now, dated inside [AS_OF - 1h, AS_OF): the next load reads from AS_OF - lookback
        late = conn.execute(
            "insert into browser_sessions select (md5(random()::text))::uuid, organization_id, project_id, status, "
            "region, started_at, ended_at, duration_ms, proxy_bytes, keep_alive, user_agent, metadata, created_at, "
            "%s from browser_sessions order by id limit 1 returning id",
            (AS_OF - 2 * HOUR,),
        ).fetchone()[0]
        stale = conn.execute(
            "update browser_sessions set status = 'failed', updated_at = %s "
            "where id = (select id from browser_sessions where updated_at < %s order by id limit 1) returning id",
            (AS_OF - 40 * timedelta(minutes=1), AS_OF - 2 * HOUR),
        ).fetchone()[0]
    load(s, dbs, AS_OF, AS_OF + HOUR)  # the next hour: misses both (the failure 1)
    with dbs.wh() as wh:
        assert (
            wh.execute("select count(*) from bronze_browser_infra.browser_sessions where id = %s", (late,)).fetchone()[
                0
            ]
            == 0
        )
    found = check(s, dbs)
    assert (found.missing, found.stale, found.deleted, found.appended, found.late) == (1, 1, 0, 2, 2)
    assert found.checked_until == AS_OF + HOUR  # the loaded window end
    assert found.late_oldest == AS_OF - 2 * HOUR and found.late_newest == AS_OF - 40 * timedelta(minutes=1)
    with dbs.wh() as wh:
        cursors = dict(wh.execute("select id, _cursor from bronze_browser_infra.browser_sessions where _batch_id = %s",
                                  (found.batch_id,)).fetchall())  # fmt: skip
    assert cursors == {late: AS_OF - 2 * HOUR, stale: AS_OF - 40 * timedelta(minutes=1)}
    assert_equal(s, dbs)
    assert_nothing_found(s, dbs)
    row = ledger(dbs, found.batch_id)
    assert (row["mode"], row["status"], row["check_method"]) == ("reconcile", "success", "versions")
    assert (row["rows_missing"], row["rows_stale"], row["rows_deleted"], row["rows_repaired"]) == (1, 1, 0, 2)
    assert row["rows_read"] == 2 and row["findings"]["late"] == 2


def test_the_deep_check_finds_an_update_that_kept_its_cursor(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs)
    with dbs.src_admin() as conn:
        conn.execute("set session_replication_role = replica")  # no touch_updated_at trigger: a writer that
        conn.execute("update browser_sessions set region = 'fixed by hand' "  # does not move updated_at
                     "where id = (select id from browser_sessions order by id limit 1)")  # fmt: skip
    assert check(s, dbs).repaired == 0  # same key, same cursor: the versions check cannot see it
    found = check(s, dbs, method="rows")
    assert (found.stale, found.unbumped, found.appended, found.missing, found.deleted) == (1, 1, 1, 0, 0)
    assert_equal(s, dbs)
    assert check(s, dbs, method="rows").repaired == 0


def test_null_cursor_rows_are_always_rechecked(dbs, spec):
    source_table(
        dbs,
        "create table gadgets (id int primary key, name text, updated_at timestamptz)",  # nullable, like auth.users
        f"insert into gadgets select g, 'g' || g, case when g % 10 < 7 then null else "
        f"'{AS_OF.isoformat()}'::timestamptz - g * interval '1 minute' end from generate_series(1, 100) g",
    )
    s = spec("browser_sessions", name="gadgets")
    load(s, dbs)
    found = check(s, dbs)  # whatever the load did with NULL cursors, bronze now has every row
    assert found.missing == found.null_cursor and found.stale == 0
    assert_equal(s, dbs)
    with dbs.src_admin() as conn:
        conn.execute("update gadgets set name = 'renamed' where id = 1")  # cursor stays NULL
    found = check(s, dbs)
    assert (found.stale, found.null_cursor, found.appended) == (1, 1, 1)
    assert_equal(s, dbs)
    with dbs.wh() as wh:
        assert wh.execute("select _cursor from bronze_browser_infra.gadgets where _batch_id = %s",
                          (found.batch_id,)).fetchall() == [(None,)]  # fmt: skip
    assert_nothing_found(s, dbs)


def test_a_large_table_where_nothing_differs_is_not_copied(dbs, spec):
    s = big_table(dbs, spec)
    with dbs.src_admin() as conn:  # changed after the loaded window: the next load's work, not a divergence
        conn.execute(
            "update big_events set payload = 'new', updated_at = %s where id %% 4000 = 99",
            (AS_OF + 5 * 60 * timedelta(seconds=1),),
        )
    found = check(s, dbs)
    assert found.rows_checked == 200_000 - 50
    assert (found.ranges_compared, found.keys_compared, found.repaired) == (1, 0, 0)
    row = ledger(dbs, found.batch_id)
    assert (row["rows_read"], row["rows_written"], row["rows_checked"], row["keys_compared"]) == (0, 0, 199_950, 0)
    with dbs.wh() as wh:
        assert bronze_rows(wh, s) == 200_000


def test_a_large_table_without_a_key_and_cursor_index_gets_the_index_that_makes_it_cheaper(dbs, spec, caplog):
    s = big_table(dbs, spec)  # the source has the primary key and an index on updated_at: neither holds both
    with caplog.at_level("WARNING", logger="medallion.reconcile"):
        found = check(s, dbs)
    ddl = 'create index concurrently on "public"."big_events" ("id") include ("updated_at")'
    assert (found.source_index, found.repaired) == (None, 0)
    assert found.advice.endswith(ddl) and found.advice in caplog.text
    with dbs.src_admin() as conn:
        conn.execute(ddl.replace(" concurrently", ""))
    caplog.clear()
    with caplog.at_level("WARNING", logger="medallion.reconcile"):
        found = check(s, dbs)
    assert (found.source_index, found.advice, found.repaired) == ("big_events_id_updated_at_idx", None, 0)
    assert "create index" not in caplog.text
    with dbs.src_admin() as conn:  # small tables are read cheaply: no advice
        conn.execute("drop index big_events_id_updated_at_idx")
    small = check(spec("browser_sessions"), dbs)
    assert small.rows_checked < reconcile.INDEX_ADVICE_ROWS and small.advice is None


def test_a_few_hundred_differences_are_repaired_exactly(dbs, spec):
    s = big_table(dbs, spec)
    late = AS_OF - 2 * HOUR
    with dbs.src_admin() as conn:
        conn.execute(
            "insert into big_events select g, 'late', null, %s from generate_series(200001, 200100) g", (late,)
        )
        conn.execute("update big_events set payload = 'stale', updated_at = updated_at + interval '0.5 second' "
                     "where id % 2000 = 7")  # fmt: skip
        conn.execute("delete from big_events where id % 2000 = 1500")
        conn.execute("update big_events set payload = 'in flight', updated_at = %s "
                     "where id %% 4000 = 99 and id <= 200000", (AS_OF + 5 * 60 * timedelta(seconds=1),))  # fmt: skip
    found = check(s, dbs)
    assert (found.missing, found.stale, found.deleted) == (100, 100, 100)
    assert (found.appended, found.tombstoned, found.late) == (200, 100, 200)
    assert found.keys_compared < 200_000, "only small differing ranges are fetched key by key"
    row = ledger(dbs, found.batch_id)
    assert row["rows_read"] == 200, "exactly the missing and stale rows are copied"
    with dbs.wh() as wh:
        appended = wh.execute("select count(*), count(*) filter (where _deleted_at is not null), "
                              "count(*) filter (where payload in ('late', 'stale')) "
                              "from bronze_browser_infra.big_events "
                              "where _batch_id = %s", (found.batch_id,)).fetchone()  # fmt: skip
        view = wh.execute("select proven_equal_at, last_clean_at, rows_missing, rows_stale, rows_deleted, "
                          "rows_repaired from ops.table_reconciliation where table_name = 'big_events'"
                          ).fetchone()  # fmt: skip
    assert appended == (300, 100, 200)
    assert view[0] is not None and view[1] is None and view[2:] == (100, 100, 100, 300)
    load(s, dbs, AS_OF, AS_OF + HOUR)  # the in-flight rows: the next load's
    assert_equal(s, dbs)
    assert_nothing_found(s, dbs)
    with dbs.wh() as wh:
        proven, clean = wh.execute("select proven_equal_at, last_clean_at from ops.table_reconciliation "
                                   "where table_name = 'big_events'").fetchone()  # fmt: skip
    assert proven == clean and proven > view[0]


def test_dense_differences_are_compared_key_by_key_without_cutting_further(dbs, spec, monkeypatch):
    """Every row stale (e.g. a bulk fix committed late): past MAX_CUTS it stops cutting ranges and
    compares the keys, and still repairs exactly."""
    s = big_table(dbs, spec, rows=20_000)
    with dbs.src_admin() as conn:
        conn.execute("update big_events set payload = 'bulk', updated_at = updated_at + interval '0.5 second'")
    monkeypatch.setattr(reconcile, "MAX_CUTS", 10)
    found = check(s, dbs)
    assert (found.stale, found.appended, found.missing, found.deleted) == (20_000, 20_000, 0, 0)
    assert found.ranges_compared == 1 and found.keys_compared == 40_000
    assert_equal(s, dbs)
    assert_nothing_found(s, dbs)


def test_composite_keys_split_in_key_order_across_many_levels(dbs, spec, monkeypatch):
    """(tenant text, n int), tenants differing only in case: ranges are cut in the "C" collation on both sides."""
    monkeypatch.setattr(reconcile, "LEAF_KEYS", 8)
    monkeypatch.setattr(reconcile, "FANOUT", 4)
    source_table(
        dbs,
        "create table ledger_lines (tenant text, n int, amount int, updated_at timestamptz not null, "
        "primary key (tenant, n))",
        f"insert into ledger_lines select t, n, n * 3, '{AS_OF.isoformat()}'::timestamptz - n * interval '1 second' "
        "from unnest(array['Acme', 'acme', 'Zeta', 'b', 'éclair']) t, generate_series(1, 600) n",
    )
    s = spec("browser_sessions", name="ledger_lines", primary_key=("tenant", "n"))
    load(s, dbs)
    with dbs.src_admin() as conn:
        conn.execute("delete from ledger_lines where tenant = 'acme' and n % 97 = 0")  # 6
        conn.execute("update ledger_lines set amount = -1, updated_at = updated_at + interval '0.1 second' "
                     "where tenant = 'Zeta' and n % 150 = 1")  # 4  # fmt: skip
        conn.execute(
            "insert into ledger_lines values ('Acme', 0, 0, %s), ('zz', 1, 1, %s)", (AS_OF - HOUR, AS_OF - HOUR)
        )
    found = check(s, dbs)
    assert (found.deleted, found.stale, found.missing) == (6, 4, 2)
    assert found.ranges_compared > 20 and found.keys_compared < 2 * 3000
    assert_equal(s, dbs)
    assert_nothing_found(s, dbs)


def test_a_table_never_loaded_is_skipped(dbs, spec):
    found = check(spec("browser_sessions"), dbs)
    assert found.skipped and found.batch_id is None


def test_index_names_are_unique_and_fit_postgres(spec):
    long = "t" * 63
    assert len(reconcile.index_name(spec("browser_sessions", name=long))) <= 63
    assert reconcile.index_name(spec("browser_sessions", name=long)) not in (long, f"{long}__cursor_brin"[:63])


# --- the stored checksum of bronze (ops.reconcile_checksums) ------------------------------------


def probe_table(dbs, spec):
    """public.probe: even ids 2..20000 (odd ids are free anywhere in the key range), loaded into bronze."""
    source_table(
        dbs,
        "create table probe (id bigint primary key, payload text not null, updated_at timestamptz not null)",
        f"insert into probe select 2 * g, md5(g::text), '{AS_OF.isoformat()}'::timestamptz - g * interval '1 second' "
        "from generate_series(1, 10000) g",
        "create index on probe (updated_at)",
    )
    s = spec("browser_sessions", name="probe")
    assert load(s, dbs).rows_written == 10_000
    return s


def test_one_changed_missing_or_deleted_row_anywhere_is_found_through_the_stored_checksum(dbs, spec):
    """Bronze's side of a check comes from the stored checksum (no full pass over bronze), and still a
    single differing row is found at the start, middle and end of the key range, of every kind."""
    s = probe_table(dbs, spec)
    first = check(s, dbs)
    assert first.bronze_side == "full pass" and first.repaired == 0
    late = AS_OF - 2 * HOUR  # a late commit: dated inside the windows already loaded
    insert = "insert into probe values (%s, 'late', %s)"
    bump = "update probe set payload = 'stale', updated_at = updated_at + interval '1 ms' where id = %s"
    delete = "delete from probe where id = %s"
    cases = [("missing", insert, key, (late,)) for key in (1, 10_001, 20_001)]  # below, inside, above the keys
    cases += [("stale", bump, key, ()) for key in (2, 10_000, 20_000)]  # the first, a middle and the last key
    cases += [("deleted", delete, key, ()) for key in (4, 10_002, 19_998)]
    for kind, statement, key, extra in cases:
        with dbs.src_admin() as conn:
            assert conn.execute(statement, (key, *extra)).rowcount == 1
        found = check(s, dbs)
        assert found.bronze_side.startswith("stored checksum"), (kind, key, found.bronze_side)
        counts = {"missing": found.missing, "stale": found.stale, "deleted": found.deleted}
        assert counts == {k: int(k == kind) for k in counts}, (kind, key, counts)
        assert found.repaired == 1, (kind, key)
        # the repair is added to the stored checksum: the next check needs no full pass either
        again = check(s, dbs)
        assert again.bronze_side.startswith("stored checksum") and again.repaired == 0, (kind, key)
    assert_equal(s, dbs)


def new_activity(dbs, at) -> None:
    """A new session and an update of an old one, both dated `at` (the next load's window)."""
    with dbs.src_admin() as conn:
        conn.execute(
            "insert into browser_sessions select (md5(random()::text))::uuid, organization_id, project_id, status, "
            "region, started_at, ended_at, duration_ms, proxy_bytes, keep_alive, user_agent, metadata, created_at, "
            "%s from browser_sessions order by id limit 1",
            (at,),
        )
        conn.execute(
            "update browser_sessions set status = 'completed', updated_at = %s "
            "where id = (select id from browser_sessions where updated_at < %s order by id desc limit 1)",
            (at, AS_OF - HOUR),
        )


def test_loads_between_checks_are_added_to_the_stored_checksum(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs)
    assert check(s, dbs).bronze_side == "full pass"
    new_activity(dbs, AS_OF + 30 * MINUTE)
    assert load(s, dbs, AS_OF, AS_OF + HOUR).rows_written == 2
    found = check(s, dbs)
    assert found.bronze_side == "stored checksum + 1 later batches (2 rows)", found.bronze_side
    assert found.repaired == 0
    # a late commit, then two more loads: still found, bronze's side from the checksum and the loads
    with dbs.src_admin() as conn:
        late = conn.execute(
            "update browser_sessions set status = 'failed', updated_at = %s "
            "where id = (select id from browser_sessions where updated_at < %s order by id limit 1) returning id",
            (AS_OF - HOUR, AS_OF - HOUR),
        ).fetchone()[0]
    new_activity(dbs, AS_OF + 90 * MINUTE)
    load(s, dbs, AS_OF + HOUR, AS_OF + 2 * HOUR)
    new_activity(dbs, AS_OF + 150 * MINUTE)
    load(s, dbs, AS_OF + 2 * HOUR, AS_OF + 3 * HOUR)
    found = check(s, dbs)
    assert found.bronze_side == "stored checksum + 2 later batches (4 rows)", found.bronze_side
    assert (found.stale, found.missing, found.deleted, found.appended) == (1, 0, 0, 1)
    with dbs.wh() as wh:
        assert wh.execute("select id from bronze_browser_infra.browser_sessions where _batch_id = %s",
                          (found.batch_id,)).fetchall() == [(late,)]  # fmt: skip
    assert_equal(s, dbs)
    assert_nothing_found(s, dbs)


def test_a_stored_checksum_that_cannot_be_accounted_for_is_not_used(dbs, spec):
    """A later batch whose rows do not match the ledger's count, a full refresh, other columns: a full pass."""
    s = spec("browser_sessions")
    load(s, dbs)
    check(s, dbs)
    new_activity(dbs, AS_OF + 30 * MINUTE)
    loaded = load(s, dbs, AS_OF, AS_OF + HOUR)
    with dbs.wh() as wh:
        wh.execute("update ops.replication_batches set rows_written = rows_written + 1 where batch_id = %s",
                   (loaded.batch_id,))  # fmt: skip
    found = check(s, dbs)
    assert found.bronze_side == "full pass" and found.repaired == 0
    assert check(s, dbs).bronze_side.startswith("stored checksum")
    with dbs.wh() as wh:  # another signature (e.g. a column added or retyped): recomputed
        wh.execute("update ops.reconcile_checksums set signature = 'older' where table_name = 'browser_sessions'")
    assert check(s, dbs).bronze_side == "full pass"
    with dbs.src() as src, dbs.wh() as wh:
        replicate(s, src, wh, interval_start=AS_OF, interval_end=AS_OF + HOUR, full_refresh=True)
    found = check(s, dbs)
    assert found.bronze_side == "full pass" and found.repaired == 0
    assert_equal(s, dbs)
    with dbs.wh() as wh:  # bronze emptied by hand: new storage, read in full, every row repaired
        wh.execute("truncate bronze_browser_infra.browser_sessions")
    found = check(s, dbs)
    assert found.bronze_side == "full pass" and found.missing == found.appended == found.rows_checked > 0
    assert_equal(s, dbs)
    assert_nothing_found(s, dbs)


def test_many_rows_written_since_are_read_in_full(dbs, spec, monkeypatch):
    """Looking up more written rows than DELTA_MAX_SHARE of bronze's keys costs more than one pass."""
    s = spec("browser_sessions")
    load(s, dbs)
    check(s, dbs)
    new_activity(dbs, AS_OF + 30 * MINUTE)
    load(s, dbs, AS_OF, AS_OF + HOUR)
    monkeypatch.setattr(reconcile, "DELTA_MAX_SHARE", 0.0001)
    found = check(s, dbs)
    assert found.bronze_side == "full pass" and found.repaired == 0


def test_the_deep_check_reads_bronze_itself(dbs, spec):
    """The stored checksum trusts that only ledgered batches write bronze; the deep check (daily) does not:
    a version removed from bronze by hand is found and repaired by it."""
    s = probe_table(dbs, spec)
    check(s, dbs)
    with dbs.wh() as wh:
        wh.execute("delete from bronze_browser_infra.probe where id = 10000")
    deep = check(s, dbs, method="rows")
    assert deep.bronze_side == "full pass"
    assert (deep.missing, deep.stale, deep.deleted, deep.appended) == (1, 0, 0, 1)
    assert_equal(s, dbs)


# --- through Airflow ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inbox():
    from aiosmtpd.controller import Controller

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=STACK.smtp_port)  # AIRFLOW_CONN_SMTP_DEFAULT's port
    controller.start()
    yield handler
    controller.stop()


@pytest.mark.slow
def test_the_dag_repairs_a_late_commit_and_emails_on_call(airflow_db, inbox):
    """A row committed with an updated_at older than the window a run already loaded reaches bronze by the
    next reconciliation, and on-call gets one email naming the table and the likely cause."""
    stack = airflow_db
    reset_connection_databases(stack)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.ROOT / "dags"))
    assert not bag.import_errors
    bronze, dag = bag.get_dag("bronze_browser_infra"), bag.get_dag("bronze_browser_infra_reconcile")
    assert bronze.test(logical_date=AS_OF).state == "success"
    src_uri = stack.source.uri("browser_infra")
    with psycopg.connect(src_uri) as conn:
        demo_source.advance(conn, hours=1, deletes=2)
        late = conn.execute(
            "update organizations set name = name || ' (renamed late)', updated_at = %s "
            "where id = (select id from organizations order by id limit 1) returning id", (AS_OF - 3 * HOUR,)
        ).fetchone()[0]  # fmt: skip
    assert bronze.test(logical_date=AS_OF + HOUR).state == "success"
    inbox.take()
    run = dag.test(logical_date=AS_OF + 2 * HOUR)
    assert run.state == "success"
    with psycopg.connect(stack.source.uri("browser_infra", user="replicator")) as src, \
            psycopg.connect(stack.warehouse.uri("warehouse")) as wh:  # fmt: skip
        for spec in config.tables("browser_infra").values():
            assert bronze_fingerprint(wh, src, spec) == source_fingerprint(src, spec), spec.name
        name = wh.execute("select name from bronze_browser_infra.organizations where id = %s order by _cursor desc "
                          "nulls last, _loaded_at desc limit 1", (late,)).fetchone()[0]  # fmt: skip
        view = dict(wh.execute("select table_name, rows_missing + rows_stale + rows_deleted from "
                               "ops.table_reconciliation where proven_equal_at is not null").fetchall())  # fmt: skip
    assert name.endswith("(renamed late)")
    assert view["organizations"] == 1 and view["browser_sessions"] == 2  # the hard deletes
    assert set(view) == {t.name for t in config.tables("browser_infra").values() if t.mode == "incremental"}
    mails = inbox.take()
    assert [m.subject for m in mails] == [
        "[medallion] REPAIRED bronze_browser_infra.organizations: 1 row version no load had copied"
    ]
    for body in mails[0].bodies():
        assert "late commits" in body and "lookback_minutes" in body and "stale 1" in body
    assert dag.test(logical_date=AS_OF + 3 * HOUR).state == "success"  # nothing left: no email
    assert inbox.take() == []


def test_a_failed_reconciliation_changes_nothing_and_is_in_the_ledger(dbs, spec):
    s = spec("browser_sessions")
    load(s, dbs)
    with dbs.src_admin() as conn:
        conn.execute("delete from browser_sessions where id = (select id from browser_sessions order by id limit 1)")
        conn.execute("revoke select on browser_sessions from replicator")
    with dbs.wh() as wh:
        before = bronze_rows(wh, s)
    with pytest.raises(ReplicationError, match=r"^bronze_browser_infra\.browser_sessions: reconciliation failed: "
                                                r"permission denied for table browser_sessions$"):  # fmt: skip
        check(s, dbs)
    with dbs.wh() as wh:
        assert bronze_rows(wh, s) == before
        assert wh.execute("select status, error from ops.replication_batches where mode = 'reconcile'").fetchall() == [
            ("failed", "permission denied for table browser_sessions")
        ]


def test_the_email_names_the_cause_and_deletes_alone_stay_quiet():
    base = {"method": "versions", "rows_checked": 10, "checked_until": AS_OF.isoformat(), "missing": 0, "stale": 0,
            "deleted": 0, "appended": 0, "tombstoned": 0, "late": 0, "null_cursor": 0, "unbumped": 0,
            "late_oldest": None, "late_newest": None, "lookback_minutes": 15.0}  # fmt: skip
    assert alerts.reconciliation_email([base | {"table": "users", "deleted": 3, "tombstoned": 3}]) is None
    email = alerts.reconciliation_email([
        base | {"table": "users", "missing": 2, "appended": 2, "late": 2, "lookback_minutes": 0.0,
                "late_oldest": (AS_OF - HOUR).isoformat(), "late_newest": AS_OF.isoformat()},
        base | {"table": "projects", "missing": 1, "appended": 1, "null_cursor": 1},
    ], run_id="manual__1", product="browser_infra")  # fmt: skip
    assert email.subject == (
        "[medallion] REPAIRED 2 tables (bronze_browser_infra.projects, bronze_browser_infra.users): "
        "3 row versions no load had copied"
    )
    for body in (email.text, email.html):
        assert "lookback too short (lookback_minutes is 0)" in body
        assert "NULL cursors: 1 rows whose updated_at is NULL" in body
        assert "2026-10-31 23:00 UTC" in body and "manual__1" in body
