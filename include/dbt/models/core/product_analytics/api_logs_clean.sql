{#-
    Silver API logs: method and path normalised, status classified, validated. One row per log
    line. Incremental like events_clean: the lines that landed in the interval, merged by log_id.
-#}
{{
    config(
        materialized='incremental',
        unique_key='log_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['log_id'], 'unique': true}, {'columns': ['created_at']}],
    )
}}

with

logs as (

    select * from {{ ref('stg_product_analytics__api_logs_raw') }}
    where {{ landed_in_interval('_cursor', 'product_analytics', 'api_logs_raw') }}

),

normalised as (

    select
        *,
        upper(trim(method)) as http_method,
        nullif(split_part(endpoint, '?', 1), '') as endpoint_path
    from logs

),

final as (

    select
        -- ids
        log_id,
        user_id,

        -- request
        http_method as method,  -- noqa: RF04
        endpoint_path as endpoint,
        endpoint like '%?%' as has_query_string,

        -- response
        status_code,
        case
            when status_code between 100 and 599 then (status_code / 100)::text || 'xx'
        end as status_class,
        (status_code >= 500 or status_code = 0) as is_server_error,
        response_time_ms,
        properties ->> 'region' as region,
        source,

        -- quality
        (
            http_method in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
            and endpoint_path is not null
            and status_code between 100 and 599
            and response_time_ms >= 0
        ) is true as is_valid,
        array_remove(array[
            case when http_method is null or http_method not in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
                    then 'unknown method'
            end,
            case when endpoint_path is null then 'missing endpoint' end,
            case
                when status_code is null or status_code not between 100 and 599 then 'invalid status_code'
            end,
            case when response_time_ms is null or response_time_ms < 0 then 'invalid response_time_ms' end
        ], null) as validation_errors,

        -- timestamps
        created_at,
        {{ utc_date('created_at') }} as log_date,
        ingested_at

    from normalised

)

select * from final
