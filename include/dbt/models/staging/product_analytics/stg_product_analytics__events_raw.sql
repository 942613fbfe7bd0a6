{{ config(post_hook="{{ ensure_bronze_indexes(source('product_analytics', 'events_raw')) }}") }}

with

source as (

    {{ latest_live_version(source('product_analytics', 'events_raw')) }}

),

final as (

    select
        -- ids
        id as event_id,
        user_id,
        session_id as client_session_id,

        -- attributes
        event_type,
        properties,
        properties ->> 'page' as page,
        source,

        -- timestamps
        created_at,
        ingested_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
