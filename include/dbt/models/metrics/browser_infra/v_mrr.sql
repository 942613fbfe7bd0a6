{#-
    MRR per day. MRR = sum of the monthly-equivalent plan price (yearly / 12) of subscriptions
    that are active or past_due on the day; trialing and canceled ones are excluded (rule and
    the reconstruction of past statuses: fct_subscription). ARR = 12 x MRR.
-#}
with

spine as (

    select * from {{ ref('metric_spine_daily') }}

),

daily as (

    select
        date_day,
        sum(mrr_cents) as mrr_cents,
        count(*) filter (where is_paying) as paying_organizations
    from spine
    group by date_day

),

final as (

    select
        -- grain
        date_day,

        -- revenue (dollars)
        round(mrr_cents / 100.0, 2) as mrr,
        round(mrr_cents * 12 / 100.0, 2) as arr,
        round(mrr_cents / 100.0 / nullif(paying_organizations, 0), 2) as arpa,

        -- customers
        paying_organizations,

        -- change
        round((mrr_cents - lag(mrr_cents) over (order by date_day)) / 100.0, 2) as mrr_change,

        -- cents, for exact sums
        mrr_cents

    from daily

)

select * from final
