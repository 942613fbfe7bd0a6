with

source as (

    {{ latest_live_version(source('browser_infra', 'users')) }}

),

final as (

    select
        -- ids
        id as user_id,

        -- attributes
        lower(trim(email)) as email,
        split_part(lower(trim(email)), '@', 2) as email_domain,
        nullif(trim(full_name), '') as full_name,
        nullif(trim(avatar_url), '') as avatar_url,

        -- soft delete
        deleted_at,
        deleted_at is not null as is_deleted,

        -- timestamps
        last_sign_in_at,
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
