{#-
    One row per browser session ("run") with the measures analytics aggregate. Incremental like
    core_sessions: the same touched keys, re-read from core_sessions (already merged this run).
-#}
{{
    config(
        materialized='incremental',
        unique_key='session_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook="{{ delete_dropped_keys('session_id', ref('stg_browser_infra__browser_sessions_changes')) }}",
    )
}}

with

sessions as (

    select * from {{ ref('core_sessions') }}
    {{- interval_scope('session_id', ref('stg_browser_infra__browser_sessions_changes')) }}

),

final as (

    select
        -- ids
        session_id,
        organization_id,
        project_id,

        -- dimensions
        session_date as run_date,
        status,
        region,
        sdk,

        -- outcome flags: error = failed or timed out; only finished runs have an outcome
        is_finished,
        status = 'completed' as is_completed,
        status = 'failed' as is_failed,
        status = 'timed_out' as is_timed_out,
        status in ('failed', 'timed_out') as is_error,
        is_keep_alive,

        -- measures (numeric, so sums are exact whatever the row order)
        duration_ms,
        round(duration_ms / 60000.0, 3) as browser_minutes,
        proxy_bytes,
        round(proxy_bytes / 1e9, 6) as proxy_gb,

        -- timestamps
        started_at,
        ended_at,

        -- lineage
        _cursor

    from sessions

)

select * from final
