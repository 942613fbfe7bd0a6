{{ config(post_hook="{{ ensure_bronze_indexes(source('product_analytics', 'api_logs_raw')) }}") }}

with

source as (

    {{ latest_live_version(source('product_analytics', 'api_logs_raw')) }}

),

final as (

    select
        -- ids
        id as log_id,
        user_id,

        -- request and response
        method,
        endpoint,
        status_code,
        response_time_ms,
        properties,
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
