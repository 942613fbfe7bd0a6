-- Data-quality incidents (schema ops): a spike of rejected payloads in a validated silver model
-- (today retail's silver_transaction_checks, declared by its meta.rejection_alert). Idempotent:
-- applied by medallion.warehouse.migrate. Written and read by plugins/medallion/quality.py, which
-- the freshness check runs: like a stale table, one email when a spike starts, one when it is over.
create table if not exists ops.quality_incidents (
    incident_id     bigint generated always as identity primary key,
    product         text not null,
    model           text not null,              -- schema.table of the checks model
    opened_at       timestamptz not null default now(),
    closed_at       timestamptz,
    window_start    timestamptz not null,       -- the window that opened it
    window_end      timestamptz not null,
    landed          integer not null,           -- payloads received in that window
    rejected        integer not null,           -- of which quarantined
    max_share       numeric not null,           -- the threshold crossed
    top_reasons     text[] not null default '{}',
    last_seen_share numeric,                    -- the newest check's share while open (recovery: below max_share)
    last_checked_at timestamptz
);

create unique index if not exists quality_incidents_open_idx
    on ops.quality_incidents (product, model) where closed_at is null;
