{#-
    Every landed catalogue payload, judged: one row per landing row with its verdict (status) and
    the rules it breaks (reasons, 'rule:key'). status is exactly one of
      quarantined  breaks a rule (it is in silver_quarantine, with its reasons);
      current      the newest valid payload of its SKU (it is silver_products);
      superseded   an older valid payload of a SKU sent again later (a catalogue re-upload).
    So current + quarantined + superseded = landed, by construction (tests/test_retail.py checks it).
-#}

with

landed as (

    select * from {{ ref('stg_retail__bronze_products') }}

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
        -- keys, trimmed; empty text counts as missing
        upper(nullif(trim(payload ->> 'sku'), '')) as sku,
        nullif(trim(payload ->> 'name'), '') as raw_name,
        nullif(trim(payload ->> 'category'), '') as raw_category,
        nullif(trim(payload ->> 'brand'), '') as raw_brand,
        nullif(trim(payload ->> 'unit_price'), '') as raw_unit_price
    from landed

),

typed as (

    select
        *,
        {{ retail_category('raw_category') }} as category,
        {{ retail_number('raw_unit_price') }} as unit_price
    from extracted

),

judged as (

    select
        *,
        case when is_object
                then array_remove(array[
                        case when sku is null then 'missing_key:sku' end,
                        case when raw_name is null then 'missing_key:name' end,
                        case when raw_category is null then 'missing_key:category' end,
                        case
                            when
                                raw_category is not null and category is null
                                then 'unknown_category:category'
                        end,
                        case
                            when
                                raw_unit_price is not null and unit_price is null
                                then 'not_a_number:unit_price'
                        end,
                        case when unit_price <= 0 then 'not_positive:unit_price' end
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
                        partition by sku, cardinality(reasons) = 0
                        order by received_at desc, landing_id desc
                    )
        end as newest_first
    from judged

),

final as (

    select
        -- ids
        landing_id,
        sku,

        -- verdict
        case
            when cardinality(reasons) > 0 then 'quarantined'
            when newest_first = 1 then 'current'
            else 'superseded'
        end as status,
        reasons,

        -- standardised attributes (null for a payload that is not an object)
        initcap(regexp_replace(raw_name, '\s+', ' ', 'g')) as product_name,
        raw_name,
        category,
        initcap(regexp_replace(raw_brand, '\s+', ' ', 'g')) as brand,
        round(unit_price, 2) as unit_price,

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
