{#-
    Revenue breakdown per UTC day. Counts are of charges: valid, non-duplicate transactions
    (a retried webhook is counted once; invalid and duplicate deliveries have their own columns).
-#}
with

transactions as (

    select * from {{ ref('transactions_validated') }}

),

final as (

    select
        transaction_date as date,  -- noqa: RF04
        coalesce(sum(amount) filter (where is_valid and not is_duplicate and status = 'succeeded'), 0)
            as total_revenue,
        count(*) filter (where is_valid and not is_duplicate) as total_transactions,
        round(
            avg(amount) filter (where is_valid and not is_duplicate and status = 'succeeded'), 2
        ) as avg_transaction_value,
        count(*) filter (where is_valid and not is_duplicate and status = 'succeeded')
            as successful_transactions,
        count(*) filter (where is_valid and not is_duplicate and status = 'failed') as failed_transactions,
        count(*) filter (where is_valid and not is_duplicate and status = 'refunded')
            as refunded_transactions,
        count(*) filter (where not is_valid and not is_duplicate) as invalid_transactions,
        count(*) filter (where is_duplicate) as duplicate_deliveries,
        count(*) filter (where not is_duplicate and fraud_score >= 0.80) as high_risk_transactions,
        count(distinct user_id) filter (where is_valid and not is_duplicate and status = 'succeeded')
            as paying_users
    from transactions
    group by transaction_date

)

select * from final
