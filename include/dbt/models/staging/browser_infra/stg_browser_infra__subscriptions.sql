with

source as (

    {{ latest_live_version(source('browser_infra', 'subscriptions')) }}

),

final as (

    select
        -- ids
        id as subscription_id,
        organization_id,
        plan_id,

        -- attributes
        lower(trim(status)) as status,
        lower(trim(billing_interval)) as billing_interval,

        -- timestamps
        started_at,
        current_period_start,
        current_period_end,
        canceled_at,
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
