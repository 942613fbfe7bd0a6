-- The retail (Scout Retail) Supabase database: schema retail, two append-only landing tables
-- (../shared/seeds/retail-dbt-workbench.md, "Bronze Layer: raw JSONB"). Applied after the generic
-- Supabase platform files (include/sql/source/001_supabase_roles.sql, 002_replication_role.sql).
--
-- Nothing is typed here on purpose: each row is one payload exactly as it arrived (a CSV line
-- turned into an object by the upload function, a webhook body, a row of a Drive sheet), plus
-- where and when it landed. Silver enforces the schema; what fails it is quarantined there, so a
-- bad payload is never refused (and lost) at the door. Rows are never updated or deleted; the
-- replication cursor is received_at, set by the database when the row lands.

create schema if not exists retail;
grant usage on schema retail to service_role;

create table if not exists retail.transactions_raw (
    id          bigint generated always as identity primary key,
    payload     jsonb not null,              -- any JSON: silver decides whether it is a transaction
    source      text not null check (source in ('csv', 'webhook', 'drive')),
    file_name   text,                        -- csv | drive: the uploaded file
    line_number integer,                     -- csv | drive: its line (header = 1)
    request_id  text,                        -- webhook: the delivery's request id (a retry repeats it)
    received_at timestamptz not null default now(),
    constraint transactions_raw_origin check (
        (source = 'webhook' and request_id is not null) or (source <> 'webhook' and file_name is not null)
    )
);

create table if not exists retail.products_raw (
    id          bigint generated always as identity primary key,
    payload     jsonb not null,
    source      text not null check (source in ('csv', 'webhook', 'drive')),
    file_name   text,
    line_number integer,
    request_id  text,
    received_at timestamptz not null default now(),
    constraint products_raw_origin check (
        (source = 'webhook' and request_id is not null) or (source <> 'webhook' and file_name is not null)
    )
);

-- The loads read `received_at >= window start`; the GIN index serves ad-hoc lookups by key
-- (`payload @> '{"transaction_id": "..."}'`) when on-call traces a payload back to its delivery.
create index if not exists transactions_raw_received_idx on retail.transactions_raw (received_at);
create index if not exists transactions_raw_payload_idx on retail.transactions_raw using gin (payload jsonb_path_ops);
create index if not exists products_raw_received_idx on retail.products_raw (received_at);

-- Row level security as on any Supabase table: the ingestion functions write with the service
-- role; anon and signed-in users read nothing (payloads may carry customer details). The
-- replicator bypasses RLS (002_replication_role.sql).
alter table retail.transactions_raw enable row level security;
alter table retail.products_raw enable row level security;

do $$
declare
    t text;
begin
    foreach t in array array['transactions_raw', 'products_raw'] loop
        if not exists (
            select from pg_policies where schemaname = 'retail' and tablename = t and policyname = 'service_role_all'
        ) then
            execute format(
                'create policy service_role_all on retail.%I for all to service_role using (true) with check (true)', t
            );
        end if;
    end loop;
end
$$;

grant select, insert on all tables in schema retail to service_role;

-- Replication reads every table of the schema, now and later.
grant usage on schema retail to replicator;
grant select on all tables in schema retail to replicator;
alter default privileges in schema retail grant select on tables to replicator;
