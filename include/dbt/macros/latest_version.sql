{#
    Bronze keeps history: one row per (primary key, _cursor) version, plus tombstone rows
    (_deleted_at set) for keys hard-deleted in the source. Silver wants the current state.

    latest_versions(relation, key_columns, where, live_only)
        The latest bronze row of every key: the row no other row of the same key beats on
        (_cursor, _loaded_at) - so a re-read of a version, or a tombstone stamped with the last
        version's cursor, wins by load time. `where` narrows the keys returned (not the history
        they are compared with); live_only drops keys whose latest row is a tombstone.
    latest_live_version(relation, key_columns, where)
        latest_versions(..., live_only=true): what every stg model selects from.

    Both return a query for an import CTE. Written as an anti-join ("no newer version exists")
    rather than a window or distinct on: Postgres flattens it, so an incremental model's filter
    on the key (touched keys only) is applied before the history is compared, instead of after
    sorting all of it. Relies on (key, _cursor, _loaded_at) being unique in bronze, which the
    replication guarantees (a version is written once; every load has its own _loaded_at).
#}
{% macro latest_versions(relation, key_columns=['id'], where=none, live_only=false) -%}
    {%- set keys = [key_columns] if key_columns is string else key_columns -%}
    select latest.*
    from {{ relation }} as latest
    where not exists (
            select 1
            from {{ relation }} as newer
            where
                {%- for key in keys %}
                newer.{{ key }} = latest.{{ key }} and
                {%- endfor %}
                (coalesce(newer._cursor, '-infinity'), coalesce(newer._loaded_at, '-infinity'))
                > (coalesce(latest._cursor, '-infinity'), coalesce(latest._loaded_at, '-infinity'))
        )
        {%- if where %}
        and {{ where }}
        {%- endif %}
        {%- if live_only %}
        and latest._deleted_at is null
        {%- endif %}
{%- endmacro %}

{% macro latest_live_version(relation, key_columns=['id'], where=none) -%}
    {{ latest_versions(relation, key_columns, where, live_only=true) }}
{%- endmacro %}


{#
    bronze_changes(product, table, key_columns)
        Every bronze row of a table (versions and tombstones), key and change columns only: what the
        incremental core models read to find the keys an interval touched and the keys deleted in the
        source (macros/incremental_interval.sql). A view Postgres inlines, so the interval's predicate
        on _cursor still uses bronze's index; only staging reads bronze.
#}
{% macro bronze_changes(product, table, key_columns=['id']) -%}
    {%- set keys = [key_columns] if key_columns is string else key_columns -%}
with

source as (

    select * from {{ source(product, table) }}

),

final as (

    select
        -- ids
        {%- for key in keys %}
        {{ key }},
        {%- endfor %}

        -- change tracking
        _cursor,
        _loaded_at,
        _deleted_at

    from source

)

select * from final
{%- endmacro %}
