{#-
    Silver events: validated, scored and deduplicated (one row per event id: the document's dedup
    rule, `NOT EXISTS (... ec.id = e.id)`; the staging view already keeps one delivery per id).
    is_valid and quality_score are the document's rules, verbatim.
    Incremental: a run takes the events that landed in its interval (ingested_at, plus the
    source's lookback) and merges them by event_id; a redelivery replaces the row, same values.
-#}
{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['event_id'], 'unique': true},
            {'columns': ['ingested_at']},
            {'columns': ['user_id', 'created_at']},
            {'columns': ['created_at']},
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_product_analytics__events_raw') }}
    where {{ landed_in_interval('_cursor', 'product_analytics', 'events_raw') }}

),

final as (

    select
        -- ids
        event_id,
        user_id,
        client_session_id as session_id,

        -- attributes
        event_type,
        properties,
        page,
        source,

        -- quality (the document's clean_events() rules)
        (event_type is not null and created_at is not null) as is_valid,
        (case
            when event_type is null then 0.00
            when user_id is null then 0.50
            when client_session_id is null then 0.70
            else 1.00
        end)::numeric(3, 2) as quality_score,
        array_remove(array[
            case when event_type is null then 'missing event_type' end,
            case when user_id is null then 'missing user_id' end,
            case when client_session_id is null then 'missing session_id' end
        ], null) as validation_errors,

        -- timestamps
        created_at,
        {{ utc_date('created_at') }} as event_date,
        ingested_at,
        ingested_at - created_at as ingestion_delay

    from events

)

select * from final
