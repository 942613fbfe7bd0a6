{#-
    Operations per day, from the first to the last day with a session: billing (invoices issued,
    paid, outstanding at the end of the day), API keys, usage metering against observed
    sessions, and sessions left unfinished.
-#}
with

runs as (

    select * from {{ ref('fct_browser_run') }}

),

usage as (

    select * from {{ ref('fct_usage') }}

),

invoices as (

    select * from {{ ref('stg_browser_infra__invoices') }}
    where status not in ('draft', 'void')

),

api_keys as (

    select * from {{ ref('stg_browser_infra__api_keys') }}

),

calendar as (

    select series.day::date as date_day
    from (
        select
            min(run_date) as first_day,
            max(run_date) as last_day
        from runs
    ) as bounds
    cross join lateral generate_series(bounds.first_day, bounds.last_day, interval '1 day')
        as series (day)

),

invoice_days as (

    select
        invoice_id,
        amount_due_cents,
        amount_paid_cents,
        {{ utc_date('issued_at') }} as issued_date,
        {{ utc_date('paid_at') }} as paid_date
    from invoices

),

billing as (

    select
        calendar.date_day,
        count(*) filter (where invoice_days.issued_date = calendar.date_day) as invoices_issued,
        coalesce(
            sum(invoice_days.amount_due_cents) filter (where invoice_days.issued_date = calendar.date_day), 0
        ) as invoiced_cents,
        count(*) filter (where invoice_days.paid_date = calendar.date_day) as invoices_paid,
        coalesce(
            sum(invoice_days.amount_paid_cents) filter (where invoice_days.paid_date = calendar.date_day), 0
        ) as collected_cents,
        -- outstanding at the end of the day: issued by then and not paid by then
        count(*) filter (
            where invoice_days.issued_date <= calendar.date_day
            and (invoice_days.paid_date is null or invoice_days.paid_date > calendar.date_day)
        ) as open_invoices,
        coalesce(sum(invoice_days.amount_due_cents) filter (
            where invoice_days.issued_date <= calendar.date_day
            and (invoice_days.paid_date is null or invoice_days.paid_date > calendar.date_day)
        ), 0) as outstanding_cents
    from calendar
    left join invoice_days
        on calendar.date_day >= invoice_days.issued_date
    group by calendar.date_day

),

keys as (

    select
        calendar.date_day,
        count(*) filter (where {{ utc_date('api_keys.created_at') }} = calendar.date_day)
            as api_keys_created,
        count(*) filter (where {{ utc_date('api_keys.revoked_at') }} = calendar.date_day)
            as api_keys_revoked,
        count(*) filter (
            where api_keys.revoked_at is null
            or {{ utc_date('api_keys.revoked_at') }} > calendar.date_day
        ) as active_api_keys
    from calendar
    left join api_keys
        on calendar.date_day >= {{ utc_date('api_keys.created_at') }}
    group by calendar.date_day

),

metered as (

    select
        usage_date as date_day,
        sum(quantity) as metered_browser_minutes
    from usage
    where metric = 'browser_minutes'
    group by usage_date

),

observed as (

    select
        run_date as date_day,
        sum(browser_minutes) as observed_browser_minutes,
        count(*) filter (where not is_finished) as unfinished_sessions
    from runs
    group by run_date

),

final as (

    select
        -- grain
        calendar.date_day,

        -- billing (cents)
        billing.invoices_issued,
        billing.invoiced_cents,
        billing.invoices_paid,
        billing.collected_cents,
        billing.open_invoices,
        billing.outstanding_cents,

        -- api keys
        keys.api_keys_created,
        keys.api_keys_revoked,
        keys.active_api_keys,

        -- metering: usage records (billing's view) against sessions (product's view);
        -- the gap is null on days not metered yet (usage is written once a day closes)
        metered.metered_browser_minutes,
        coalesce(observed.observed_browser_minutes, 0) as observed_browser_minutes,
        metered.metered_browser_minutes - coalesce(observed.observed_browser_minutes, 0)
            as metering_gap_minutes,

        -- sessions not finished (pending or running)
        coalesce(observed.unfinished_sessions, 0) as unfinished_sessions

    from calendar
    inner join billing
        on calendar.date_day = billing.date_day
    inner join keys
        on calendar.date_day = keys.date_day
    left join metered
        on calendar.date_day = metered.date_day
    left join observed
        on calendar.date_day = observed.date_day

)

select * from final
