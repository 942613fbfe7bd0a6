{#
    Incremental helpers for append-only sources (product analytics): their rows never change, so
    a run processes the rows that LANDED in its interval (bronze _cursor = ingested_at), whenever
    they happened. See models/core/product_analytics/ and README.md "Product analytics".
#}

{# meta.replication.lookback_minutes of source table `source_name.table_name` (table over source level). #}
{% macro declared_lookback_minutes(source_name, table_name) -%}
    {%- set found = namespace(minutes=15) -%}
    {%- if execute -%}
        {%- for node in graph.sources.values() -%}
            {%- if node.source_name == source_name and node.name == table_name -%}
                {%- set source_level = (node.source_meta or {}).get('replication', {}) -%}
                {%- set table_level = (node.meta or {}).get('replication', {}) -%}
                {%- set found.minutes = table_level.get('lookback_minutes', source_level.get('lookback_minutes', 15)) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(found.minutes) }}
{%- endmacro %}

{#
    Predicate: `column` (an ingested_at / _cursor) in this run's interval [start - lookback, end),
    the lookback of source table `source_name.table_name`. `true` when the run has no interval or
    builds in full (every row is new).
#}
{% macro landed_in_interval(column, source_name, table_name) -%}
    {%- if is_interval_run() -%}
        {%- set start = interval_var('interval_start') -%}
        {%- set end = interval_var('interval_end') -%}
        {%- set conditions = [] -%}
        {%- if start -%}
            {%- do conditions.append(column ~ " >= '" ~ start ~ "'::timestamptz - interval '"
                ~ declared_lookback_minutes(source_name, table_name) ~ " minutes'") -%}
        {%- endif -%}
        {%- if end -%}
            {%- do conditions.append(column ~ " < '" ~ end ~ "'::timestamptz") -%}
        {%- endif -%}
        ({{ conditions | join(' and ') }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#
    Post-hook of a staging view over an append-only bronze table: the btree indexes an incremental
    run's reads need, so a run that reads a few thousand new rows costs the same at 10M rows in
    bronze as at 1M (bench/analytics_bench.py):
      - (key, _cursor, _loaded_at): the view's latest-version lookup (newer.id = latest.id) probes
        the key instead of hashing the whole table;
      - (_cursor): the interval's rows (`_cursor >= start - lookback`). Bronze only has a BRIN on
        _cursor (plugins/medallion/replication.py), whose block ranges are summarised later by
        autovacuum: right after a large load the planner could only scan the whole table;
      - each column of `also`: other lookups of the incremental path (transactions by external_id).
    `if not exists` makes them a catalog lookup after the first run. The first run builds them
    (seconds at 10M rows) under a lock that briefly queues that table's replication.
#}
{% macro ensure_bronze_indexes(relation, key_columns=['id'], also=[]) -%}
    create index if not exists {{ relation.identifier }}__key_cursor
    on {{ relation }} ({{ key_columns | join(', ') }}, _cursor, _loaded_at);
    create index if not exists {{ relation.identifier }}__cursor on {{ relation }} (_cursor)
    {%- for column in also %};
    create index if not exists {{ relation.identifier }}__{{ column }} on {{ relation }} ({{ column }})
    {%- endfor %}
{%- endmacro %}

{#
    Pre-hook of user_sessions on an interval run: which users' sessions to rebuild, and from when.

    A new event of user u at t (the earliest new one) can only change u's sessions that end at or
    after t - gap (an earlier session is followed by a gap longer than the timeout whatever
    arrives); every later session may merge with it. So the rebuild starts at the earliest of t
    and the start of the first session ending at or after t - gap: an event there is a session
    start in the full rebuild too (the gap before it is still over the timeout). Those sessions
    are deleted here, and the model re-sessionises u's events from that point and appends them.
    A temp table dropped at commit: the model's SQL (same transaction) reads it.
    A run without an interval rebuilds everything (the table is emptied).
#}
{% macro prepare_session_rebuild(events, gap) -%}
    {%- if is_incremental() and is_interval_run() -%}
    create temp table user_sessions_rebuild on commit drop as
    with new_events as (
        select user_id, min(created_at) as first_new_at
        from {{ events }}
        where is_valid and user_id is not null
            and {{ landed_in_interval('ingested_at', 'product_analytics', 'events_raw') }}
        group by user_id
    )
    select
        new_events.user_id,
        least(new_events.first_new_at, min(sessions.started_at)) as rebuild_from
    from new_events
    left join {{ this }} as sessions
        on sessions.user_id = new_events.user_id
        and sessions.ended_at >= new_events.first_new_at - interval '{{ gap }}'
    group by new_events.user_id, new_events.first_new_at;
    analyze user_sessions_rebuild;
    delete from {{ this }} as sessions
    using user_sessions_rebuild as rebuild
    where sessions.user_id = rebuild.user_id and sessions.started_at >= rebuild.rebuild_from
    {%- elif is_incremental() -%}
    truncate {{ this }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}
