{#
    How incremental models process one run's interval (interval_start / interval_end: see
    interval_var below).

    A run for [start, end) touches the keys of the bronze rows that
      - are versions with _cursor in [start - lookback, end), or
      - are tombstones with _cursor or _deleted_at >= start - lookback (no upper bound: a
        tombstone is stamped when the delete is detected, which may be after `end`; applying
        a delete early is harmless because touched keys are always recomputed from their
        latest bronze row, never from the interval's rows alone).
    For touched keys the model re-selects the latest live version (stg view) and merges it
    with delete+insert on the unique key; the post-hook delete_dropped_keys then removes
    touched keys whose latest bronze row is a tombstone. Without vars (or on a full build)
    every key is processed. See README.md "Incremental models and backfill equivalence".
#}

{#
    An interval bound: var `name` if given (`dbt build --vars ...`), else environment variable
    MEDALLION_<NAME> (how Airflow passes it), else none. Airflow uses the environment because dbt
    re-parses the whole project whenever --vars change (a new interval every run), but only the
    few files that read an environment variable when its value changes (partial parsing).
#}
{% macro interval_var(name) -%}
    {{ return(var(name, none) or env_var('MEDALLION_' ~ name | upper, '') or none) }}
{%- endmacro %}

{# The run's interval as SQL literals: {start, end, lookback_minutes}; start/end none when absent. #}
{% macro run_interval(bronze=none) -%}
    {%- set start = interval_var('interval_start') -%}
    {%- set end = interval_var('interval_end') -%}
    {%- set lookback = var('lookback_minutes', none) -%}
    {%- if lookback is none -%}
        {%- set lookback = source_lookback_minutes(bronze) -%}
    {%- endif -%}
    {{ return({
        'start': ("'" ~ start ~ "'::timestamptz") if start else none,
        'end': ("'" ~ end ~ "'::timestamptz") if end else none,
        'lookback_minutes': lookback | int,
    }) }}
{%- endmacro %}

{#
    meta.replication.lookback_minutes of a source table (table level overrides source level).
    `bronze` is the source table itself, or a staging model over one (stg_<product>__<table>_changes:
    only staging reads bronze): then the source it selects from.
#}
{% macro source_lookback_minutes(bronze) -%}
    {%- set found = namespace(minutes=15, sources=[]) -%}
    {%- if execute and bronze is not none -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model' and node.schema == bronze.schema and node.alias == bronze.identifier -%}
                {%- for dep in node.depends_on.nodes if dep.startswith('source.') -%}
                    {%- do found.sources.append(dep) -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
        {%- for uid, node in graph.sources.items() -%}
            {%- if (node.schema == bronze.schema and node.identifier == bronze.identifier) or uid in found.sources -%}
                {%- set source_level = (node.source_meta or {}).get('replication', {}) -%}
                {%- set table_level = (node.meta or {}).get('replication', {}) -%}
                {%- set found.minutes = table_level.get('lookback_minutes', source_level.get('lookback_minutes', 15)) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(found.minutes) }}
{%- endmacro %}

{# True when this run is incremental and narrowed to an interval. #}
{% macro is_interval_run() -%}
    {{ return(is_incremental() and (interval_var('interval_start') or interval_var('interval_end'))) }}
{%- endmacro %}

{# Predicate: versions (live rows) with _cursor in [start - lookback, end). #}
{% macro versions_in_interval(bronze) -%}
    {%- set iv = run_interval(bronze) -%}
    {%- set conditions = ['_deleted_at is null'] -%}
    {%- if iv.start -%}
        {%- do conditions.append("_cursor >= " ~ iv.start ~ " - interval '" ~ iv.lookback_minutes ~ " minutes'") -%}
    {%- endif -%}
    {%- if iv.end -%}
        {%- do conditions.append("_cursor < " ~ iv.end) -%}
    {%- endif -%}
    ({{ conditions | join(' and ') }})
{%- endmacro %}

{# Predicate: tombstones stamped at or after start - lookback (no upper bound, see the header). #}
{% macro tombstones_in_reach(bronze) -%}
    {%- set iv = run_interval(bronze) -%}
    {%- set conditions = ['_deleted_at is not null'] -%}
    {%- if iv.start -%}
        {%- do conditions.append("greatest(_cursor, _deleted_at) >= " ~ iv.start
            ~ " - interval '" ~ iv.lookback_minutes ~ " minutes'") -%}
    {%- endif -%}
    ({{ conditions | join(' and ') }})
{%- endmacro %}

{#
    Where-clause for an incremental model's import CTE: keep only keys touched in the interval.
    Renders nothing on a full build or when no interval is given (process everything).
#}
{% macro interval_scope(key_column, bronze, bronze_key='id') -%}
    {%- if is_interval_run() %}
    where {{ key_column }} in (
        select touched.{{ bronze_key }}
        from {{ bronze }} as touched
        where {{ versions_in_interval(bronze) }}
            or {{ tombstones_in_reach(bronze) }}
    )
    {%- endif -%}
{%- endmacro %}

{#
    Post-hook of every incremental model: delete target keys whose latest bronze row is a
    tombstone (hard-deleted in the source). Only tombstones in the interval's reach are read.
#}
{% macro delete_dropped_keys(key_column, bronze, bronze_key='id') -%}
    {%- if is_incremental() -%}
    {%- set tombstoned_keys -%}
        {{ bronze_key }} in (
            select tombstones.{{ bronze_key }}
            from {{ bronze }} as tombstones
            where {{ tombstones_in_reach(bronze) }}
        )
    {%- endset -%}
    delete from {{ this }} as target
    using (
        {{ latest_versions(bronze, [bronze_key], where=tombstoned_keys) }}
    ) as latest
    where latest._deleted_at is not null
      and target.{{ key_column }} = latest.{{ bronze_key }}
    {%- else -%}
    {#- a full build selected only live keys: nothing to delete -#}
    select 1
    {%- endif -%}
{%- endmacro %}
