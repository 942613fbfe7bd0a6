-- A Supabase project's `auth` (GoTrue) and `storage` schemas, as their migrations leave them
-- (written after github.com/supabase/auth and supabase/storage migrations), plus the user-defined
-- types a product schema adds around them: citext (in schema extensions, as Supabase installs it),
-- a domain in another schema, a domain over an enum, arrays of enums and of citext, a composite.
-- Run as a superuser in a fresh source database; seeds a few hundred rows with every enum label,
-- NULL updated_at (GoTrue fills it on update only in places), secrets and awkward values.

create schema if not exists auth;
create schema if not exists storage;
create schema if not exists extensions;
create extension if not exists citext with schema extensions;

-- GoTrue's enums
create type auth.aal_level as enum ('aal1', 'aal2', 'aal3');
create type auth.factor_type as enum ('totp', 'webauthn', 'phone');
create type auth.factor_status as enum ('unverified', 'verified');
create type auth.code_challenge_method as enum ('s256', 'plain');
-- storage's bucket type
create type storage.buckettype as enum ('STANDARD', 'ANALYTICS');

-- a product's own types, in other schemas than the tables using them
create domain extensions.email_address as extensions.citext check (value like '%@%');
create domain public.strong_aal as auth.aal_level check (value <> 'aal1');
create domain public.price_cents as numeric(12, 2) check (value >= 0);
create type public.money_amount as (amount numeric(12, 2), currency char(3));

create table auth.users (
    instance_id uuid,
    id uuid not null primary key,
    aud varchar(255),
    role varchar(255),
    email varchar(255),
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    invited_at timestamptz,
    confirmation_token varchar(255),
    confirmation_sent_at timestamptz,
    recovery_token varchar(255),
    recovery_sent_at timestamptz,
    email_change_token_new varchar(255),
    email_change varchar(255),
    email_change_sent_at timestamptz,
    last_sign_in_at timestamptz,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_super_admin boolean,
    created_at timestamptz,
    updated_at timestamptz,
    phone text unique default null,
    phone_confirmed_at timestamptz,
    phone_change text default '',
    phone_change_token varchar(255) default '',
    phone_change_sent_at timestamptz,
    confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
    email_change_token_current varchar(255) default '',
    email_change_confirm_status smallint default 0 check (email_change_confirm_status between 0 and 2),
    banned_until timestamptz,
    reauthentication_token varchar(255) default '',
    reauthentication_sent_at timestamptz,
    is_sso_user boolean not null default false,
    deleted_at timestamptz,
    is_anonymous boolean not null default false
);
create index users_instance_id_email_idx on auth.users (instance_id, lower(email));
create index users_updated_at_idx on auth.users (updated_at);
create index users_created_at_idx on auth.users (created_at);

create table auth.identities (
    provider_id text not null,
    user_id uuid not null references auth.users (id) on delete cascade,
    identity_data jsonb not null,
    provider text not null,
    last_sign_in_at timestamptz,
    created_at timestamptz,
    updated_at timestamptz,
    email text generated always as (lower(identity_data ->> 'email')) stored,
    id uuid not null default gen_random_uuid() primary key,
    unique (provider_id, provider)
);

create table auth.sessions (
    id uuid not null primary key,
    user_id uuid not null references auth.users (id) on delete cascade,
    created_at timestamptz,
    updated_at timestamptz,
    factor_id uuid,
    aal auth.aal_level,
    not_after timestamptz,
    refreshed_at timestamp without time zone,
    user_agent text,
    ip inet,
    tag text
);

create table auth.mfa_factors (
    id uuid not null primary key,
    user_id uuid not null references auth.users (id) on delete cascade,
    friendly_name text,
    factor_type auth.factor_type not null,
    status auth.factor_status not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    secret text,
    phone text,
    last_challenged_at timestamptz unique,
    web_authn_credential jsonb,
    web_authn_aaguid uuid
);

create table auth.refresh_tokens (
    instance_id uuid,
    id bigserial primary key,
    token varchar(255) unique,
    user_id varchar(255),
    revoked boolean,
    created_at timestamptz,
    updated_at timestamptz,
    parent varchar(255),
    session_id uuid references auth.sessions (id) on delete cascade
);

create table auth.audit_log_entries (
    instance_id uuid,
    id uuid not null primary key,
    payload json,
    created_at timestamptz,
    ip_address varchar(64) not null default ''
);

create table auth.flow_state (
    id uuid primary key,
    user_id uuid,
    auth_code text not null,
    code_challenge_method auth.code_challenge_method not null,
    code_challenge text not null,
    provider_type text not null,
    provider_access_token text,
    provider_refresh_token text,
    created_at timestamptz,
    updated_at timestamptz,
    authentication_method text not null,
    auth_code_issued_at timestamptz
);

