{#-
    One text per valid transaction, ready for an embedding model (LLM/RAG). The template is fixed and
    fed only typed silver columns, so the same transaction always yields the same text (text_hash
    lets a consumer re-embed only what changed). No personal data: payloads' extra keys (a customer
    e-mail, a loyalty card) never reach silver's columns, so they cannot reach this text.
-#}

with

transactions as (

    select * from {{ ref('silver_validated_transactions') }}

),

texts as (

    select
        transaction_id,
        transaction_date,
        category,
        sku,
        store_id,
        format(
            'Retail transaction %s on %s at store %s: %s x %s (SKU %s, category %s) at %s %s each, '
            || 'total %s %s.',
            transaction_id,
            to_char(transaction_date, 'YYYY-MM-DD'),
            store_id,
            quantity,
            product_name,
            sku,
            replace(category, '_', ' '),
            currency,
            to_char(unit_price, 'FM999999990.00'),
            currency,
            to_char(amount, 'FM999999990.00')
        ) as embedding_text
    from transactions

),

final as (

    select
        *,
        md5(embedding_text) as text_hash
    from texts

)

select * from final
