-- Freshness of the warehouse's tables against their SLAs (schema ops). Idempotent: applied by
-- medallion.warehouse.migrate, after 001_ops.sql.
--
-- One view per way of measuring, with the same columns, unioned into ops.table_freshness:
--   ops.bronze_freshness  bronze: when was the table last loaded (the replication ledger);
--   ops.model_freshness   silver and gold (dbt models declaring meta.covered_by): until when does
--                         the data cover (ops.gold_coverage, measured by each check: max(covered_by)
--                         + one grain, see plugins/medallion/freshness.py).
-- Their SLAs are synced into ops.table_slas under kind 'bronze', 'silver' and 'gold'.

-- Settings the checks keep for the views: airflow_base_url (Airflow's [api] base_url), so a row
-- can link to its DAG's runs.
create table if not exists ops.settings (
    name            text primary key,
    value           text not null,
    updated_at      timestamptz not null default now()
);

-- Each table's SLA, copied from its one declaration (the dbt sources YAML) on every check.
create table if not exists ops.table_slas (
    kind            text not null,          -- bronze | silver | gold
    source          text not null,          -- bronze: the dbt source (supabase); else the schema (gold_marts)
    table_name      text not null,
    warn_after      interval,               -- null: no such threshold declared
    error_after     interval,
    declared_at     text,                   -- file:line of the declaration
    synced_at       timestamptz not null default now(),
    primary key (kind, source, table_name)
);

-- silver, gold: which column says what period a row covers, and how long that period is (null: the column
-- is a timestamp). Added columns, so that a warehouse created before gold freshness gets them too.
alter table ops.table_slas add column if not exists covered_by text;
alter table ops.table_slas add column if not exists covered_grain text;

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
-- Every failed load writes a 'failed' row (bronze.load_table, also when it failed before its
-- batch started), so failing_since / last_error show a table that keeps failing.
create or replace view ops.bronze_freshness as
select
    sla.kind,
    sla.source,
    sla.table_name,
    ok.finished_at as last_load_at,
    date_trunc('second', now() - ok.finished_at) as age,
    sla.warn_after,
    sla.error_after,
    ops.freshness_status(now() - ok.finished_at, sla.warn_after, sla.error_after) as status,
    ok.rows_written as last_batch_rows,
    ok.batch_id as last_batch_id,
    failed.finished_at as failing_since,
    failed.error as last_error,
    now() as checked_at,
    coalesce(newest.dag_id, 'bronze_' || sla.source) as dag_id,
    newest.run_id
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
-- the run on-call wants to open: the newest load, failed or not
left join lateral (
    select b.dag_id, b.run_id
    from ops.replication_batches as b
    where b.source = sla.source and b.table_name = sla.table_name and b.mode <> 'reconcile'
    order by b.finished_at desc
    limit 1
) as newest on true
where sla.kind = 'bronze';

-- Silver and gold: what each table covers, as the last freshness check measured it (one short
-- query per table, outside the check's transaction, so a check never holds locks on them while it
-- sends email). Age keeps growing between checks: a check that stops running never looks fresh.
-- (Named gold_coverage from when only gold was measured; silver rows have source silver_core.)
create table if not exists ops.gold_coverage (
    source          text not null,          -- schema, e.g. gold_marts, silver_core
    table_name      text not null,
    covered_until   timestamptz,            -- end of the newest period with data; null: never built or empty
    newest          text,                   -- max(covered_by) as measured, e.g. 2026-11-22
    error           text,                   -- why covered_until is null or old: never built, no rows, cannot measure
    failing_since   timestamptz,            -- since when that error holds
    measured_at     timestamptz not null,
    primary key (source, table_name)
);

-- last_load_at is "covered until" here; age is 0 while the newest period is still in progress,
-- null when nothing is covered (never built, empty, not measurable): as bad as never loaded.
-- checked_at is when the coverage was measured (null: never).
create or replace view ops.model_freshness as
select
    sla.kind,
    sla.source,
    sla.table_name,
    cov.covered_until as last_load_at,
    date_trunc('second', cov.age) as age,
    sla.warn_after,
    sla.error_after,
    ops.freshness_status(cov.age, sla.warn_after, sla.error_after) as status,
    null::bigint as last_batch_rows,
    null::text as last_batch_id,
    cov.failing_since,
    coalesce(cov.error, case when cov.table_name is null then 'never measured' end) as last_error,
    cov.measured_at as checked_at,
    sla.kind as dag_id,                     -- the silver and gold DAGs are named after their layer
    null::text as run_id
from ops.table_slas as sla
left join lateral (
    select
        c.*,
        case when c.covered_until > now() then interval '0' else now() - c.covered_until end as age
    from ops.gold_coverage as c
    where c.source = sla.source and c.table_name = sla.table_name
) as cov on true
where sla.kind in ('silver', 'gold');

-- What on-call reads, and what the alert emails state: one row per table with an SLA, worst
-- first (error, warn, fresh; the oldest first), each with the Airflow page of its DAG's runs (or
-- of the run that last loaded or failed to load it).
create or replace view ops.table_freshness as
select
    f.kind, f.source, f.table_name, f.last_load_at, f.age, f.warn_after, f.error_after, f.status,
    f.last_batch_rows, f.last_batch_id, f.failing_since, f.last_error, f.checked_at,
    f.dag_id,
    f.run_id,
    coalesce(url.value, '') || '/dags/' || f.dag_id || '/runs'
    || coalesce('/' || replace(replace(f.run_id, ':', '%3A'), '+', '%2B'), '') as link
from (
    select
        kind, source, table_name, last_load_at, age, warn_after, error_after, status,
        last_batch_rows, last_batch_id, failing_since, last_error, checked_at, dag_id, run_id
    from ops.bronze_freshness
    union all
    select
        kind, source, table_name, last_load_at, age, warn_after, error_after, status,
        last_batch_rows, last_batch_id, failing_since, last_error, checked_at, dag_id, run_id
    from ops.model_freshness
) as f
left join ops.settings as url on url.name = 'airflow_base_url'
order by
    case f.status when 'error' then 0 when 'warn' then 1 when 'fresh' then 2 else 3 end,
    f.age desc nulls first,
    f.failing_since nulls last,
    f.kind, f.source, f.table_name;

drop view if exists ops.gold_freshness;  -- replaced by ops.model_freshness (silver and gold)
