{#- Product KPIs per day, with trailing 7-day values. -#}
with

product as (

    select * from {{ ref('agg_product_daily') }}

),

with_trailing as (

    select
        *,
        sum(sessions_started) over last_7_days as sessions_7d,
        sum(browser_minutes) over last_7_days as browser_minutes_7d,
        sum(events) over last_7_days as events_7d,
        sum(captchas_solved) over last_7_days as captchas_solved_7d
    from product
    window last_7_days as (order by date_day range between interval '6 days' preceding and current row)

),

final as (

    select
        -- grain
        date_day,

        -- the day
        sessions_started,
        active_organizations,
        active_projects,
        browser_minutes,
        avg_session_minutes,
        events_per_session,
        keep_alive_share,

        -- trailing 7 days
        sessions_7d,
        browser_minutes_7d,
        {{ ratio('events_7d', 'sessions_7d', 2) }} as events_per_session_7d,
        captchas_solved_7d

    from with_trailing

)

select * from final