create table storage.buckets (
    id text not null primary key,
    name text not null,
    owner uuid,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    public boolean default false,
    avif_autodetection boolean default false,
    file_size_limit bigint,
    allowed_mime_types text[],
    owner_id text,
    type storage.buckettype not null default 'STANDARD'
);

-- A product table using the extension type, the domains, arrays of them and a composite.
create table public.customers (
    id bigint generated always as identity primary key,
    email extensions.email_address not null,
    aliases extensions.citext[],
    min_aal public.strong_aal,
    allowed_factors auth.factor_type[],
    balance public.price_cents,
    last_payment public.money_amount,
    created_at timestamptz not null default now(),
    updated_at timestamptz
);

-- seed: 300 users, a third never updated (updated_at NULL), some banned, some anonymous
insert into auth.users (
    instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, confirmation_token,
    raw_app_meta_data, raw_user_meta_data, is_super_admin, created_at, updated_at, phone,
    phone_confirmed_at, banned_until, is_sso_user, is_anonymous
)
select
    '00000000-0000-0000-0000-000000000000',
    md5('user' || g)::uuid,
    'authenticated',
    'authenticated',
    case when g % 10 = 0 then null else 'User.' || g || '@Example.com' end,
    '$2a$10$' || md5('secret' || g),
    case when g % 4 <> 0 then timestamptz '2026-10-01 00:00+00' + g * interval '1 hour' end,
    case when g % 4 = 0 then md5('confirm' || g) else '' end,
    jsonb_build_object('provider', 'email', 'providers', jsonb_build_array('email')),
    jsonb_build_object('full_name', 'Zoë "Q" O''Brien ' || g, 'tags', jsonb_build_array(g, null, 1.5e-7)),
    false,
    timestamptz '2026-10-01 00:00+00' + g * interval '1 hour',
    case when g % 3 = 0 then null else timestamptz '2026-10-01 00:00+00' + g * interval '1 hour' + interval '5 minutes' end,
    case when g % 5 = 0 then '4915' || lpad(g::text, 8, '0') end,
    case when g % 10 = 5 then timestamptz '2026-10-02 00:00+00' end,
    case when g % 50 = 0 then 'infinity'::timestamptz end,
    g % 7 = 0,
    g % 10 = 0
from generate_series(1, 300) as g;

insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
select
    md5('user' || g)::uuid::text,
    md5('user' || g)::uuid,
    jsonb_build_object('sub', md5('user' || g)::uuid, 'email', 'User.' || g || '@Example.com', 'email_verified', g % 2 = 0),
    case when g % 3 = 0 then 'github' else 'email' end,
    timestamptz '2026-10-20 00:00+00' + g * interval '1 minute',
    timestamptz '2026-10-01 00:00+00' + g * interval '1 hour',
    timestamptz '2026-10-01 00:00+00' + g * interval '1 hour'
from generate_series(1, 300) as g;

insert into auth.sessions (id, user_id, created_at, updated_at, factor_id, aal, not_after, refreshed_at, user_agent, ip, tag)
select
    md5('session' || g)::uuid,
    md5('user' || (g % 300 + 1))::uuid,
    timestamptz '2026-10-15 00:00+00' + g * interval '7 minutes',
    case when g % 4 = 0 then null else timestamptz '2026-10-15 00:00+00' + g * interval '7 minutes' end,
    case when g % 3 = 0 then md5('factor' || g)::uuid end,
    (array['aal1', 'aal2', 'aal3', null])[g % 4 + 1]::auth.aal_level,
    case when g % 9 = 0 then timestamptz '2026-12-01 00:00+00' end,
    timestamp '2026-10-15 00:00' + g * interval '7 minutes',
    'Mozilla/5.0 (X11; Linux x86_64) session ' || g,
    ('10.' || g % 256 || '.0.' || g % 7 || '/32')::inet,
    case when g % 11 = 0 then 'tag, with ''quotes''' end
from generate_series(1, 600) as g;

insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at, updated_at, secret, phone,
                              last_challenged_at, web_authn_credential, web_authn_aaguid)
