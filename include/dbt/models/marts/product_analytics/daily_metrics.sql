{#-
    Daily rollup of the key product metrics, one row per UTC day (the document's
    calculate_daily_metrics(), for every day at once). A user is active on a day when a session
    of theirs started that day, new on the day of their first session ever.
    Revenue: valid, non-duplicate, succeeded transactions.
-#}
with

sessions as (

    select * from {{ ref('user_sessions') }}

),

first_sessions as (

    select
        user_id,
        min(session_date) as first_session_date
    from sessions
    group by user_id

),

session_days as (

    select
        sessions.session_date as date,  -- noqa: RF04
        count(distinct sessions.user_id) as active_users,
        count(distinct sessions.user_id) filter (
            where first_sessions.first_session_date = sessions.session_date
        ) as new_users,
        count(*) as total_sessions,
        round(avg(sessions.duration_seconds), 2) as avg_session_duration_seconds,
        sum(sessions.event_count) as session_events
    from sessions
    inner join first_sessions on sessions.user_id = first_sessions.user_id
    group by sessions.session_date

),

event_days as (

    select
        event_date as date,  -- noqa: RF04
        count(*) as total_events,
        count(*) filter (where is_valid) as valid_events,
        round(avg(quality_score), 4) as avg_quality_score
    from {{ ref('events_clean') }}
    group by event_date

),

revenue_days as (

    select
        transaction_date as date,  -- noqa: RF04
        sum(amount) filter (where status = 'succeeded') as total_revenue,
        count(*) filter (where status = 'succeeded') as successful_transactions,
        count(distinct user_id) filter (where status = 'succeeded') as paying_users
    from {{ ref('transactions_validated') }}
    where is_valid and not is_duplicate
    group by transaction_date

),

api_days as (

    select
        log_date as date,  -- noqa: RF04
        count(*) as api_requests,
        count(*) filter (where is_server_error) as api_server_errors
    from {{ ref('api_logs_clean') }}
    group by log_date

),

days as (

    select date from session_days
    union
    select date from event_days
    union
    select date from revenue_days
    union
    select date from api_days

),

final as (

    select
        days.date,

        -- users and sessions
        coalesce(session_days.active_users, 0) as active_users,
        coalesce(session_days.new_users, 0) as new_users,
        coalesce(session_days.active_users - session_days.new_users, 0) as returning_users,
        coalesce(session_days.total_sessions, 0) as total_sessions,
        session_days.avg_session_duration_seconds,

        -- events
        coalesce(event_days.total_events, 0) as total_events,
        coalesce(event_days.valid_events, 0) as valid_events,
        event_days.avg_quality_score,

        -- revenue
        coalesce(revenue_days.total_revenue, 0) as total_revenue,
        coalesce(revenue_days.successful_transactions, 0) as successful_transactions,
        coalesce(revenue_days.paying_users, 0) as paying_users,

        -- api
        coalesce(api_days.api_requests, 0) as api_requests,
        {{ ratio('api_days.api_server_errors', 'api_days.api_requests') }} as api_error_rate

    from days
    left join session_days on days.date = session_days.date
    left join event_days on days.date = event_days.date
    left join revenue_days on days.date = revenue_days.date
    left join api_days on days.date = api_days.date

)

select * from final
