with

organizations as (

    select * from {{ ref('core_organizations') }}

),

subscriptions as (

    select * from {{ ref('fct_subscription') }}

),

runs as (

    select * from {{ ref('fct_browser_run') }}

),

-- An organization's current subscription: the most recently started one.
current_subscription as (

    select *
    from (
        select
            subscriptions.*,
            row_number() over (
                partition by subscriptions.organization_id
                order by subscriptions.started_at desc, subscriptions.subscription_id asc
            ) as subscription_rank
        from subscriptions
    ) as ranked
    where subscription_rank = 1

),

activity as (

    select
        organization_id,
        min(started_at) as first_session_at,
        max(started_at) as last_session_at,
        count(*) as lifetime_sessions
    from runs
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
        organizations.member_count,
        organizations.project_count,

        -- signup cohort
        {{ utc_date('organizations.created_at') }} as signup_date,
        {{ month_start(utc_date('organizations.created_at')) }} as cohort_month,

        -- current subscription
        current_subscription.subscription_id as current_subscription_id,
        current_subscription.plan_code,
        current_subscription.plan_name,
        current_subscription.status as subscription_status,
        current_subscription.billing_interval,
        case
            when current_subscription.is_mrr_active then current_subscription.mrr_cents
            else 0
        end as current_mrr_cents,
        coalesce(current_subscription.is_mrr_active and current_subscription.mrr_cents > 0, false)
            as is_paying,

        -- activity
        activity.first_session_at,
        activity.last_session_at,
        coalesce(activity.lifetime_sessions, 0) as lifetime_sessions,

        -- timestamps
        organizations.created_at,
        organizations.deleted_at

    from organizations
    left join current_subscription
        on organizations.organization_id = current_subscription.organization_id
    left join activity
        on organizations.organization_id = activity.organization_id

)

select * from final