select
    md5('factor' || g)::uuid,
    md5('user' || g)::uuid,
    case when g % 2 = 0 then 'Phone of user ' || g end,
    (array['totp', 'webauthn', 'phone'])[g % 3 + 1]::auth.factor_type,
    (array['unverified', 'verified'])[g % 2 + 1]::auth.factor_status,
    timestamptz '2026-10-10 00:00+00' + g * interval '1 hour',
    timestamptz '2026-10-10 00:00+00' + g * interval '1 hour',
    case when g % 3 = 0 then 'JBSWY3DPEHPK3PXP' || g end,
    case when g % 3 = 2 then '+4915' || lpad(g::text, 8, '0') end,
    case when g % 4 = 0 then timestamptz '2026-10-30 00:00+00' + g * interval '1 second' end,
    case when g % 3 = 1 then jsonb_build_object('id', 'cred' || g, 'publicKey', encode(sha256(g::text::bytea), 'base64')) end,
    case when g % 3 = 1 then md5('aaguid' || g)::uuid end
from generate_series(1, 200) as g;

insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
select
    '00000000-0000-0000-0000-000000000000',
    md5('token' || g),
    md5('user' || (g % 300 + 1))::uuid::text,
    g % 5 = 0,
    timestamptz '2026-10-15 00:00+00' + g * interval '3 minutes',
    timestamptz '2026-10-15 00:00+00' + g * interval '3 minutes',
    case when g > 1 then md5('token' || (g - 1)) end,
    md5('session' || (g % 600 + 1))::uuid
from generate_series(1, 1000) as g;

insert into auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
select
    '00000000-0000-0000-0000-000000000000',
    md5('audit' || g)::uuid,
    json_build_object('action', (array['login', 'logout', 'token_refreshed', 'user_signedup'])[g % 4 + 1],
                      'actor_id', md5('user' || (g % 300 + 1))::uuid, 'traits', json_build_object('provider', 'email')),
    timestamptz '2026-10-15 00:00+00' + g * interval '1 minute',
    case when g % 2 = 0 then '192.168.0.' || g % 256 else '' end
from generate_series(1, 1500) as g;

insert into auth.flow_state (id, user_id, auth_code, code_challenge_method, code_challenge, provider_type,
                             provider_access_token, provider_refresh_token, created_at, updated_at,
                             authentication_method, auth_code_issued_at)
select
    md5('flow' || g)::uuid,
    md5('user' || g)::uuid,
    md5('code' || g),
    (array['s256', 'plain'])[g % 2 + 1]::auth.code_challenge_method,
    encode(sha256(('verifier' || g)::bytea), 'base64'),
    'github',
    'gho_' || md5('access' || g),
    case when g % 2 = 0 then 'ghr_' || md5('refresh' || g) end,
    timestamptz '2026-10-20 00:00+00' + g * interval '1 hour',
    timestamptz '2026-10-20 00:00+00' + g * interval '1 hour',
    'oauth',
    case when g % 2 = 0 then timestamptz '2026-10-20 00:00+00' + g * interval '1 hour' end
from generate_series(1, 50) as g;

insert into storage.buckets (id, name, owner, created_at, updated_at, public, file_size_limit, allowed_mime_types, owner_id, type)
values
    ('avatars', 'avatars', md5('user1')::uuid, '2026-10-01 00:00+00', '2026-10-01 00:00+00', true, 5242880,
     array['image/png', 'image/jpeg'], md5('user1')::uuid::text, 'STANDARD'),
    ('invoices', 'invoices', null, '2026-10-02 00:00+00', '2026-10-03 00:00+00', false, null, null, null, 'STANDARD'),
    ('events-lake', 'events-lake', null, '2026-10-04 00:00+00', '2026-10-04 00:00+00', false, null, '{}', null, 'ANALYTICS');

insert into public.customers (email, aliases, min_aal, allowed_factors, balance, last_payment, created_at, updated_at)
select
    ('Customer.' || g || '@Example.COM')::extensions.citext,
    case when g % 3 = 0 then array['Alias' || g || '@x.io', 'ALIAS' || g || '@Y.io']::extensions.citext[] end,
    (array['aal2', 'aal3', null])[g % 3 + 1]::public.strong_aal,
    case g % 4
        when 0 then '{}'::auth.factor_type[]
        when 1 then array['totp', 'phone']::auth.factor_type[]
        when 2 then array['webauthn', null]::auth.factor_type[]
    end,
    (g * 12.34)::numeric(12, 2),
    case when g % 2 = 0 then row(g * 1.5, 'EUR')::public.money_amount end,
    timestamptz '2026-10-01 00:00+00' + g * interval '1 hour',
    case when g % 2 = 0 then timestamptz '2026-10-01 00:00+00' + g * interval '1 hour' + interval '1 minute' end
from generate_series(1, 120) as g;

grant usage on schema auth, storage, extensions to replicator;
grant select on all tables in schema auth, storage, public to replicator;
