{{
    config(
        post_hook="{{ ensure_bronze_indexes(source('product_analytics', 'transactions_raw'), also=['external_id']) }}"
    )
}}

with

source as (

    {{ latest_live_version(source('product_analytics', 'transactions_raw')) }}

),

final as (

    select
        -- ids
        id as transaction_id,
        external_id,
        user_id,

        -- attributes
        amount,
        currency,
        status,
        payment_method,
        properties,
        source,

        -- timestamps
        created_at,
        ingested_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
