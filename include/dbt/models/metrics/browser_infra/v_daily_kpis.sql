{#- One row per day with the headline KPIs, for the front page of the dashboard. -#}
with

spine as (

    select * from {{ ref('metric_spine_daily') }}

),

growth as (

    select * from {{ ref('agg_growth_daily') }}

),

daily as (

    select
        date_day,
        sum(sessions_started) as sessions_started,
        sum(finished_sessions) as finished_sessions,
        sum(failed_sessions + timed_out_sessions) as error_sessions,
        sum(browser_minutes) as browser_minutes,
        count(*) filter (where is_active_1d) as active_organizations_1d,
        count(*) filter (where is_active_30d) as active_organizations_30d,
        sum(mrr_cents) as mrr_cents
    from spine
    group by date_day

),

final as (

    select
        -- grain
        daily.date_day,

        -- usage
        daily.sessions_started,
        daily.finished_sessions,
        daily.browser_minutes,

        -- reliability: (failed + timed_out) / finished
        {{ ratio('daily.error_sessions', 'daily.finished_sessions') }} as error_rate,

        -- customers
        growth.new_organizations,
        daily.active_organizations_1d,
        daily.active_organizations_30d,

        -- revenue
        round(daily.mrr_cents / 100.0, 2) as mrr

    from daily
    inner join growth
        on daily.date_day = growth.date_day

)

select * from final
