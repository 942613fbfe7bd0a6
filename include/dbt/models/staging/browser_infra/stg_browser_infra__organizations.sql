with

source as (

    {{ latest_live_version(source('browser_infra', 'organizations')) }}

),

final as (

    select
        -- ids
        id as organization_id,

        -- attributes
        trim(name) as organization_name,
        lower(trim(slug)) as organization_slug,
        nullif(lower(trim(industry)), '') as industry,
        nullif(upper(trim(country)), '') as country_code,
        lower(trim(status)) as status,
        coalesce((settings ->> 'sso')::boolean, false) as is_sso_enabled,

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
