-- The product-analytics Supabase database: schema analytics, four append-only raw tables
-- (../shared/seeds/product-analytics-events.md, "Bronze Layer"). Applied after the generic
-- Supabase platform files (include/sql/source/001_supabase_roles.sql, 003_replication_role.sql).
--
-- Append-only: rows are never updated or deleted. `created_at` is when a thing happened (client
-- clock), `ingested_at` when it landed here (set by the database: the replication cursor, so a
-- row that arrives hours late is still read by the next load). Delivery is at least once:
-- events_raw.id is the client-generated event id and is NOT unique here (a retried delivery
-- lands again with the same id; silver keeps one row per id, the document's dedup rule).
-- A retried payment webhook lands as a new transactions_raw row with the same external_id
-- (silver flags it is_duplicate).

create schema if not exists analytics;
grant usage on schema analytics to anon, authenticated, service_role;

create table if not exists analytics.events_raw (
    id uuid not null,
    event_type text,
    user_id uuid,
    session_id text,
    properties jsonb not null default '{}',
    source text not null,
    created_at timestamptz not null,
    ingested_at timestamptz not null default now()
);

create table if not exists analytics.api_logs_raw (
    id uuid primary key default gen_random_uuid(),
    user_id uuid,
    method text,
    endpoint text,
    status_code integer,
    response_time_ms integer,
    properties jsonb not null default '{}',
    source text not null,
    created_at timestamptz not null,
    ingested_at timestamptz not null default now()
);

create table if not exists analytics.user_actions_raw (
    id uuid primary key default gen_random_uuid(),
    user_id uuid,
    action text,
    entity_type text,
    entity_id text,
    properties jsonb not null default '{}',
    source text not null,
    created_at timestamptz not null,
    ingested_at timestamptz not null default now()
);

create table if not exists analytics.transactions_raw (
    id uuid primary key default gen_random_uuid(),
    external_id text,
    user_id uuid,
    amount numeric(12, 2),
    currency text,
    status text,
    payment_method text,
    properties jsonb not null default '{}',
    source text not null,
    created_at timestamptz not null,
    ingested_at timestamptz not null default now()
);

-- The loads read `ingested_at >= window start` (replication cursor); the document's indexes
-- serve time, user and type queries.
create index if not exists idx_events_raw_ingested on analytics.events_raw (ingested_at);
create index if not exists idx_events_raw_created on analytics.events_raw (created_at);
create index if not exists idx_events_raw_user on analytics.events_raw (user_id, created_at);
create index if not exists idx_events_raw_type on analytics.events_raw (event_type);
create index if not exists idx_api_logs_raw_ingested on analytics.api_logs_raw (ingested_at);
create index if not exists idx_api_logs_raw_created on analytics.api_logs_raw (created_at);
create index if not exists idx_user_actions_raw_ingested on analytics.user_actions_raw (ingested_at);
create index if not exists idx_user_actions_raw_user on analytics.user_actions_raw (user_id, created_at);
create index if not exists idx_transactions_raw_ingested on analytics.transactions_raw (ingested_at);
create index if not exists idx_transactions_raw_created on analytics.transactions_raw (created_at);
create index if not exists idx_transactions_raw_external on analytics.transactions_raw (external_id);

-- Row level security as the document shows: the service role writes and reads everything, a
-- signed-in user reads only their own rows. The replicator bypasses RLS (003_replication_role.sql).
alter table analytics.events_raw enable row level security;
alter table analytics.api_logs_raw enable row level security;
alter table analytics.user_actions_raw enable row level security;
alter table analytics.transactions_raw enable row level security;

do $$
declare
    t text;
begin
    foreach t in array array['events_raw', 'api_logs_raw', 'user_actions_raw', 'transactions_raw'] loop
        if not exists (
            select from pg_policies where schemaname = 'analytics' and tablename = t and policyname = 'service_role_all'
        ) then
            execute format(
                'create policy service_role_all on analytics.%I for all to service_role using (true) with check (true)', t
            );
        end if;
        if not exists (
            select from pg_policies where schemaname = 'analytics' and tablename = t and policyname = 'user_read_own'
        ) then
            execute format(
                'create policy user_read_own on analytics.%I for select to authenticated using (user_id = auth.uid())', t
            );
        end if;
    end loop;
end
$$;

grant select, insert on all tables in schema analytics to service_role;
grant select on all tables in schema analytics to authenticated;

-- Replication reads every table of the schema, now and later.
grant usage on schema analytics to replicator;
grant select on all tables in schema analytics to replicator;
alter default privileges in schema analytics grant select on tables to replicator;
