{#-
    Monthly logo retention by signup cohort. Cohort = the calendar month (UTC) of the
    organization's signup. An organization is retained in month N after signup when it started
    at least one session in that month; retention_rate = retained / cohort size. Month 0 is the
    signup month itself. The current month is partial.
-#}
with

spine as (

    select * from {{ ref('metric_spine_daily') }}

),

organization_months as (

    select
        organization_id,
        cohort_month,
        {{ month_start('date_day') }} as activity_month,
        bool_or(is_active_1d) as was_active
    from spine
    group by organization_id, cohort_month, {{ month_start('date_day') }}

),

cohort_sizes as (

    select
        cohort_month,
        count(distinct organization_id) as cohort_size
    from spine
    group by cohort_month

),

final as (

    select
        -- grain
        organization_months.cohort_month,
        organization_months.activity_month,
        (
            (
                extract(year from organization_months.activity_month)
                - extract(year from organization_months.cohort_month)
            ) * 12
            + extract(month from organization_months.activity_month)
            - extract(month from organization_months.cohort_month)
        )::int as months_since_signup,

        -- retention
        cohort_sizes.cohort_size,
        count(*) filter (where organization_months.was_active) as retained_organizations,
        {{ ratio('count(*) filter (where organization_months.was_active)', 'cohort_sizes.cohort_size') }}
            as retention_rate

    from organization_months
    inner join cohort_sizes
        on organization_months.cohort_month = cohort_sizes.cohort_month
    group by
        organization_months.cohort_month,
        organization_months.activity_month,
        cohort_sizes.cohort_size

)

select * from final
