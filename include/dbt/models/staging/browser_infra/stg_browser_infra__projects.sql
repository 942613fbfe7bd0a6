with

source as (

    {{ latest_live_version(source('browser_infra', 'projects')) }}

),

final as (

    select
        -- ids
        id as project_id,
        organization_id,

        -- attributes
        trim(name) as project_name,
        lower(trim(default_region)) as default_region,

        -- soft delete
        deleted_at,
        deleted_at is not null as is_deleted,

        -- timestamps
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
