{#-
    Headline KPIs over the last 24 hours, 7 days and 30 days, each against the period before it.
    The periods end at the top of the hour after the newest event (not at the wall clock): the
    hourly rebuild and a full refresh of the same data agree, and a pipeline that stalls shows
    stale periods instead of empty ones. One row per (metric_name, time_period).
    trend: up / down when the value moved more than 1 % against the previous period, else flat.
-#}
with

period_end as (

    select date_trunc('hour', max(created_at)) + interval '1 hour' as ends_at
    from {{ ref('events_clean') }}

),

periods as (

    select
        lengths.time_period,
        period_end.ends_at - lengths.period_length as period_start,
        period_end.ends_at as period_end,
        period_end.ends_at - 2 * lengths.period_length as previous_start
    from period_end
    cross join (
        values ('24h', interval '1 day'), ('7d', interval '7 days'), ('30d', interval '30 days')
    ) as lengths (time_period, period_length)

),

windows as (

    select
        time_period,
        'current' as which,
        period_start as window_start,
        period_end as window_end
    from periods
    union all
    select
        time_period,
        'previous' as which,
        previous_start as window_start,
        period_start as window_end
    from periods

),

event_stats as (

    select
        windows.time_period,
        windows.which,
        count(distinct events.user_id) as active_users,
        count(events.event_id) as events
    from windows
    left join {{ ref('events_clean') }} as events
        on
        windows.window_start <= events.created_at
        and windows.window_end > events.created_at
        and events.is_valid
    group by windows.time_period, windows.which

),

session_stats as (

    select
        windows.time_period,
        windows.which,
        count(sessions.session_id) as sessions,
        round(avg(sessions.duration_seconds), 2) as avg_session_duration
    from windows
    left join {{ ref('user_sessions') }} as sessions
        on
        windows.window_start <= sessions.started_at
        and windows.window_end > sessions.started_at
    group by windows.time_period, windows.which

),

revenue_stats as (

    select
        windows.time_period,
        windows.which,
        coalesce(sum(charges.amount), 0) as revenue,
        count(charges.transaction_id) as transactions_count
    from windows
    left join {{ ref('transactions_validated') }} as charges
        on
        windows.window_start <= charges.created_at
        and windows.window_end > charges.created_at
        and charges.is_valid
        and not charges.is_duplicate
        and charges.status = 'succeeded'
    group by windows.time_period, windows.which

),

api_stats as (

    select
        windows.time_period,
        windows.which,
        round(
            100.0 * count(api_logs.log_id) filter (where api_logs.is_server_error)
            / nullif(count(api_logs.log_id), 0),
            2
        ) as api_error_rate,
        round(avg(api_logs.response_time_ms) filter (where api_logs.is_valid), 2) as avg_response_time
    from windows
    left join {{ ref('api_logs_clean') }} as api_logs
        on
        windows.window_start <= api_logs.created_at
        and windows.window_end > api_logs.created_at
    group by windows.time_period, windows.which

),

stats as (

    select
        event_stats.time_period,
        event_stats.which,
        event_stats.active_users,
        event_stats.events,
        session_stats.sessions,
        session_stats.avg_session_duration,
        revenue_stats.revenue,
        revenue_stats.transactions_count,
        api_stats.api_error_rate,
        api_stats.avg_response_time
    from event_stats
    inner join session_stats
        on event_stats.time_period = session_stats.time_period and event_stats.which = session_stats.which
    inner join revenue_stats
        on event_stats.time_period = revenue_stats.time_period and event_stats.which = revenue_stats.which
    inner join api_stats
        on event_stats.time_period = api_stats.time_period and event_stats.which = api_stats.which

),

metrics as (

    select
        stats.time_period,
        stats.which,
        metric.metric_name,
        metric.metric_unit,
        metric.metric_value
    from stats
    cross join lateral (
        values
        ('active_users', 'users', stats.active_users::numeric),
        ('events', 'events', stats.events::numeric),
        ('sessions', 'sessions', stats.sessions::numeric),
        ('avg_session_duration', 'seconds', stats.avg_session_duration),
        ('revenue', 'USD', stats.revenue),
        ('transactions', 'transactions', stats.transactions_count::numeric),
        ('api_error_rate', 'percent', stats.api_error_rate),
        ('avg_api_response_time', 'ms', stats.avg_response_time)
    ) as metric (metric_name, metric_unit, metric_value)

),

final as (

    select
        current_period.metric_name,
        current_period.metric_value,
        current_period.metric_unit,
        current_period.time_period,
        periods.period_start,
        periods.period_end,
        previous_period.metric_value as previous_value,
        round(
            100 * (current_period.metric_value - previous_period.metric_value)
            / nullif(previous_period.metric_value, 0), 2
        ) as change_percentage,
        case
            when previous_period.metric_value is null or previous_period.metric_value = 0
                or current_period.metric_value is null then 'flat'
            when current_period.metric_value > previous_period.metric_value * 1.01 then 'up'
            when current_period.metric_value < previous_period.metric_value * 0.99 then 'down'
            else 'flat'
        end as trend
    from metrics as current_period
    inner join metrics as previous_period
        on current_period.metric_name = previous_period.metric_name
        and current_period.time_period = previous_period.time_period
        and previous_period.which = 'previous'
    inner join periods on current_period.time_period = periods.time_period
    where current_period.which = 'current'

)

select * from final
