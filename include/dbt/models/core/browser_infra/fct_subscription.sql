{#-
    One row per subscription, priced, with the window in which it counts toward MRR.

    MRR rule. A subscription contributes its monthly-equivalent price (period price / months in
    the period: monthly = plan price, yearly = yearly price / 12) on every day on which it is
    active or past_due. The source keeps only a subscription's current status, so the status
    on past days is reconstructed from its timestamps:
      - trialing:          counts on no day (mrr_start_date is null);
      - active, past_due:  counts from started_at's day on (mrr_end_date is null);
      - canceled:          counted as paying from started_at's day up to, not including, the
                           day of canceled_at (it was active until then).
    A day d counts when mrr_start_date <= d and (mrr_end_date is null or d < mrr_end_date):
    see macro mrr_counts_on.
-#}
with

subscriptions as (

    select * from {{ ref('stg_browser_infra__subscriptions') }}

),

plans as (

    select * from {{ ref('stg_browser_infra__plans') }}

),

priced as (

    select
        subscriptions.*,
        plans.plan_code,
        plans.plan_name,
        plans.monthly_price_cents,
        plans.included_browser_minutes,
        plans.overage_cents_per_minute,
        -- plans hold monthly prices only: a yearly period is billed 12 x monthly (no discount)
        case subscriptions.billing_interval
            when 'year' then plans.monthly_price_cents * 12
            else plans.monthly_price_cents
        end as period_price_cents,
        case subscriptions.billing_interval when 'year' then 12 else 1 end as months_per_period
    from subscriptions
    inner join plans
        on subscriptions.plan_id = plans.plan_id

),

final as (

    select
        -- ids
        subscription_id,
        organization_id,
        plan_id,

        -- plan and terms
        plan_code,
        plan_name,
        billing_interval,
        included_browser_minutes,
        overage_cents_per_minute,

        -- state
        status,
        status in ('active', 'past_due') as is_mrr_active,

        -- money (cents)
        period_price_cents,
        round(period_price_cents::numeric / months_per_period, 2) as mrr_cents,

        -- the days this subscription counts toward MRR: [mrr_start_date, mrr_end_date)
        case when status <> 'trialing' then {{ utc_date('started_at') }} end as mrr_start_date,
        case
            when status = 'canceled' then {{ utc_date('coalesce(canceled_at, updated_at)') }}
        end as mrr_end_date,

        -- timestamps
        started_at,
        current_period_start,
        current_period_end,
        canceled_at,
        created_at,
        updated_at

    from priced

)

select * from final
