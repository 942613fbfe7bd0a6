{#- One row per landed transactions payload (the latest bronze version of each landing row), untouched: the
    JSONB is judged in silver (models/core/retail), where a failing payload is quarantined. -#}

with

source as (

    {{ latest_live_version(source('retail', 'bronze_transactions')) }}

),

final as (

    select
        -- ids
        id as landing_id,

        -- the payload, as delivered
        payload,
        jsonb_typeof(payload) as payload_type,

        -- where it came from
        source as landed_via,
        file_name,
        line_number,
        request_id,

        -- timestamps
        received_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
