{#-
    Organization x month, from the signup month to the month of the reporting end date.
    mrr_cents is MRR on the month's last day (the reporting end date for the current month),
    by the rule in fct_subscription; movements compare it with the month before.
-#}
with

organizations as (

    select * from {{ ref('dim_org') }}

),

subscriptions as (

    select * from {{ ref('fct_subscription') }}

),

invoices as (

    select * from {{ ref('stg_browser_infra__invoices') }}

),

usage as (

    select * from {{ ref('fct_usage') }}

),

runs as (

    select * from {{ ref('fct_browser_run') }}

),

reporting_end as (

    select max(run_date) as reporting_end_date from runs

),

spine as (

    select
        organizations.organization_id,
        organizations.current_subscription_id,
        calendar.month::date as revenue_month,
        least(
            (calendar.month + interval '1 month' - interval '1 day')::date,
            reporting_end.reporting_end_date
        ) as measured_on
    from organizations
    cross join reporting_end
    cross join lateral generate_series(
        organizations.cohort_month,
        {{ month_start('reporting_end.reporting_end_date') }},
        interval '1 month'
    ) as calendar (month)

),

mrr as (

    select
        spine.organization_id,
        spine.revenue_month,
        coalesce(sum(subscriptions.mrr_cents), 0) as mrr_cents
    from spine
    left join subscriptions
        on spine.organization_id = subscriptions.organization_id
        and {{ mrr_counts_on('spine.measured_on') }}
    group by spine.organization_id, spine.revenue_month

),

invoiced as (

    select
        organization_id,
        {{ month_start(utc_date('issued_at')) }} as revenue_month,
        sum(amount_due_cents) as invoiced_cents
    from invoices
    where status not in ('draft', 'void') and issued_at is not null
    group by organization_id, {{ month_start(utc_date('issued_at')) }}

),

collected as (

    select
        organization_id,
        {{ month_start(utc_date('paid_at')) }} as revenue_month,
        sum(amount_paid_cents) as collected_cents
    from invoices
    where paid_at is not null
    group by organization_id, {{ month_start(utc_date('paid_at')) }}

),

metered as (

    select
        organization_id,
        {{ month_start('usage_date') }} as revenue_month,
        sum(quantity) as metered_browser_minutes
    from usage
    where metric = 'browser_minutes'
    group by organization_id, {{ month_start('usage_date') }}

),

joined as (

    select
        spine.organization_id,
        spine.revenue_month,
        mrr.mrr_cents,
        coalesce(
            lag(mrr.mrr_cents) over (partition by spine.organization_id order by spine.revenue_month),
            0
        ) as previous_mrr_cents,
        coalesce(invoiced.invoiced_cents, 0) as invoiced_cents,
        coalesce(collected.collected_cents, 0) as collected_cents,
        coalesce(metered.metered_browser_minutes, 0) as metered_browser_minutes,
        plan.included_browser_minutes,
        plan.overage_cents_per_minute
    from spine
    inner join mrr
        on spine.organization_id = mrr.organization_id
        and spine.revenue_month = mrr.revenue_month
    left join subscriptions as plan
        on spine.current_subscription_id = plan.subscription_id
    left join invoiced
        on spine.organization_id = invoiced.organization_id
        and spine.revenue_month = invoiced.revenue_month
    left join collected
        on spine.organization_id = collected.organization_id
        and spine.revenue_month = collected.revenue_month
    left join metered
        on spine.organization_id = metered.organization_id
        and spine.revenue_month = metered.revenue_month

),

final as (

    select
        -- grain
        organization_id,
        revenue_month,

        -- recurring revenue (cents)
        mrr_cents,
        previous_mrr_cents,
        mrr_cents - previous_mrr_cents as mrr_change_cents,
        case
            when previous_mrr_cents = 0 and mrr_cents > 0 then 'new'
            when previous_mrr_cents > 0 and mrr_cents = 0 then 'churned'
            when mrr_cents > previous_mrr_cents then 'expansion'
            when mrr_cents < previous_mrr_cents then 'contraction'
            when mrr_cents > 0 then 'retained'
            else 'none'
        end as mrr_movement,

        -- billing (cents): invoiced = issued this month (draft, void excluded); collected = paid
        invoiced_cents,
        collected_cents,

        -- metered usage against the current plan's allowance
        metered_browser_minutes,
        included_browser_minutes,
        greatest(metered_browser_minutes - coalesce(included_browser_minutes, 0), 0)
            as overage_browser_minutes,
        round(
            greatest(metered_browser_minutes - coalesce(included_browser_minutes, 0), 0)
            * coalesce(overage_cents_per_minute, 0),
            2
        ) as estimated_overage_cents

    from joined

)

select * from final
