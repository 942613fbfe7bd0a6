{#-
    Monthly cohorts: a user belongs to the month (UTC) of their first session; month_n_users are
    the cohort's users with a session in the n-th month after. A retention is null while that
    month has not started yet (no session in the data reaches it), so young cohorts do not read
    as churned. avg_revenue_per_user: the cohort's revenue (valid, non-duplicate, succeeded, all
    time) per cohort user.
-#}
with

sessions as (

    select
        user_id,
        {{ month_start('session_date') }} as activity_month
    from {{ ref('user_sessions') }}

),

cohort_of as (

    select
        user_id,
        min(activity_month) as cohort_month
    from sessions
    group by user_id

),

activity as (

    select distinct
        cohort_of.cohort_month,
        sessions.user_id,
        (
            (extract(year from sessions.activity_month) - extract(year from cohort_of.cohort_month)) * 12
            + extract(month from sessions.activity_month) - extract(month from cohort_of.cohort_month))::int
            as month_number
    from sessions
    inner join cohort_of on sessions.user_id = cohort_of.user_id

),

revenue as (

    select
        cohort_of.cohort_month,
        sum(charges.amount) as total_revenue
    from {{ ref('transactions_validated') }} as charges
    inner join cohort_of on charges.user_id = cohort_of.user_id
    where charges.is_valid and not charges.is_duplicate and charges.status = 'succeeded'
    group by cohort_of.cohort_month

),

last_month as (

    select max(activity_month) as activity_month from sessions

),

cohorts as (

    select
        cohort_month,
        count(*) filter (where month_number = 0) as month_0_users,
        count(*) filter (where month_number = 1) as month_1_users,
        count(*) filter (where month_number = 2) as month_2_users,
        count(*) filter (where month_number = 3) as month_3_users
    from activity
    group by cohort_month

),

final as (

    select
        cohorts.cohort_month,
        cohorts.month_0_users,
        cohorts.month_1_users,
        cohorts.month_2_users,
        cohorts.month_3_users,
        case when cohorts.cohort_month + interval '1 month' <= last_month.activity_month
                then {{ ratio('cohorts.month_1_users', 'cohorts.month_0_users') }}
        end as month_1_retention,
        case when cohorts.cohort_month + interval '2 months' <= last_month.activity_month
                then {{ ratio('cohorts.month_2_users', 'cohorts.month_0_users') }}
        end as month_2_retention,
        case when cohorts.cohort_month + interval '3 months' <= last_month.activity_month
                then {{ ratio('cohorts.month_3_users', 'cohorts.month_0_users') }}
        end as month_3_retention,
        coalesce(revenue.total_revenue, 0) as total_revenue,
        round(coalesce(revenue.total_revenue, 0) / cohorts.month_0_users, 2) as avg_revenue_per_user
    from cohorts
    cross join last_month
    left join revenue on cohorts.cohort_month = revenue.cohort_month

)

select * from final
