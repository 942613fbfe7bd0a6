with

source as (

    {{ latest_live_version(source('browser_infra', 'invoices')) }}

),

final as (

    select
        -- ids
        id as invoice_id,
        organization_id,
        subscription_id,
        invoice_number,

        -- attributes
        lower(trim(status)) as status,
        upper(trim(currency)) as currency,

        -- money (cents, as in the source)
        amount_due_cents::bigint as amount_due_cents,
        amount_paid_cents::bigint as amount_paid_cents,

        -- dates and timestamps
        period_start,
        period_end,
        issued_at,
        paid_at,
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
