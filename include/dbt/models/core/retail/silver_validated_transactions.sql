{#- One typed row per valid transaction (first delivery of each transaction_id), stamped validated_at. -#}
{{
    config(
        indexes=[{'columns': ['transaction_id'], 'unique': true}, {'columns': ['transaction_date']}],
    )
}}

with

checks as (

    select * from {{ ref('silver_transaction_checks') }}
    where status = 'valid'

),

final as (

    select
        -- ids
        transaction_id,
        basket_id,
        store_id,
        sku,

        -- what was sold
        transaction_date,
        product_name,
        category,
        quantity,

        -- money
        unit_price,
        amount,
        currency,

        -- keys the payload carried beyond the schema (names only: their values may be personal data)
        extra_keys,

        -- lineage
        landing_id,
        landed_via,
        received_at,
        now() as validated_at

    from checks

)

select * from final
