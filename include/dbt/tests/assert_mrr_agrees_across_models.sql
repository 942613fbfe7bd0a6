-- MRR is computed in three places from one rule (fct_subscription + macro mrr_counts_on):
-- per organization-day (metric_spine_daily -> v_mrr), per day (agg_growth_daily) and per
-- organization-month (agg_monthly_revenue). They must agree wherever they meet.
with

v_mrr as (

    select * from {{ ref('v_mrr') }}

),

growth as (

    select * from {{ ref('agg_growth_daily') }}

),

revenue as (

    select * from {{ ref('agg_monthly_revenue') }}

),

by_day as (

    select
        'day' as grain,
        v_mrr.date_day as period_start,
        v_mrr.mrr_cents as spine_mrr_cents,
        growth.mrr_cents as other_mrr_cents
    from v_mrr
    inner join growth
        on v_mrr.date_day = growth.date_day

),

month_ends as (

    select
        revenue.revenue_month,
        sum(revenue.mrr_cents) as monthly_mrr_cents,
        least(
            (revenue.revenue_month + interval '1 month' - interval '1 day')::date,
            (select max(v_mrr.date_day) from v_mrr)
        ) as measured_on
    from revenue
    group by revenue.revenue_month

),

by_month as (

    select
        'month' as grain,
        month_ends.revenue_month as period_start,
        v_mrr.mrr_cents as spine_mrr_cents,
        month_ends.monthly_mrr_cents as other_mrr_cents
    from month_ends
    inner join v_mrr
        on month_ends.measured_on = v_mrr.date_day

),

final as (

    select * from by_day
    where spine_mrr_cents <> other_mrr_cents
    union all
    select * from by_month
    where spine_mrr_cents <> other_mrr_cents

)

select * from final
