-- Reconciliation's running checksum of bronze (plugins/medallion/reconcile.py), after
-- 003_reconciliation.sql. Idempotent: applied by medallion.warehouse.migrate.

-- Per bronze table: count and hash sum of every key's latest live version (method `versions`), as of
-- the successful batches listed in `batches`. The next check adds what later batches wrote (the keys
-- an incremental load touched, found through its cursor window) instead of reading all of bronze:
-- a check where little changed reads little of bronze. Anything it cannot account for exactly (a
-- full refresh, a repair, another signature, a row count that differs from the ledger's) makes the
-- check read bronze in full and store a fresh row. The deep check (`rows`) never uses it.
create table if not exists ops.reconcile_checksums (
    source text not null,
    table_name text not null,
    signature text not null,                    -- md5 of the hash's SQL: columns, types, functions
    keys_live bigint not null,                  -- keys whose latest version is live
    hash_sum numeric not null,                  -- sum of their 64-bit version hashes
    batches text [] not null,                   -- the table's successful batches it covers (2 days)
    computed_at timestamptz not null default clock_timestamp(),
    primary key (source, table_name)
);
