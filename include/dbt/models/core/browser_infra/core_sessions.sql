{#-
    Incremental: a run processes the sessions touched in its interval (interval_start,
    interval_end) and merges them by session_id; the post-hook deletes hard-deleted sessions.
    Only the session's own columns live here (no attributes of other, mutable entities), so a
    row depends on nothing but its own latest bronze version: the basis of backfill equivalence.
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

    select * from {{ ref('stg_browser_infra__browser_sessions') }}
    {{- interval_scope('session_id', ref('stg_browser_infra__browser_sessions_changes')) }}

),

final as (

    select
        -- ids
        session_id,
        organization_id,
        project_id,

        -- state
        status,
        status in ('completed', 'failed', 'timed_out') as is_finished,

        -- where and how it ran
        region,
        sdk,
        sdk_version,
        chrome_major_version,
        viewport_width,
        viewport_height,
        user_agent,
        is_keep_alive,

        -- measures
        duration_ms,
        proxy_bytes,

        -- timestamps
        started_at,
        ended_at,
        {{ utc_date('started_at') }} as session_date,
        created_at,
        updated_at,

        -- lineage
        _cursor,
        _loaded_at

    from sessions

)

select * from final
