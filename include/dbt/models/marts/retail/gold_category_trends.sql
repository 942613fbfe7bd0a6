{#-
    Weekly sales per category with an anomaly flag. The rule (parameters in dbt_project.yml vars,
    documented in gold_category_trends.yml): a week's revenue is compared with the same category's
    previous `retail_anomaly_window_weeks` weeks (the current week excluded); z = (revenue - mean) /
    sample stddev; anomalous when |z| >= `retail_anomaly_z` and at least
    `retail_anomaly_min_weeks` prior weeks exist. Only complete weeks (all seven days within the
    data) are judged: a week still in progress would look like a drop.
-#}

{%- set window_weeks = var('retail_anomaly_window_weeks') -%}

with

transactions as (

    select * from {{ ref('silver_validated_transactions') }}

),

weekly as (

    select
        date_trunc('week', transaction_date)::date as week_start,
        category,
        count(*) as transactions,  -- noqa: RF04
        sum(quantity) as units,
        sum(amount) as revenue
    from transactions
    group by 1, 2

),

bounds as (

    select
        min(week_start) as first_week,
        max(week_start) as last_week,
        (select max(transactions.transaction_date) from transactions) as last_day
    from weekly

),

categories as (

    select distinct category from weekly

),

spine as (

    select
        weeks.week_start::date as week_start,
        categories.category
    from bounds
    cross join
        lateral generate_series(bounds.first_week, bounds.last_week, interval '1 week') as weeks (week_start)
    cross join categories

),

filled as (

    select
        spine.week_start,
        spine.category,
        coalesce(weekly.transactions, 0) as transactions,  -- noqa: RF04
        coalesce(weekly.units, 0) as units,
        coalesce(weekly.revenue, 0) as revenue
    from spine
    left join weekly on spine.week_start = weekly.week_start and spine.category = weekly.category

),

scored as (

    select
        *,
        avg(revenue) over prior_weeks as trailing_mean,
        stddev_samp(revenue) over prior_weeks as trailing_stddev,
        count(*) over prior_weeks as trailing_weeks
    from filled
    window prior_weeks as (
        partition by category order by week_start rows between {{ window_weeks }} preceding and 1 preceding
    )

),

final as (

    select
        -- grain
        scored.week_start,
        scored.category,

        -- the week
        scored.transactions,
        scored.units,
        scored.revenue,
        scored.week_start + 6 <= bounds.last_day as is_complete_week,

        -- the trailing window and the rule
        scored.trailing_weeks,
        round(scored.trailing_mean, 2) as trailing_mean,
        round(scored.trailing_stddev, 2) as trailing_stddev,
        round((scored.revenue - scored.trailing_mean) / nullif(scored.trailing_stddev, 0), 3) as z_score,
        coalesce(
            scored.week_start + 6 <= bounds.last_day
            and scored.trailing_weeks >= {{ var('retail_anomaly_min_weeks') }}
            and abs((scored.revenue - scored.trailing_mean) / nullif(scored.trailing_stddev, 0))
            >= {{ var('retail_anomaly_z') }},
            false
        ) as is_anomaly

    from scored
    cross join bounds

)

select * from final
