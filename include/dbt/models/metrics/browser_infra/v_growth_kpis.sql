{#- Growth KPIs per day with trailing 7-day sums and their change on the 7 days before. -#}
with

growth as (

    select * from {{ ref('agg_growth_daily') }}

),

with_trailing as (

    select
        *,
        sum(new_organizations) over last_7_days as new_organizations_7d,
        sum(new_organizations) over previous_7_days as new_organizations_prev_7d,
        sum(activated_organizations) over last_7_days as activated_organizations_7d,
        sum(new_paid_subscriptions - churned_paid_subscriptions) over last_7_days
            as net_new_paid_subscriptions_7d,
        lag(mrr_cents, 30) over (order by date_day) as mrr_cents_30d_ago
    from growth
    window
        last_7_days as (order by date_day range between interval '6 days' preceding and current row),
        previous_7_days as (
            order by date_day range between interval '13 days' preceding and interval '7 days' preceding
        )

),

final as (

    select
        -- grain
        date_day,

        -- acquisition
        cumulative_organizations,
        new_organizations_7d,
        coalesce(new_organizations_prev_7d, 0) as new_organizations_prev_7d,
        {{ ratio('new_organizations_7d - coalesce(new_organizations_prev_7d, 0)',
                 'new_organizations_prev_7d') }} as new_organizations_wow_growth,
        activated_organizations_7d,

        -- engagement
        active_organizations_30d,
        {{ ratio('active_organizations_30d', 'cumulative_organizations') }} as active_share_30d,

        -- revenue
        round(mrr_cents / 100.0, 2) as mrr,
        paying_organizations,
        net_new_paid_subscriptions_7d,
        {{ ratio('mrr_cents - mrr_cents_30d_ago', 'mrr_cents_30d_ago') }} as mrr_growth_30d

    from with_trailing

)

select * from final
