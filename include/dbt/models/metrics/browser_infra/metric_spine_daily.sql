{#-
    The canonical organization x day metric table for BI (definitions: agg_org_daily.yml).
    A view over the gold mart agg_org_daily, never over silver: silver's table rebuilds drop the
    views that depend on silver tables (drop ... cascade), and a BI view must not vanish between
    a silver run and the next gold run.
-#}
select
    organization_id,
    date_day,
    organization_name,
    industry,
    country_code,
    plan_code,
    cohort_month,
    days_since_signup,
    sessions_started,
    finished_sessions,
    completed_sessions,
    failed_sessions,
    timed_out_sessions,
    error_rate,
    browser_minutes,
    proxy_gb,
    events,
    error_events,
    is_active_1d,
    is_active_7d,
    is_active_30d,
    mrr_cents,
    is_paying
from {{ ref('agg_org_daily') }}
