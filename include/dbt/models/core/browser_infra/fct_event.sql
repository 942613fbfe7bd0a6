{#-
    One row per session event. Incremental: the events touched in the interval, merged by
    event_id; events deleted in the source (with their session, by cascade) are tombstoned in
    bronze and deleted by the post-hook.
-#}
{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook="{{ delete_dropped_keys('event_id', ref('stg_browser_infra__session_events_changes')) }}",
    )
}}

with

events as (

    select * from {{ ref('stg_browser_infra__session_events') }}
    {{- interval_scope('event_id', ref('stg_browser_infra__session_events_changes')) }}

),

final as (

    select
        -- ids
        event_id,
        session_id,
        organization_id,

        -- dimensions
        event_type,
        case
            when event_type in ('console_error', 'network_error') then 'error'
            when event_type in ('navigate', 'click', 'input') then 'interaction'
            when event_type = 'screenshot' then 'capture'
            when event_type = 'captcha_solved' then 'captcha'
        end as event_category,
        event_type in ('console_error', 'network_error') as is_error,
        page_url,
        error_message,

        -- timestamps
        occurred_at,
        {{ utc_date('occurred_at') }} as event_date,

        -- lineage
        _cursor

    from events

)

select * from final
