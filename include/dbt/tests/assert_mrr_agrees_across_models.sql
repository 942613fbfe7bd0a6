-- MRR is computed in three places from one rule (fct_subscription + macro mrr_counts_on):
-- per organization-day (metric_spine_daily -> v_mrr), per day (fct_growth_daily) and per
-- organization-month (fct_monthly_revenue). They must agree wherever they meet.
with

by_day as (

    select
        v_mrr.date_day,
        v_mrr.mrr_cents as spine_mrr_cents,
        growth.mrr_cents as growth_mrr_cents
    from {{ ref('v_mrr') }} as v_mrr
    inner join {{ ref('fct_growth_daily') }} as growth
        on v_mrr.date_day = growth.date_day

),

by_month_end as (

    select
        revenue.revenue_month,
        sum(revenue.mrr_cents) as monthly_mrr_cents,
        max(v_mrr.mrr_cents) as spine_mrr_cents
    from {{ ref('fct_monthly_revenue') }} as revenue
    inner join {{ ref('v_mrr') }} as v_mrr
        on v_mrr.date_day = least(
            (revenue.revenue_month + interval '1 month' - interval '1 day')::date,
            (select max(date_day) from {{ ref('v_mrr') }})
        )
    group by revenue.revenue_month

)

select 'day' as grain, date_day::text as period, spine_mrr_cents, growth_mrr_cents as other_mrr_cents
from by_day
where spine_mrr_cents <> growth_mrr_cents

union all

select 'month', revenue_month::text, spine_mrr_cents, monthly_mrr_cents
from by_month_end
where spine_mrr_cents <> monthly_mrr_cents
