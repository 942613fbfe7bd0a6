-- Reconciliation (plugins/medallion/reconcile.py): what each run found, on its ledger row, and per
-- table when bronze was last proven equal to its source. Idempotent: applied by
-- medallion.warehouse.migrate, after 002_freshness.sql.

-- A reconciliation's findings, on its ledger row (mode 'reconcile'; null on loads). The ledger insert
-- is shared with loads (replication._record), so these columns default to transaction-local settings
-- the reconciliation sets (set_config('medallion.<column>', ..., true)) just before its ledger row is
-- written: the findings commit together with the repair, or not at all.
alter table ops.replication_batches
add column if not exists rows_checked bigint
default nullif(current_setting('medallion.rows_checked', true), '')::bigint;      -- due source rows compared
alter table ops.replication_batches
add column if not exists rows_missing bigint
default nullif(current_setting('medallion.rows_missing', true), '')::bigint;      -- in the source, not live in bronze
alter table ops.replication_batches
add column if not exists rows_stale bigint
default nullif(current_setting('medallion.rows_stale', true), '')::bigint;        -- bronze's latest version differs
alter table ops.replication_batches
add column if not exists rows_deleted bigint
default nullif(current_setting('medallion.rows_deleted', true), '')::bigint;      -- live in bronze, gone from the source
alter table ops.replication_batches
add column if not exists rows_repaired bigint
default nullif(current_setting('medallion.rows_repaired', true), '')::bigint;     -- versions appended + tombstones
alter table ops.replication_batches
add column if not exists keys_compared bigint
default nullif(current_setting('medallion.keys_compared', true), '')::bigint;     -- keys fetched one by one
alter table ops.replication_batches
add column if not exists ranges_compared bigint
default nullif(current_setting('medallion.ranges_compared', true), '')::bigint;   -- key-range checksums compared
alter table ops.replication_batches
add column if not exists check_method text
default nullif(current_setting('medallion.check_method', true), '');              -- versions | rows
alter table ops.replication_batches
add column if not exists findings jsonb
default nullif(current_setting('medallion.findings', true), '')::jsonb;           -- causes: late, null_cursor, unbumped...

-- Per table: when bronze was last proven equal to its source, and what the last reconciliation found.
-- Proven: a successful reconciliation that repaired everything it found (or found nothing), in the
-- same transaction: after it, every due key's latest live bronze version was the source's row.
create or replace view ops.table_reconciliation as
select
    t.source,
    t.table_name,
    proven.finished_at as proven_equal_at,
    now() - proven.finished_at as proven_age,
    proven.window_end as proven_until,          -- source rows with a cursor before this were compared
    clean.finished_at as last_clean_at,         -- the newest run that found nothing to repair
    last.finished_at as last_run_at,
    last.status as last_status,
    last.check_method,
    last.rows_checked,
    last.rows_missing,
    last.rows_stale,
    last.rows_deleted,
    last.rows_repaired,
    last.keys_compared,
    last.rows_read as rows_fetched,             -- source rows copied to repair
    last.seconds,
    last.findings,
    last.error as last_error,
    last.batch_id as last_batch_id
from (select distinct source, table_name from ops.replication_batches) as t
left join lateral (
    select b.*
    from ops.replication_batches as b
    where b.source = t.source and b.table_name = t.table_name and b.mode = 'reconcile'
    order by b.finished_at desc
    limit 1
) as last on true
left join lateral (
    select
        b.finished_at,
        b.window_end
    from ops.replication_batches as b
    where
        b.source = t.source and b.table_name = t.table_name and b.mode = 'reconcile'
        and b.status = 'success'
        and b.rows_repaired = b.rows_missing + b.rows_stale + b.rows_deleted
    order by b.finished_at desc
    limit 1
) as proven on true
left join lateral (
    select b.finished_at
    from ops.replication_batches as b
    where
        b.source = t.source and b.table_name = t.table_name and b.mode = 'reconcile'
        and b.status = 'success'
        and b.rows_missing + b.rows_stale + b.rows_deleted = 0
    order by b.finished_at desc
    limit 1
) as clean on true;
