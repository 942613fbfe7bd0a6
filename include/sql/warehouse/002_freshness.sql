-- Freshness of the warehouse's tables against their SLAs (schema ops). Applied by every freshness
-- check (idempotent), after 001_ops.sql.
--
-- One kind of table per view: ops.bronze_freshness today; a gold kind ("how old is the newest
-- interval a mart covers") gets its own ops.gold_freshness with the same columns, unioned into
-- ops.table_freshness, and its SLAs synced into ops.table_slas under kind 'gold'.

-- Each table's SLA, copied from its one declaration (the dbt sources YAML) on every check.
create table if not exists ops.table_slas (
    kind            text not null,          -- bronze (later: gold)
    source          text not null,          -- the dbt source, e.g. supabase
    table_name      text not null,
    warn_after      interval,               -- null: no such threshold declared
    error_after     interval,
    declared_at     text,                   -- file:line of the declaration
    synced_at       timestamptz not null default now(),
    primary key (kind, source, table_name)
);

-- One row per freshness incident: a table went stale (opened) until it was fresh again (closed).
-- At most one open incident per table, so a repeat check while still stale sends nothing new.
create table if not exists ops.freshness_incidents (
    incident_id     bigint generated always as identity primary key,
    kind            text not null,
    source          text not null,
    table_name      text not null,
    status          text not null check (status in ('warn', 'error')),  -- worst status while open
    opened_at       timestamptz not null default now(),
    last_load_at    timestamptz,            -- the table's last successful load when it opened
    notified_by     text,                   -- the email that announced it: freshness check | failure of <task>
    closed_at       timestamptz
);

create unique index if not exists freshness_incidents_open_idx
    on ops.freshness_incidents (kind, source, table_name) where closed_at is null;

-- The rule, shared by every kind: older than error_after is 'error', older than warn_after is
-- 'warn', a table never loaded is as bad as its worst threshold; null when no SLA is declared.
create or replace function ops.freshness_status(age interval, warn_after interval, error_after interval)
returns text
language sql
immutable
as $$
    select case
        when warn_after is null and error_after is null then null
        when age is null then case when error_after is null then 'warn' else 'error' end
        when age > error_after then 'error'
        when age > warn_after then 'warn'
        else 'fresh'
    end
$$;

-- Bronze: the last successful load is the newest successful ledger row of the table (an hour with
-- no changed rows is still a load), not max(_loaded_at). Delete reconciliation does not count.
create or replace view ops.bronze_freshness as
select
    sla.kind,
    sla.source,
    sla.table_name,
    ok.finished_at as last_load_at,
    now() - ok.finished_at as age,
    sla.warn_after,
    sla.error_after,
    ops.freshness_status(now() - ok.finished_at, sla.warn_after, sla.error_after) as status,
    ok.rows_written as last_batch_rows,
    ok.batch_id as last_batch_id,
    failed.finished_at as failing_since,
    failed.error as last_error,
    now() as checked_at
from ops.table_slas as sla
left join lateral (
    select b.finished_at, b.rows_written, b.batch_id
    from ops.replication_batches as b
    where
        b.source = sla.source and b.table_name = sla.table_name
        and b.status = 'success' and b.mode <> 'reconcile'
    order by b.finished_at desc
    limit 1
) as ok on true
-- failures since that load: the oldest says since when, the newest says why
left join lateral (
    select
        min(b.finished_at) as finished_at,
        (array_agg(b.error order by b.finished_at desc))[1] as error
    from ops.replication_batches as b
    where
        b.source = sla.source and b.table_name = sla.table_name
        and b.status = 'failed' and b.mode <> 'reconcile'
        and b.finished_at > coalesce(ok.finished_at, '-infinity')
) as failed on true
where sla.kind = 'bronze';

-- What on-call reads, and what the alert emails state: one row per table with an SLA.
create or replace view ops.table_freshness as
select
    kind, source, table_name, last_load_at, age, warn_after, error_after, status,
    last_batch_rows, last_batch_id, failing_since, last_error, checked_at
from ops.bronze_freshness;
