with

source as (

    {{ latest_live_version(source('browser_infra', 'session_events')) }}

),

final as (

    select
        -- ids
        id as event_id,
        session_id,
        organization_id,

        -- attributes
        lower(trim(event_type)) as event_type,
        payload ->> 'url' as page_url,
        payload ->> 'message' as error_message,

        -- timestamps
        occurred_at,
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
