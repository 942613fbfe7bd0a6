-- The role replication connects as: read-only, bypasses RLS (like Supabase's postgres/service role).
-- Local demo and compose only; on real Supabase connect as postgres through the session pooler
-- (port 5432) or directly; never through the transaction pooler (6543), see README.

do $$
begin
    if not exists (select from pg_roles where rolname = 'replicator') then
        create role replicator login bypassrls;
    end if;
end
$$;

grant usage on schema public to replicator;
grant select on all tables in schema public to replicator;
alter default privileges in schema public grant select on tables to replicator;
