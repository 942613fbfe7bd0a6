{#
    Bronze keeps history: one row per (primary key, _cursor) version, plus tombstone rows
    (_deleted_at set) for keys hard-deleted in the source. Silver wants the current state.

    latest_versions(relation, key_columns, where, live_only)
        The latest bronze row of every key: order by _cursor desc, then _loaded_at desc (a
        re-read of the same version, or a tombstone stamped with the last cursor, wins by load
        time). `where` narrows the bronze rows read; live_only drops keys whose latest row is
        a tombstone.
    latest_live_version(relation, key_columns, where)
        latest_versions(..., live_only=true): what every stg model selects from.

    Both return a query (select ... from ...) for an import CTE. The extra column
    _version_rank (always 1) is left for the caller's column list to drop.
#}
{% macro latest_versions(relation, key_columns=['id'], where=none, live_only=false) -%}
    {%- set keys = [key_columns] if key_columns is string else key_columns -%}
    select *
    from (
        select
            bronze.*,
            row_number() over (
                partition by {{ keys | join(', ') }}
                order by bronze._cursor desc nulls last, bronze._loaded_at desc nulls last
            ) as _version_rank
        from {{ relation }} as bronze
        {%- if where %}
        where {{ where }}
        {%- endif %}
    ) as versions
    where _version_rank = 1
    {%- if live_only %}
        and _deleted_at is null
    {%- endif %}
{%- endmacro %}

{% macro latest_live_version(relation, key_columns=['id'], where=none) -%}
    {{ latest_versions(relation, key_columns, where, live_only=true) }}
{%- endmacro %}
