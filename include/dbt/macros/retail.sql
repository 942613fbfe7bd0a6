{#
    Retail's schema enforcement helpers (models/core/retail). Each parser returns null for text it
    cannot read, never an error: a payload that fails is quarantined with its reason, and one bad
    row must not fail the whole silver build.
#}

{# The canonical categories (accepted_values in the YAML lists the same). #}
{% macro retail_categories() -%}
    {{ return(['beverages', 'snacks', 'personal_care', 'household', 'dairy', 'canned_goods']) }}
{%- endmacro %}

{#
    A category as sent -> its canonical name, or null when unknown: case, spaces, '&'/'-' and the
    synonyms the feeds use are folded ("Personal Care", " personal-care ", "Drinks" -> beverages).
#}
{% macro retail_category(text_column) -%}
    (case regexp_replace(lower(trim({{ text_column }})), '[\s&-]+', '_', 'g')
        {%- for category in retail_categories() %}
        when '{{ category }}' then '{{ category }}'
        {%- endfor %}
        when 'beverage' then 'beverages'
        when 'drinks' then 'beverages'
        when 'snack' then 'snacks'
        when 'canned' then 'canned_goods'
        when 'toiletries' then 'personal_care'
    end)
{%- endmacro %}

{#
    A date sent in either of the feeds' formats: ISO 'YYYY-MM-DD' (webhooks, Drive) or US
    'MM/DD/YYYY' (the POS CSV export). Null when neither, or not a real day (2026-02-30): the day
    is rebuilt from its parts and must land in the same month.
#}
{% macro retail_parse_date(text_column) -%}
    (
        with parts as (
            select
                case
                    when {{ text_column }} ~ '^\d{4}-\d{2}-\d{2}$'
                        then array[substr({{ text_column }}, 1, 4), substr({{ text_column }}, 6, 2), substr({{ text_column }}, 9, 2)]
                    when {{ text_column }} ~ '^\d{2}/\d{2}/\d{4}$'
                        then array[substr({{ text_column }}, 7, 4), substr({{ text_column }}, 1, 2), substr({{ text_column }}, 4, 2)]
                end::integer[] as ymd
        ),

        candidate as (
            select
                ymd,
                case when ymd[2] between 1 and 12 and ymd[3] between 1 and 31 and ymd[1] between 1900 and 2999
                    then (make_date(ymd[1], ymd[2], 1) + (ymd[3] - 1))
                end as day
            from parts
        )

        select day from candidate where extract(month from day) = ymd[2]
    )
{%- endmacro %}

{# Text that is a plain decimal number ("12", "-3.50", " 7 " once trimmed) -> numeric, else null. #}
{% macro retail_number(text_column) -%}
    (case when {{ text_column }} ~ '^-?\d{1,10}(\.\d{1,6})?$' then ({{ text_column }})::numeric end)
{%- endmacro %}

{# Text that is a whole number -> integer, else null ("2.0" is not a quantity). #}
{% macro retail_integer(text_column) -%}
    (case when {{ text_column }} ~ '^-?\d{1,9}$' then ({{ text_column }})::integer end)
{%- endmacro %}


{#
    retail_landing(table): one row per landed payload of a retail landing table (the latest bronze
    version of each landing row), untouched: the JSONB is judged in silver (models/core/retail),
    where a failing payload is quarantined. Both landing tables have the same shape.
#}
{% macro retail_landing(table) -%}
with

source as (

    {{ latest_live_version(source('retail', table)) }}

),

final as (

    select
        -- ids
        id as landing_id,

        -- the payload, as delivered
        payload,
        jsonb_typeof(payload) as payload_type,

        -- where it came from
        source as landed_via,
        file_name,
        line_number,
        request_id,

        -- timestamps
        received_at,

        -- lineage
        _cursor,
        _loaded_at

    from source

)

select * from final
{%- endmacro %}
