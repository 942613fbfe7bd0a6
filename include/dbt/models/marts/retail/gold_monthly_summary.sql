{#-
    Monthly sales by category with month-over-month and year-over-year growth.
    Every (month, category) from the first month with sales to the last is a row, zero when the
    category sold nothing that month, so the previous month and the same month a year earlier are
    found by date arithmetic, not by row position: January compares with December of the year
    before, and a category absent in the prior period gets prior revenue 0 and growth null (not a
    division by zero, not a comparison with some older month).
-#}

with

transactions as (

    select * from {{ ref('silver_validated_transactions') }}

),

monthly as (

    select
        {{ month_start('transaction_date') }} as month,  -- noqa: RF04
        category,
        count(*) as transactions,  -- noqa: RF04
        sum(quantity) as units,
        sum(amount) as revenue,
        count(distinct store_id) as stores
    from transactions
    group by 1, 2

),

categories as (

    select distinct category from monthly

),

spine as (

    select
        months.month::date as month,  -- noqa: RF04
        categories.category
    from (
        select
            min(month) as first_month,
            max(month) as last_month
        from monthly
    ) as bounds
    cross join
        lateral generate_series(bounds.first_month, bounds.last_month, interval '1 month') as months (month)
    cross join categories

),

filled as (

    select
        spine.month,
        spine.category,
        coalesce(monthly.transactions, 0) as transactions,  -- noqa: RF04
        coalesce(monthly.units, 0) as units,
        coalesce(monthly.revenue, 0) as revenue,
        coalesce(monthly.stores, 0) as stores
    from spine
    left join monthly on spine.month = monthly.month and spine.category = monthly.category

),

final as (

    select
        -- grain
        cur.month,
        cur.category,

        -- this month
        cur.transactions,
        cur.units,
        cur.revenue,
        cur.stores,

        -- growth (null when the prior period sold nothing or is before the first month)
        prev_month.revenue as prev_month_revenue,
        {{ ratio('cur.revenue - prev_month.revenue', 'prev_month.revenue') }} as mom_growth,
        prev_year.revenue as prev_year_revenue,
        {{ ratio('cur.revenue - prev_year.revenue', 'prev_year.revenue') }} as yoy_growth

    from filled as cur
    left join filled as prev_month
        on cur.category = prev_month.category
        and prev_month.month = (cur.month - interval '1 month')::date
    left join filled as prev_year
        on cur.category = prev_year.category
        and prev_year.month = (cur.month - interval '1 year')::date

)

select * from final
