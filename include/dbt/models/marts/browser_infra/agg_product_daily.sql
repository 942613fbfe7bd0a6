{#-
    Product usage per day, from the first to the last day with a session. Sessions count on the
    day they started, and so do their events.
-#}
with

runs as (

    select * from {{ ref('fct_browser_run') }}

),

events as (

    select * from {{ ref('fct_event') }}

),

calendar as (

    select series.day::date as date_day
    from (
        select
            min(run_date) as first_day,
            max(run_date) as last_day
        from runs
    ) as bounds
    cross join lateral generate_series(bounds.first_day, bounds.last_day, interval '1 day')
        as series (day)

),

sessions_daily as (

    select
        run_date as date_day,
        count(*) as sessions_started,
        count(*) filter (where is_finished) as finished_sessions,
        count(distinct organization_id) as active_organizations,
        count(distinct project_id) as active_projects,
        count(*) filter (where is_keep_alive) as keep_alive_sessions,
        sum(browser_minutes) as browser_minutes,
        sum(proxy_gb) as proxy_gb,
        sum(duration_ms) filter (where is_finished) as finished_duration_ms
    from runs
    group by run_date

),

events_daily as (

    select
        runs.run_date as date_day,
        count(*) as events,
        count(*) filter (where events.event_category = 'interaction') as interaction_events,
        count(*) filter (where events.event_type = 'navigate') as navigations,
        count(*) filter (where events.event_type = 'screenshot') as screenshots,
        count(*) filter (where events.event_type = 'captcha_solved') as captchas_solved
    from events
    inner join runs
        on events.session_id = runs.session_id
    group by runs.run_date

),

final as (

    select
        -- grain
        calendar.date_day,

        -- sessions
        coalesce(sessions_daily.sessions_started, 0) as sessions_started,
        coalesce(sessions_daily.finished_sessions, 0) as finished_sessions,
        coalesce(sessions_daily.active_organizations, 0) as active_organizations,
        coalesce(sessions_daily.active_projects, 0) as active_projects,
        coalesce(sessions_daily.keep_alive_sessions, 0) as keep_alive_sessions,

        -- usage
        coalesce(sessions_daily.browser_minutes, 0) as browser_minutes,
        coalesce(sessions_daily.proxy_gb, 0) as proxy_gb,
        round(
            sessions_daily.finished_duration_ms / 60000.0 / nullif(sessions_daily.finished_sessions, 0), 3
        ) as avg_session_minutes,

        -- events (of the sessions started that day)
        coalesce(events_daily.events, 0) as events,
        coalesce(events_daily.interaction_events, 0) as interaction_events,
        coalesce(events_daily.navigations, 0) as navigations,
        coalesce(events_daily.screenshots, 0) as screenshots,
        coalesce(events_daily.captchas_solved, 0) as captchas_solved,

        -- rates
        {{ ratio('events_daily.events', 'sessions_daily.sessions_started', 2) }} as events_per_session,
        {{ ratio('sessions_daily.keep_alive_sessions', 'sessions_daily.sessions_started') }}
            as keep_alive_share

    from calendar
    left join sessions_daily
        on calendar.date_day = sessions_daily.date_day
    left join events_daily
        on calendar.date_day = events_daily.date_day

)

select * from final
