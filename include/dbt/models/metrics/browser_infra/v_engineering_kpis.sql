{#-
    Reliability KPIs per day over all regions. Error rate = (failed + timed_out) / finished
    sessions; worst_region_* shows the region that did worst that day.
-#}
with

engineering as (

    select * from {{ ref('agg_engineering_daily') }}

),

daily as (

    select
        date_day,
        sum(sessions_started) as sessions_started,
        sum(finished_sessions) as finished_sessions,
        sum(failed_sessions) as failed_sessions,
        sum(timed_out_sessions) as timed_out_sessions,
        sum(console_errors + network_errors) as error_events,
        max(error_rate) as worst_region_error_rate,
        max(p95_duration_ms) as worst_region_p95_duration_ms
    from engineering
    group by date_day

),

with_trailing as (

    select
        *,
        sum(failed_sessions + timed_out_sessions) over last_7_days as error_sessions_7d,
        sum(finished_sessions) over last_7_days as finished_sessions_7d
    from daily
    window last_7_days as (order by date_day range between interval '6 days' preceding and current row)

),

final as (

    select
        -- grain
        date_day,

        -- the day
        sessions_started,
        finished_sessions,
        {{ ratio('failed_sessions + timed_out_sessions', 'finished_sessions') }} as error_rate,
        {{ ratio('timed_out_sessions', 'finished_sessions') }} as timeout_rate,
        {{ ratio('error_events', 'sessions_started', 3) }} as error_events_per_session,
        worst_region_error_rate,
        worst_region_p95_duration_ms,

        -- trailing 7 days
        {{ ratio('error_sessions_7d', 'finished_sessions_7d') }} as error_rate_7d

    from with_trailing

)

select * from final
