with

source as (

    -- loaded in full mode (one snapshot row per key); the macro is a no-op collapse here
    {{ latest_live_version(source('browser_infra', 'plans')) }}

),

final as (

    select
        -- ids
        id as plan_id,
        lower(trim(code)) as plan_code,

        -- attributes
        trim(name) as plan_name,
        is_active,

        -- price and limits
        monthly_price_cents::bigint as monthly_price_cents,
        round(monthly_price_cents / 100.0, 2) as monthly_price,
        included_browser_minutes,
        max_concurrent_sessions,
        overage_cents_per_minute::numeric(10, 4) as overage_cents_per_minute,

        -- timestamps
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
