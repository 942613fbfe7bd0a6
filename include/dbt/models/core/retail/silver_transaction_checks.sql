{#-
    Every landed transaction payload, judged: one row per landing row with its verdict (status) and
    every rule it breaks (reasons, 'rule:key', e.g. 'missing_key:sku', 'future_date:transaction_date').
    status is exactly one of
      quarantined  breaks at least one rule: in silver_quarantine with its reasons, never validated;
      valid        passes every rule and is the first delivery of its transaction_id: in
                   silver_validated_transactions;
      duplicate    passes every rule but an earlier valid delivery of the same transaction_id exists
                   (a webhook retry, a re-uploaded file): counted, not kept twice.
    So valid + quarantined + duplicates = landed, by construction; tests/test_retail.py proves it
    against the source. Numbers sent as strings are read ("12.50"); extra keys are allowed and listed.
-#}

with

landed as (

    select * from {{ ref('stg_retail__bronze_transactions') }}

),

catalogue as (

    select
        sku,
        product_name,
        category
    from {{ ref('silver_products') }}

),

extracted as (

    select
        landing_id,
        payload,
        payload_type,
        landed_via,
        file_name,
        line_number,
        request_id,
        received_at,
        payload_type = 'object' as is_object,
        nullif(trim(payload ->> 'transaction_id'), '') as transaction_id,
        nullif(trim(payload ->> 'transaction_date'), '') as raw_transaction_date,
        upper(nullif(trim(payload ->> 'sku'), '')) as sku,
        nullif(trim(payload ->> 'category'), '') as raw_category,
        nullif(trim(payload ->> 'quantity'), '') as raw_quantity,
        nullif(trim(payload ->> 'unit_price'), '') as raw_unit_price,
        nullif(trim(payload ->> 'amount'), '') as raw_amount,
        upper(nullif(trim(payload ->> 'currency'), '')) as raw_currency,
        nullif(trim(payload ->> 'store_id'), '') as store_id,
        nullif(trim(payload ->> 'basket_id'), '') as basket_id,
        case when payload_type = 'object' then array(
                    select k from jsonb_object_keys(landed.payload) as k
                    where k not in (
                            'transaction_id',
                            'transaction_date',
                            'sku',
                            'product_name',
                            'category',
                            'quantity',
                            'unit_price', 'amount', 'currency', 'store_id', 'basket_id'
                        )
                    order by k
                )
        end as extra_keys
    from landed

),

typed as (

    select
        extracted.*,
        {{ retail_parse_date('raw_transaction_date') }} as transaction_date,
        {{ retail_integer('raw_quantity') }} as quantity,
        {{ retail_number('raw_unit_price') }} as unit_price,
        {{ retail_number('raw_amount') }} as sent_amount,
        {{ retail_category('raw_category') }} as sent_category,
        coalesce(extracted.raw_currency, 'PHP') as currency,  -- the POS exports omit it: pesos
        catalogue.sku is not null as known_product,
        catalogue.product_name,
        catalogue.category as catalogue_category
    from extracted
    left join catalogue on extracted.sku = catalogue.sku

),

judged as (

    select
        *,
        coalesce(sent_amount, round(quantity * unit_price, 2)) as amount,
        case when is_object
                then array_remove(array[
                        case when transaction_id is null then 'missing_key:transaction_id' end,
                        case when raw_transaction_date is null then 'missing_key:transaction_date' end,
                        case when sku is null then 'missing_key:sku' end,
                        case when raw_quantity is null then 'missing_key:quantity' end,
                        case when raw_unit_price is null then 'missing_key:unit_price' end,
                        case when store_id is null then 'missing_key:store_id' end,
                        case
                            when
                                raw_transaction_date is not null and transaction_date is null
                                then 'bad_date:transaction_date'
                        end,
                        case when transaction_date > current_date then 'future_date:transaction_date' end,
                        case
                            when raw_quantity is not null and quantity is null then 'not_a_number:quantity'
                        end,
                        case
                            when
                                raw_unit_price is not null and unit_price is null
                                then 'not_a_number:unit_price'
                        end,
                        case
                            when raw_amount is not null and sent_amount is null then 'not_a_number:amount'
                        end,
                        case when quantity <= 0 then 'not_positive:quantity' end,
                        case
                            when coalesce(sent_amount, quantity * unit_price) <= 0 then 'not_positive:amount'
                        end,
                        case when sent_amount > 0 and abs(sent_amount - quantity * unit_price) > 0.01
                                then 'amount_mismatch:amount'
                        end,
                        case
                            when
                                raw_category is not null and sent_category is null
                                then 'unknown_category:category'
                        end,
                        case when raw_currency not in ('PHP', 'USD') then 'unknown_currency:currency' end,
                        case when sku is not null and not known_product then 'unknown_product:sku' end
                    ], null)
            else array['not_an_object:payload']
        end as reasons
    from typed

),

ranked as (

    select
        *,
        case when cardinality(reasons) = 0
                then row_number() over (
                        partition by transaction_id, cardinality(reasons) = 0
                        order by received_at, landing_id
                    )
        end as delivery_number
    from judged

),

final as (

    select
        -- ids
        landing_id,
        transaction_id,

        -- verdict
        case
            when cardinality(reasons) > 0 then 'quarantined'
            when delivery_number = 1 then 'valid'
            else 'duplicate'
        end as status,
        reasons,

        -- typed values (null where the payload could not give them)
        transaction_date,
        sku,
        product_name,
        coalesce(sent_category, catalogue_category) as category,
        quantity,
        round(unit_price, 2) as unit_price,
        round(amount, 2) as amount,
        currency,
        store_id,
        basket_id,
        extra_keys,

        -- the delivery
        payload,
        payload_type,
        landed_via,
        file_name,
        line_number,
        request_id,
        received_at

    from ranked

)

select * from final
