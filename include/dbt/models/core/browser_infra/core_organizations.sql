with

organizations as (

    select * from {{ ref('stg_browser_infra__organizations') }}

),

members as (

    select * from {{ ref('stg_browser_infra__organization_members') }}

),

projects as (

    select * from {{ ref('stg_browser_infra__projects') }}

),

api_keys as (

    select * from {{ ref('stg_browser_infra__api_keys') }}

),

member_counts as (

    select
        organization_id,
        count(*) filter (where not is_deleted) as member_count,
        count(*) filter (where not is_deleted and member_role in ('owner', 'admin')) as admin_count
    from members
    group by organization_id

),

project_counts as (

    select
        organization_id,
        count(*) filter (where not is_deleted) as project_count
    from projects
    group by organization_id

),

api_key_counts as (

    select
        organization_id,
        count(*) filter (where status = 'active') as active_api_key_count,
        count(*) filter (where status = 'revoked') as revoked_api_key_count
    from api_keys
    group by organization_id

),

final as (

    select
        -- ids
        organizations.organization_id,
        organizations.organization_slug,

        -- attributes
        organizations.organization_name,
        organizations.industry,
        organizations.country_code,
        organizations.status,
        organizations.is_sso_enabled,
        organizations.is_deleted,

        -- footprint
        coalesce(member_counts.member_count, 0) as member_count,
        coalesce(member_counts.admin_count, 0) as admin_count,
        coalesce(project_counts.project_count, 0) as project_count,
        coalesce(api_key_counts.active_api_key_count, 0) as active_api_key_count,
        coalesce(api_key_counts.revoked_api_key_count, 0) as revoked_api_key_count,

        -- timestamps
        organizations.created_at,
        organizations.updated_at,
        organizations.deleted_at

    from organizations
    left join member_counts
        on organizations.organization_id = member_counts.organization_id
    left join project_counts
        on organizations.organization_id = project_counts.organization_id
    left join api_key_counts
        on organizations.organization_id = api_key_counts.organization_id

)

select * from final
