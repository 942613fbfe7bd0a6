with

source as (

    {{ latest_live_version(source('browser_infra', 'usage_records')) }}

),

final as (

    select
        -- ids
        id as usage_record_id,
        organization_id,
        subscription_id,

        -- grain: one metric of one organization on one day
        usage_date,
        lower(trim(metric)) as metric,

        -- measures
        quantity::numeric(14, 3) as quantity,

        -- timestamps
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
