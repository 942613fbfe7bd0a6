{#-
    Every bronze row of session_events (versions and tombstones), key and change columns only: what the
    incremental core models read to find the keys an interval touched and the keys deleted in the
    source (macros/incremental_interval.sql). A view Postgres inlines, so the interval's predicate
    on _cursor still uses bronze's index; only staging reads bronze.
-#}
with

source as (

    select * from {{ source('browser_infra', 'session_events') }}

),

final as (

    select
        -- ids
        id,

        -- change tracking
        _cursor,
        _loaded_at,
        _deleted_at

    from source

)

select * from final
