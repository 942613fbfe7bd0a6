{#-
    Reliability per day and region (days and regions with at least one session). Error rate =
    (failed + timed_out) / finished sessions; durations are over finished sessions; error events
    (console_error, network_error) count on the day their session started.
-#}
with

runs as (

    select * from {{ ref('fct_browser_run') }}

),

events as (

    select * from {{ ref('fct_event') }}

),

sessions_daily as (

    select
        run_date as date_day,
        region,
        count(*) as sessions_started,
        count(*) filter (where is_finished) as finished_sessions,
        count(*) filter (where is_completed) as completed_sessions,
        count(*) filter (where is_failed) as failed_sessions,
        count(*) filter (where is_timed_out) as timed_out_sessions,
        percentile_cont(0.5) within group (order by duration_ms) filter (where is_finished)
            as p50_duration_ms,
        percentile_cont(0.95) within group (order by duration_ms) filter (where is_finished)
            as p95_duration_ms
    from runs
    group by run_date, region

),

error_events as (

    select
        runs.run_date as date_day,
        runs.region,
        count(*) filter (where events.event_type = 'console_error') as console_errors,
        count(*) filter (where events.event_type = 'network_error') as network_errors
    from events
    inner join runs
        on events.session_id = runs.session_id
    where events.is_error
    group by runs.run_date, runs.region

),

final as (

    select
        -- grain
        sessions_daily.date_day,
        sessions_daily.region,

        -- sessions
        sessions_daily.sessions_started,
        sessions_daily.finished_sessions,
        sessions_daily.completed_sessions,
        sessions_daily.failed_sessions,
        sessions_daily.timed_out_sessions,

        -- reliability
        {{ ratio('sessions_daily.failed_sessions + sessions_daily.timed_out_sessions',
                 'sessions_daily.finished_sessions') }} as error_rate,
        {{ ratio('sessions_daily.timed_out_sessions', 'sessions_daily.finished_sessions') }}
            as timeout_rate,

        -- latency (finished sessions, milliseconds)
        round(sessions_daily.p50_duration_ms::numeric, 1) as p50_duration_ms,
        round(sessions_daily.p95_duration_ms::numeric, 1) as p95_duration_ms,

        -- error events
        coalesce(error_events.console_errors, 0) as console_errors,
        coalesce(error_events.network_errors, 0) as network_errors,
        {{ ratio('coalesce(error_events.console_errors, 0) + coalesce(error_events.network_errors, 0)',
                 'sessions_daily.sessions_started', 3) }} as error_events_per_session

    from sessions_daily
    left join error_events
        on sessions_daily.date_day = error_events.date_day
        and sessions_daily.region = error_events.region

)

select * from final
