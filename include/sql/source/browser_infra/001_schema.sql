-- Browser-infrastructure SaaS product database (Supabase, schema public).
-- Identity: organizations, users, organization_members. Product: projects, api_keys,
-- browser_sessions, session_events. Billing: plans, subscriptions, usage_records, invoices.
-- Every table carries created_at/updated_at (updated_at bumped by trigger) and an index on
-- updated_at, which is the replication cursor: an incremental pull reads only changed rows.

create table if not exists public.plans (
    id                        uuid primary key default gen_random_uuid(),
    code                      text not null unique,
    name                      text not null,
    monthly_price_cents       integer not null check (monthly_price_cents >= 0),
    included_browser_minutes  integer not null check (included_browser_minutes >= 0),
    max_concurrent_sessions   integer not null check (max_concurrent_sessions > 0),
    overage_cents_per_minute  numeric(10, 4) not null default 0,
    is_active                 boolean not null default true,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now()
);

create table if not exists public.organizations (
    id          uuid primary key default gen_random_uuid(),
    name        text not null,
    slug        text not null unique,
    industry    text,
    country     char(2),
    status      text not null default 'active' check (status in ('active', 'suspended', 'churned')),
    settings    jsonb not null default '{}'::jsonb,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    deleted_at  timestamptz
);

create table if not exists public.users (
    id               uuid primary key default gen_random_uuid(),
    email            text not null unique,
    full_name        text,
    avatar_url       text,
    last_sign_in_at  timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    deleted_at       timestamptz
);

create table if not exists public.organization_members (
    id               uuid primary key default gen_random_uuid(),
    organization_id  uuid not null references public.organizations (id) on delete cascade,
    user_id          uuid not null references public.users (id) on delete cascade,
    role             text not null check (role in ('owner', 'admin', 'member', 'viewer')),
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    deleted_at       timestamptz,
    unique (organization_id, user_id)
);

create table if not exists public.projects (
    id               uuid primary key default gen_random_uuid(),
    organization_id  uuid not null references public.organizations (id) on delete cascade,
    name             text not null,
    default_region   text not null check (default_region in ('us-west-2', 'us-east-1', 'eu-central-1', 'ap-southeast-1')),
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    deleted_at       timestamptz
);

create table if not exists public.api_keys (
    id               uuid primary key default gen_random_uuid(),
    organization_id  uuid not null references public.organizations (id) on delete cascade,
    project_id       uuid not null references public.projects (id) on delete cascade,
    name             text not null,
    key_prefix       text not null,
    status           text not null default 'active' check (status in ('active', 'revoked')),
    last_used_at     timestamptz,
    revoked_at       timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists public.subscriptions (
    id                    uuid primary key default gen_random_uuid(),
    organization_id       uuid not null references public.organizations (id) on delete cascade,
    plan_id               uuid not null references public.plans (id),
    status                text not null check (status in ('trialing', 'active', 'past_due', 'canceled')),
    billing_interval      text not null default 'month' check (billing_interval in ('month', 'year')),
    started_at            timestamptz not null,
    current_period_start  timestamptz not null,
    current_period_end    timestamptz not null,
    canceled_at           timestamptz,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),
    check (current_period_end > current_period_start)
);

-- Same 14 columns as the benchmark harness's browser_sessions (../shared/bench).
create table if not exists public.browser_sessions (
    id               uuid primary key default gen_random_uuid(),
    organization_id  uuid not null references public.organizations (id) on delete cascade,
    project_id       uuid not null references public.projects (id) on delete cascade,
    status           text not null check (status in ('pending', 'running', 'completed', 'failed', 'timed_out')),
    region           text not null,
    started_at       timestamptz not null,
    ended_at         timestamptz,
    duration_ms      integer,
    proxy_bytes      bigint not null default 0,
    keep_alive       boolean not null default false,
    user_agent       text,
    metadata         jsonb not null default '{}'::jsonb,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    check (ended_at is null or ended_at >= started_at)
);

create table if not exists public.session_events (
    id               bigint generated by default as identity primary key,
    session_id       uuid not null references public.browser_sessions (id) on delete cascade,
    organization_id  uuid not null references public.organizations (id) on delete cascade,
    event_type       text not null check (event_type in ('navigate', 'click', 'input', 'screenshot',
                                                         'console_error', 'network_error', 'captcha_solved')),
    occurred_at      timestamptz not null,
    payload          jsonb not null default '{}'::jsonb,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists public.usage_records (
    id               uuid primary key default gen_random_uuid(),
    organization_id  uuid not null references public.organizations (id) on delete cascade,
    subscription_id  uuid references public.subscriptions (id) on delete set null,
    usage_date       date not null,
    metric           text not null check (metric in ('browser_minutes', 'proxy_gb', 'sessions')),
    quantity         numeric(14, 3) not null check (quantity >= 0),
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    unique (organization_id, usage_date, metric)
);

create table if not exists public.invoices (
    id                 uuid primary key default gen_random_uuid(),
    organization_id    uuid not null references public.organizations (id) on delete cascade,
    subscription_id    uuid references public.subscriptions (id) on delete set null,
    invoice_number     text not null unique,
    status             text not null check (status in ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency           char(3) not null default 'USD',
    amount_due_cents   bigint not null check (amount_due_cents >= 0),
    amount_paid_cents  bigint not null default 0 check (amount_paid_cents >= 0),
    period_start       date not null,
    period_end         date not null,
    issued_at          timestamptz,
    paid_at            timestamptz,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

-- Cursor indexes (replication reads `where updated_at >= $start and updated_at < $end`) and FKs.
do $$
declare
    t text;
begin
    foreach t in array array['plans', 'organizations', 'users', 'organization_members', 'projects',
                             'api_keys', 'subscriptions', 'browser_sessions', 'session_events',
                             'usage_records', 'invoices']
    loop
        execute format('create index if not exists %I on public.%I (updated_at)', t || '_updated_at_idx', t);
        execute format('drop trigger if exists touch_updated_at on public.%I', t);
        execute format('create trigger touch_updated_at before update on public.%I '
                       'for each row execute function public.touch_updated_at()', t);
        execute format('alter table public.%I enable row level security', t);
        execute format('grant select on public.%I to authenticated', t);
        execute format('grant all on public.%I to service_role', t);
    end loop;
end
$$;

create index if not exists browser_sessions_org_idx on public.browser_sessions (organization_id, started_at);
create index if not exists session_events_session_idx on public.session_events (session_id);

-- Row level security as a Supabase app has it: a signed-in user sees the rows of the
-- organizations they belong to; anon sees nothing. ETL uses a role that bypasses RLS.
create or replace function public.is_member_of(org uuid) returns boolean
language sql stable security definer set search_path = public
as $$
    select exists (
        select 1 from public.organization_members m
        where m.organization_id = org and m.user_id = auth.uid() and m.deleted_at is null
    )
$$;

do $$
declare
    t text;
begin
    foreach t in array array['organization_members', 'projects', 'api_keys', 'subscriptions',
                             'browser_sessions', 'session_events', 'usage_records', 'invoices']
    loop
        execute format('drop policy if exists member_read on public.%I', t);
        execute format('create policy member_read on public.%I for select to authenticated '
                       'using (public.is_member_of(organization_id))', t);
    end loop;
end
$$;

drop policy if exists member_read on public.organizations;
create policy member_read on public.organizations for select to authenticated
    using (public.is_member_of(id));
drop policy if exists self_read on public.users;
create policy self_read on public.users for select to authenticated using (id = auth.uid());
drop policy if exists public_read on public.plans;
create policy public_read on public.plans for select to anon, authenticated using (is_active);
