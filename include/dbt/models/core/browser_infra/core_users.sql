with

users as (

    select * from {{ ref('stg_browser_infra__users') }}

),

members as (

    select * from {{ ref('stg_browser_infra__organization_members') }}
    where not is_deleted

),

-- A user's primary organization: the one where they hold the highest role, earliest first.
ranked_memberships as (

    select
        user_id,
        organization_id,
        member_role,
        count(*) over (partition by user_id) as organization_count,
        row_number() over (
            partition by user_id
            order by
                case member_role when 'owner' then 1 when 'admin' then 2 when 'member' then 3 else 4 end,
                created_at,
                organization_id
        ) as membership_rank
    from members

),

primary_membership as (

    select * from ranked_memberships
    where membership_rank = 1

),

final as (

    select
        -- ids
        users.user_id,
        primary_membership.organization_id as primary_organization_id,

        -- attributes
        users.email,
        users.email_domain,
        users.full_name,
        primary_membership.member_role as primary_role,
        coalesce(primary_membership.organization_count, 0) as organization_count,
        users.is_deleted,

        -- timestamps
        users.last_sign_in_at,
        users.created_at,
        users.updated_at,
        users.deleted_at

    from users
    left join primary_membership
        on users.user_id = primary_membership.user_id

)

select * from final
