-- On-call alerts' state (schema ops). Idempotent: applied by medallion.warehouse.migrate, after
-- 001-003. Written and read by plugins/medallion/alerts.py and freshness.py.
--
--   ops.alert_outbox          every alert email, written before it is sent: sent, or kept and retried
--   ops.failure_problems      task failures grouped by problem: one email when it starts, reminders, recovery
--   ops.gap_incidents         holes in a bronze table's loaded intervals (ops.replication_gaps)

-- The outbox: an alert is a row here before it is an email, in the same transaction as the
-- incident or problem it announces, so nothing is lost when SMTP is down. Every freshness check
-- sends what is due; a failed attempt keeps the row with the error and retries it with backoff.
create table if not exists ops.alert_outbox_messages (
    message_id      bigint generated always as identity primary key,
    kind            text not null,          -- failure | reminder | recovered | freshness | gap | deadline
    subject         text not null,
    text_body       text not null,
    html_body       text not null,
    created_at      timestamptz not null default now(),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_attempt_at timestamptz,
    last_error      text,                   -- why the last attempt failed (null: not tried yet, or sent)
    sent_at         timestamptz,
    sent_to         text[]                  -- the recipients it went to
);

create index if not exists alert_outbox_due_idx
    on ops.alert_outbox_messages (next_attempt_at) where sent_at is null;

-- What on-call reads: one row per alert, newest first; state pending (not tried yet), failed
-- (tried, kept, retried at next_attempt_at) or sent.
create or replace view ops.alert_outbox as
select
    message_id,
    case
        when sent_at is not null then 'sent'
        when attempts = 0 then 'pending'
        else 'failed'
    end as state,
    kind,
    subject,
    created_at,
    attempts,
    last_error,
    next_attempt_at,
    sent_at,
    sent_to
from ops.alert_outbox_messages
order by (sent_at is null) desc, created_at desc;

-- Next to ops.table_freshness: how many alerts are waiting, since when, and why.
create or replace view ops.alert_outbox_status as
select
    count(*) filter (where sent_at is null and attempts = 0) as pending,
    count(*) filter (where sent_at is null and attempts > 0) as failed,
    count(*) filter (where sent_at is not null) as sent,
    min(created_at) filter (where sent_at is null) as oldest_unsent_at,
    (array_agg(last_error order by last_attempt_at desc) filter (where sent_at is null and last_error is not null))[1]
        as last_error
from ops.alert_outbox_messages;

-- A problem: failures of one task (and table) with the same error, normalised (numbers, ids and
-- quoted values blanked), so a catch-up of 20 runs failing alike is one problem, not 20 emails.
-- At most one open problem per key; closed when the table loads again (bronze) or, for a task
-- without a table, when it has not failed for the reminder interval.
create table if not exists ops.failure_problems (
    problem_id      bigint generated always as identity primary key,
    dag_id          text not null,
    task_id         text not null,
    table_name      text not null default '',   -- '' when the task loads no single table
    signature       text not null,          -- the normalised error: what makes two failures one problem
    label           text not null,          -- task_id[table], as the emails name it
    error           text not null,          -- the newest failure's error, as raised
    runs            integer not null default 1,    -- failed task runs (each after its last retry)
    first_run_id    text,
    last_run_id     text,
    log_url         text,
    opened_at       timestamptz not null default now(),
    last_failed_at  timestamptz not null default now(),
    last_emailed_at timestamptz not null default now(),
    emails          integer not null default 1,
    closed_at       timestamptz,
    closed_because  text
);

create unique index if not exists failure_problems_open_idx
    on ops.failure_problems (dag_id, task_id, table_name, signature) where closed_at is null;

-- Holes: intervals bronze never loaded successfully between a table's first load and its newest.
-- A successful incremental batch read the cursor range [window_start, window_end) (its interval
-- minus the lookback; an initial load all history); a full snapshot everything up to its start.
-- What none of them read is a hole; the hourly intervals touching it are what a backfill must run.
create or replace view ops.replication_gaps as
with covered as (
    select
        source,
        table_name,
        range_agg(
            case
                when mode = 'incremental' then tstzrange(coalesce(window_start, '-infinity'), window_end)
                else tstzrange('-infinity', coalesce(window_end, started_at))
            end
        ) as loaded,
        max(coalesce(window_end, started_at)) as loaded_until
    from ops.replication_batches
    where status = 'success' and mode <> 'reconcile' and (mode <> 'incremental' or window_end is not null)
    group by source, table_name
),

holes as (
    select
        c.source,
        c.table_name,
        lower(hole) as gap_start,
        upper(hole) as gap_end
    from covered as c
    cross join lateral unnest(
        tstzmultirange(tstzrange(lower(c.loaded), c.loaded_until)) - c.loaded
    ) as hole
    where not isempty(hole) and lower(hole) > '-infinity'
),

hourly as (
    select
        source,
        table_name,
        gap_start,
        gap_end,
        date_trunc('hour', gap_start at time zone 'UTC') at time zone 'UTC' as first_interval,
        -- the start of the last hourly interval that touches the hole
        date_trunc('hour', (gap_end - interval '1 microsecond') at time zone 'UTC') at time zone 'UTC'
            as last_interval
    from holes
)

select
    source,
    table_name,
    gap_start,
    gap_end,
    first_interval,
    last_interval,
    (extract(epoch from last_interval - first_interval) / 3600)::integer + 1 as intervals,
    -- `airflow backfill create` runs every logical date (interval start) from --from-date to
    -- --to-date, both included: exactly the hourly intervals above
    format(
        'airflow backfill create --dag-id bronze_%s --from-date %s --to-date %s',
        source,
        to_char(first_interval at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
        to_char(last_interval at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')
    ) as backfill_command
from hourly
order by source, table_name, gap_start;

-- One incident per bronze table with holes (like ops.freshness_incidents): emailed when a hole
-- appears, quiet while the same holes stay, emailed again when they are all loaded.
create table if not exists ops.gap_incidents (
    incident_id     bigint generated always as identity primary key,
    source          text not null,
    table_name      text not null,
    gaps            tstzmultirange not null,     -- the holes last announced or seen
    opened_at       timestamptz not null default now(),
    closed_at       timestamptz
);

create unique index if not exists gap_incidents_open_idx
    on ops.gap_incidents (source, table_name) where closed_at is null;
