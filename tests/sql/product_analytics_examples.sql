-- The "Querying Examples" of ../shared/seeds/product-analytics-events.md, verbatim except for the
-- schema: analytics.<gold table> -> gold_product_analytics.<table>, analytics.<silver table> ->
-- silver_product_analytics.<table>. tests/test_product_analytics.py runs each one against the
-- warehouse and checks its answer against tests/sql/product_analytics_source_truth.sql.

-- name: daily_active_users
SELECT
  date,
  active_users,
  new_users,
  returning_users,
  (new_users::DECIMAL / NULLIF(active_users, 0) * 100)::DECIMAL(5,2) as new_user_percentage
FROM gold_product_analytics.daily_metrics
WHERE date >= CURRENT_DATE - 7
ORDER BY date DESC;

-- name: retention_by_cohort
SELECT
  cohort_month,
  month_0_users,
  month_1_users,
  month_1_retention * 100 as month_1_retention_pct,
  month_3_retention * 100 as month_3_retention_pct,
  avg_revenue_per_user
FROM gold_product_analytics.user_cohorts
ORDER BY cohort_month DESC
LIMIT 12;

-- name: revenue_trends
SELECT
  date,
  total_revenue,
  total_transactions,
  avg_transaction_value,
  successful_transactions,
  (failed_transactions::DECIMAL / NULLIF(total_transactions, 0) * 100)::DECIMAL(5,2) as failure_rate_pct
FROM gold_product_analytics.revenue_summary
WHERE date >= CURRENT_DATE - 30
ORDER BY date DESC;

-- name: kpi_dashboard
SELECT
  metric_name,
  metric_value,
  metric_unit,
  time_period,
  change_percentage,
  trend
FROM gold_product_analytics.kpi_dashboard
ORDER BY metric_name, time_period;

-- name: top_events_by_user
SELECT
  user_id,
  event_type,
  COUNT(*) as event_count,
  MAX(created_at) as last_event_at
FROM silver_product_analytics.events_clean
WHERE created_at >= CURRENT_DATE - 7
  AND is_valid = TRUE
GROUP BY user_id, event_type
ORDER BY event_count DESC
LIMIT 100;

-- name: session_duration_distribution
SELECT
  CASE
    WHEN duration_seconds < 30 THEN '0-30s'
    WHEN duration_seconds < 60 THEN '30-60s'
    WHEN duration_seconds < 300 THEN '1-5min'
    WHEN duration_seconds < 900 THEN '5-15min'
    ELSE '15min+'
  END as duration_bucket,
  COUNT(*) as session_count,
  AVG(event_count) as avg_events_per_session
FROM silver_product_analytics.user_sessions
WHERE started_at >= CURRENT_DATE - 7
GROUP BY duration_bucket
ORDER BY MIN(duration_seconds);
