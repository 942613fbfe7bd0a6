-- Operational tables of the warehouse (schema ops). Idempotent: applied by medallion.warehouse.migrate.

create schema if not exists ops;

-- The ledger: one row per replication batch. A successful batch's row is written in the same
-- transaction as its data, so a row with status 'success' means the data is there; a failed
-- batch leaves nothing in bronze and a row with status 'failed' and the error.
create table if not exists ops.replication_batches (
    batch_id        text primary key,
    source          text not null,
    table_name      text not null,
    mode            text not null check (mode in ('incremental', 'full', 'full_refresh', 'reconcile')),
    interval_start  timestamptz,            -- the run's data interval (null: manual run)
    interval_end    timestamptz,
    window_start    timestamptz,            -- cursor range read: [window_start, window_end)
    window_end      timestamptz,            --   (interval start minus lookback; null start = all history)
    rows_read       bigint,
    rows_written    bigint,                 -- new row versions (or tombstones) written to bronze
    seconds         double precision,
    status          text not null check (status in ('success', 'failed')),
    error           text,
    dag_id          text,
    run_id          text,
    started_at      timestamptz not null,
    finished_at     timestamptz not null default clock_timestamp()
);

create index if not exists replication_batches_table_idx
    on ops.replication_batches (source, table_name, finished_at desc);
