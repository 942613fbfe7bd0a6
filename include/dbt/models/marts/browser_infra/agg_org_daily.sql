{#-
    Organization x day: every organization on every day from its signup to the reporting end date,
    with its session metrics, activity flags, MRR and the organization attributes to slice by.
    A table, so that the gold_metrics views read gold tables only: a
    silver rebuild replaces its tables with `drop ... cascade`, which would drop any view on them.
-#}
with

daily_sessions as (

    select * from {{ ref('agg_daily_sessions') }}

),

organizations as (

    select * from {{ ref('dim_org') }}

),

subscriptions as (

    select * from {{ ref('fct_subscription') }}

),

mrr as (

    select
        daily_sessions.organization_id,
        daily_sessions.session_date,
        sum(subscriptions.mrr_cents) as mrr_cents
    from daily_sessions
    inner join subscriptions
        on daily_sessions.organization_id = subscriptions.organization_id
        and {{ mrr_counts_on('daily_sessions.session_date') }}
    group by daily_sessions.organization_id, daily_sessions.session_date

),

final as (

    select
        -- grain
        daily_sessions.organization_id,
        daily_sessions.session_date as date_day,

        -- organization attributes (current values)
        organizations.organization_name,
        organizations.industry,
        organizations.country_code,
        organizations.plan_code,
        organizations.cohort_month,
        daily_sessions.session_date - organizations.signup_date as days_since_signup,

        -- sessions
        daily_sessions.sessions_started,
        daily_sessions.finished_sessions,
        daily_sessions.completed_sessions,
        daily_sessions.failed_sessions,
        daily_sessions.timed_out_sessions,
        daily_sessions.error_rate,

        -- usage
        daily_sessions.browser_minutes,
        daily_sessions.proxy_gb,
        daily_sessions.events,
        daily_sessions.error_events,

        -- activity (>= 1 session on the day / in the trailing 7 or 30 days)
        daily_sessions.is_active_1d,
        daily_sessions.is_active_7d,
        daily_sessions.is_active_30d,

        -- revenue (MRR rule: fct_subscription)
        coalesce(mrr.mrr_cents, 0) as mrr_cents,
        coalesce(mrr.mrr_cents, 0) > 0 as is_paying

    from daily_sessions
    inner join organizations
        on daily_sessions.organization_id = organizations.organization_id
    left join mrr
        on daily_sessions.organization_id = mrr.organization_id
        and daily_sessions.session_date = mrr.session_date

)

select * from final
