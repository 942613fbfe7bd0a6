-- The "Monitoring" queries of shared/seeds/retail-dbt-workbench.md, verbatim (schemas bronze and
-- silver). tests/test_retail.py runs them with only the schema names changed to the warehouse's
-- (bronze -> bronze_retail, silver -> silver_retail).

-- name: row_counts
-- Check row counts
SELECT
    'bronze_transactions' AS table_name,
    COUNT(*) AS row_count
FROM bronze.bronze_transactions
UNION ALL
SELECT 'silver_validated_transactions', COUNT(*)
FROM silver.silver_validated_transactions;

-- name: freshness
-- Check data freshness
SELECT MAX(validated_at) AS last_refresh
FROM silver.silver_validated_transactions;
