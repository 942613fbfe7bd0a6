{#- Operations KPIs per day: billing collection, receivables, metering drift, stuck sessions. -#}
with

ops as (

    select * from {{ ref('agg_ops_daily') }}

),

with_trailing as (

    select
        *,
        sum(invoiced_cents) over last_30_days as invoiced_cents_30d,
        sum(collected_cents) over last_30_days as collected_cents_30d
    from ops
    window last_30_days as (order by date_day range between interval '29 days' preceding and current row)

),

final as (

    select
        -- grain
        date_day,

        -- billing (dollars)
        round(invoiced_cents_30d / 100.0, 2) as invoiced_30d,
        round(collected_cents_30d / 100.0, 2) as collected_30d,
        open_invoices,
        round(outstanding_cents / 100.0, 2) as outstanding,

        -- api keys
        active_api_keys,
        api_keys_revoked,

        -- metering drift: metered minus observed minutes, as a share of observed
        metering_gap_minutes,
        {{ ratio('metering_gap_minutes', 'observed_browser_minutes') }} as metering_gap_share,

        -- sessions started that day and not finished
        unfinished_sessions

    from with_trailing

)

select * from final
