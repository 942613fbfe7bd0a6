{#-
    Metered usage: one row per organization, day and metric, as billing recorded it. Incremental
    on usage_record_id like the other bronze-fed facts.
-#}
{{
    config(
        materialized='incremental',
        unique_key='usage_record_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook="{{ delete_dropped_keys('usage_record_id', ref('stg_browser_infra__usage_records_changes')) }}",
    )
}}

with

usage_records as (

    select * from {{ ref('stg_browser_infra__usage_records') }}
    {{- interval_scope('usage_record_id', ref('stg_browser_infra__usage_records_changes')) }}

),

final as (

    select
        -- ids
        usage_record_id,
        organization_id,
        subscription_id,

        -- grain
        usage_date,
        metric,

        -- measures
        quantity,

        -- lineage
        _cursor

    from usage_records

)

select * from final
