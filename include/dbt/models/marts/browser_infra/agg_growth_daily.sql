{#-
    Company-wide growth per day, from the first organization signup to the reporting end date
    (the last day with a session).
-#}
with

organizations as (

    select * from {{ ref('dim_org') }}

),

users as (

    select * from {{ ref('dim_user') }}

),

subscriptions as (

    select * from {{ ref('fct_subscription') }}

),

daily_sessions as (

    select * from {{ ref('agg_daily_sessions') }}

),

bounds as (

    select
        (select min(signup_date) from organizations) as first_day,
        (select max(session_date) from daily_sessions) as reporting_end_date

),

calendar as (

    select series.day::date as date_day
    from bounds
    cross join lateral generate_series(bounds.first_day, bounds.reporting_end_date, interval '1 day')
        as series (day)

),

signups as (

    select
        signup_date as date_day,
        count(*) as new_organizations
    from organizations
    group by signup_date

),

user_signups as (

    select
        signup_date as date_day,
        count(*) as new_users
    from users
    group by signup_date

),

activations as (

    select
        {{ utc_date('first_session_at') }} as date_day,
        count(*) as activated_organizations
    from organizations
    where first_session_at is not null
    group by {{ utc_date('first_session_at') }}

),

activity as (

    select
        session_date as date_day,
        count(*) filter (where is_active_1d) as active_organizations_1d,
        count(*) filter (where is_active_7d) as active_organizations_7d,
        count(*) filter (where is_active_30d) as active_organizations_30d
    from daily_sessions
    group by session_date

),

paid_starts as (

    select
        mrr_start_date as date_day,
        count(*) as new_paid_subscriptions
    from subscriptions
    where mrr_cents > 0 and mrr_start_date is not null
    group by mrr_start_date

),

paid_ends as (

    select
        mrr_end_date as date_day,
        count(*) as churned_paid_subscriptions
    from subscriptions
    where mrr_cents > 0 and mrr_end_date is not null
    group by mrr_end_date

),

mrr as (

    select
        calendar.date_day,
        coalesce(sum(subscriptions.mrr_cents), 0) as mrr_cents,
        count(distinct subscriptions.organization_id) filter (
            where subscriptions.mrr_cents > 0
        ) as paying_organizations
    from calendar
    left join subscriptions
        on {{ mrr_counts_on('calendar.date_day') }}
    group by calendar.date_day

),

final as (

    select
        -- grain
        calendar.date_day,

        -- acquisition
        coalesce(signups.new_organizations, 0) as new_organizations,
        sum(coalesce(signups.new_organizations, 0)) over (order by calendar.date_day)
            as cumulative_organizations,
        coalesce(user_signups.new_users, 0) as new_users,
        sum(coalesce(user_signups.new_users, 0)) over (order by calendar.date_day) as cumulative_users,
        coalesce(activations.activated_organizations, 0) as activated_organizations,

        -- engagement (active organization: >= 1 session on the day / in the trailing 7 or 30 days)
        coalesce(activity.active_organizations_1d, 0) as active_organizations_1d,
        coalesce(activity.active_organizations_7d, 0) as active_organizations_7d,
        coalesce(activity.active_organizations_30d, 0) as active_organizations_30d,

        -- revenue
        coalesce(paid_starts.new_paid_subscriptions, 0) as new_paid_subscriptions,
        coalesce(paid_ends.churned_paid_subscriptions, 0) as churned_paid_subscriptions,
        mrr.mrr_cents,
        mrr.paying_organizations

    from calendar
    inner join mrr
        on calendar.date_day = mrr.date_day
    left join signups
        on calendar.date_day = signups.date_day
    left join user_signups
        on calendar.date_day = user_signups.date_day
    left join activations
        on calendar.date_day = activations.date_day
    left join activity
        on calendar.date_day = activity.date_day
    left join paid_starts
        on calendar.date_day = paid_starts.date_day
    left join paid_ends
        on calendar.date_day = paid_ends.date_day

)

select * from final
