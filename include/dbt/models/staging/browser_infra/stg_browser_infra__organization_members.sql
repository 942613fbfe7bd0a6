with

source as (

    {{ latest_live_version(source('browser_infra', 'organization_members')) }}

),

final as (

    select
        -- ids
        id as membership_id,
        organization_id,
        user_id,

        -- attributes
        lower(trim(role)) as member_role,

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
