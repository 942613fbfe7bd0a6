{{ config(post_hook="{{ ensure_bronze_indexes(source('product_analytics', 'user_actions_raw')) }}") }}

with

source as (

    {{ latest_live_version(source('product_analytics', 'user_actions_raw')) }}

),

final as (

    select
        -- ids
        id as action_id,
        user_id,
        entity_id,

        -- attributes
        lower(trim(action)) as action,  -- noqa: RF04
        lower(trim(entity_type)) as entity_type,
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
