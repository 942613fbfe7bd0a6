{#-
    Recommendation features per catalogue product: co-purchases (other products bought on the same
    receipt, basket_id), recency of its last sale, and popularity within its category.
-#}

with

transactions as (

    select * from {{ ref('silver_validated_transactions') }}

),

products as (

    select * from {{ ref('silver_products') }}

),

basket_lines as (

    select distinct
        basket_id,
        sku
    from transactions
    where basket_id is not null

),

pairs as (

    select
        mine.sku,
        other.sku as other_sku,
        count(*) as baskets
    from basket_lines as mine
    inner join basket_lines as other on mine.basket_id = other.basket_id and mine.sku <> other.sku
    group by mine.sku, other.sku

),

co_purchases as (

    select
        sku,
        sum(baskets) as co_purchase_count,
        count(*) as co_purchased_products,
        (array_agg(other_sku order by baskets desc, other_sku asc))[1] as top_co_purchased_sku,
        max(baskets) as top_co_purchase_count
    from pairs
    group by sku

),

sales as (

    select
        sku,
        count(*) as transactions,  -- noqa: RF04
        sum(quantity) as units,
        sum(amount) as revenue,
        max(transaction_date) as last_sold_on,
        count(*) filter (where transaction_date > current_date - 30) as transactions_30d
    from transactions
    group by sku

),

final as (

    select
        -- ids
        products.sku,
        products.product_name,
        products.category,

        -- popularity
        coalesce(sales.transactions, 0) as transactions,  -- noqa: RF04
        coalesce(sales.units, 0) as units,
        coalesce(sales.revenue, 0) as revenue,
        coalesce(sales.transactions_30d, 0) as transactions_30d,
        rank() over (
            partition by products.category order by coalesce(sales.units, 0) desc
        ) as popularity_rank_in_category,
        {{ ratio(
            'coalesce(sales.units, 0)',
            'sum(coalesce(sales.units, 0)) over (partition by products.category)'
        ) }} as category_unit_share,

        -- recency
        sales.last_sold_on,
        current_date - sales.last_sold_on as days_since_last_sale,

        -- co-purchases
        coalesce(co_purchases.co_purchase_count, 0) as co_purchase_count,
        coalesce(co_purchases.co_purchased_products, 0) as co_purchased_products,
        co_purchases.top_co_purchased_sku,
        co_purchases.top_co_purchase_count

    from products
    left join sales on products.sku = sales.sku
    left join co_purchases on products.sku = co_purchases.sku

)

select * from final
