{#-
    Organization x day, dense: every day from the organization's signup to the reporting end
    date (the last day with a session), zero-filled, so trailing windows are row windows.
    Events count on the day their session started.
-#}
with

organizations as (

    select * from {{ ref('dim_org') }}

),

runs as (

    select * from {{ ref('fct_browser_run') }}

),

events as (

    select * from {{ ref('fct_event') }}

),

reporting_end as (

    select max(run_date) as reporting_end_date from runs

),

spine as (

    select
        organizations.organization_id,
        calendar.day::date as session_date
    from organizations
    cross join reporting_end
    cross join lateral generate_series(
        organizations.signup_date, reporting_end.reporting_end_date, interval '1 day'
    ) as calendar (day)

),

events_per_run as (

    select
        session_id,
        count(*) as events,
        count(*) filter (where is_error) as error_events
    from events
    group by session_id

),

daily as (

    select
        runs.organization_id,
        runs.run_date as session_date,
        count(*) as sessions_started,
        count(*) filter (where runs.is_finished) as finished_sessions,
        count(*) filter (where runs.is_completed) as completed_sessions,
        count(*) filter (where runs.is_failed) as failed_sessions,
        count(*) filter (where runs.is_timed_out) as timed_out_sessions,
        count(*) filter (where not runs.is_finished) as unfinished_sessions,
        count(*) filter (where runs.is_keep_alive) as keep_alive_sessions,
        coalesce(sum(runs.duration_ms) filter (where runs.is_finished), 0) as finished_duration_ms,
        coalesce(sum(runs.browser_minutes), 0) as browser_minutes,
        coalesce(sum(runs.proxy_gb), 0) as proxy_gb,
        coalesce(sum(events_per_run.events), 0) as events,
        coalesce(sum(events_per_run.error_events), 0) as error_events
    from runs
    left join events_per_run
        on runs.session_id = events_per_run.session_id
    group by runs.organization_id, runs.run_date

),

filled as (

    select
        spine.organization_id,
        spine.session_date,
        coalesce(daily.sessions_started, 0) as sessions_started,
        coalesce(daily.finished_sessions, 0) as finished_sessions,
        coalesce(daily.completed_sessions, 0) as completed_sessions,
        coalesce(daily.failed_sessions, 0) as failed_sessions,
        coalesce(daily.timed_out_sessions, 0) as timed_out_sessions,
        coalesce(daily.unfinished_sessions, 0) as unfinished_sessions,
        coalesce(daily.keep_alive_sessions, 0) as keep_alive_sessions,
        coalesce(daily.finished_duration_ms, 0) as finished_duration_ms,
        coalesce(daily.browser_minutes, 0) as browser_minutes,
        coalesce(daily.proxy_gb, 0) as proxy_gb,
        coalesce(daily.events, 0) as events,
        coalesce(daily.error_events, 0) as error_events
    from spine
    left join daily
        on spine.organization_id = daily.organization_id
        and spine.session_date = daily.session_date

),

final as (

    select
        -- grain
        organization_id,
        session_date,

        -- sessions
        sessions_started,
        finished_sessions,
        completed_sessions,
        failed_sessions,
        timed_out_sessions,
        unfinished_sessions,
        keep_alive_sessions,

        -- usage
        finished_duration_ms,
        browser_minutes,
        proxy_gb,
        events,
        error_events,

        -- rates: error rate = (failed + timed_out) / finished sessions, null without finished ones
        {{ ratio('failed_sessions + timed_out_sessions', 'finished_sessions') }} as error_rate,
        round(finished_duration_ms / 60000.0 / nullif(finished_sessions, 0), 3) as avg_session_minutes,

        -- activity: active on a day = started >= 1 session that day; 7d / 30d = in the trailing
        -- 7 / 30 days, the day included
        sessions_started > 0 as is_active_1d,
        sum(sessions_started) over (
            partition by organization_id order by session_date
            rows between 6 preceding and current row
        ) > 0 as is_active_7d,
        sum(sessions_started) over (
            partition by organization_id order by session_date
            rows between 29 preceding and current row
        ) > 0 as is_active_30d

    from filled

)

select * from final
