{#- The catalogue: one row per SKU, its newest valid payload, names and categories standardised. -#}

with

checks as (

    select * from {{ ref('silver_product_checks') }}

),

variants as (

    -- how many spellings of the name the feeds used for the SKU (casing and spaces folded)
    select
        sku,
        count(distinct lower(regexp_replace(raw_name, '\s+', ' ', 'g'))) as name_variants,
        count(*) as versions_landed
    from checks
    where status <> 'quarantined'
    group by sku

),

final as (

    select
        -- ids
        checks.sku,

        -- attributes
        checks.product_name,
        checks.category,
        checks.brand,
        checks.unit_price,
        variants.name_variants,
        variants.versions_landed,

        -- lineage
        checks.landing_id,
        checks.landed_via,
        checks.received_at,
        now() as validated_at

    from checks
    inner join variants on checks.sku = variants.sku
    where checks.status = 'current'

)

select * from final
