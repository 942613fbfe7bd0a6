with

source as (

    {{ latest_live_version(source('browser_infra', 'api_keys')) }}

),

final as (

    select
        -- ids
        id as api_key_id,
        organization_id,
        project_id,

        -- attributes (never the secret: bronze holds only the prefix)
        trim(name) as key_name,
        key_prefix,
        lower(trim(status)) as status,

        -- timestamps
        last_used_at,
        revoked_at,
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
