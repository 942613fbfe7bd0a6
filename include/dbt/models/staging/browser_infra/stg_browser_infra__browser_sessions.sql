with

source as (

    {{ latest_live_version(source('browser_infra', 'browser_sessions')) }}

),

final as (

    select
        -- ids
        id as session_id,
        organization_id,
        project_id,

        -- attributes
        lower(trim(status)) as status,
        lower(trim(region)) as region,
        keep_alive as is_keep_alive,
        user_agent,
        substring(user_agent from 'Chrome/([0-9]+)')::int as chrome_major_version,
        metadata ->> 'sdk' as sdk,
        metadata ->> 'sdk_version' as sdk_version,
        (metadata -> 'viewport' ->> 'width')::int as viewport_width,
        (metadata -> 'viewport' ->> 'height')::int as viewport_height,

        -- measures: duration falls back to the timestamps when the source left it empty
        coalesce(
            duration_ms::bigint,
            (extract(epoch from ended_at - started_at) * 1000)::bigint
        ) as duration_ms,
        coalesce(proxy_bytes, 0)::bigint as proxy_bytes,

        -- timestamps
        started_at,
        ended_at,
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
