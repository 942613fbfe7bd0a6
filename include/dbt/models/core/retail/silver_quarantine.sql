{#-
    Every rejected payload, transactions and catalogue alike, with every rule it breaks: one row per
    landing row, never dropped. reasons are 'rule:key' ('missing_key:sku', 'not_an_object:payload');
    rules are the rule names alone, for counting. Fix the feed and resend: a corrected payload lands as
    a new row and is judged again (this one stays here as the record of what came in).
-#}

with

transactions as (

    select * from {{ ref('silver_transaction_checks') }}
    where status = 'quarantined'

),

products as (

    select * from {{ ref('silver_product_checks') }}
    where status = 'quarantined'

),

rejected as (

    select
        'transactions' as landing_table,
        landing_id,
        transaction_id as business_key,
        reasons,
        payload,
        landed_via,
        file_name,
        line_number,
        request_id,
        received_at
    from transactions
    union all
    select
        'products' as landing_table,
        landing_id,
        sku as business_key,
        reasons,
        payload,
        landed_via,
        file_name,
        line_number,
        request_id,
        received_at
    from products

),

final as (

    select
        -- ids
        landing_table,
        landing_id,
        business_key,

        -- why
        reasons,
        array(
            select distinct split_part(r, ':', 1) from unnest(reasons) as r
            order by 1
        ) as rules,

        -- what came in, and how
        payload,
        landed_via,
        file_name,
        line_number,
        request_id,

        -- timestamps
        received_at,
        now() as quarantined_at

    from rejected

)

select * from final
