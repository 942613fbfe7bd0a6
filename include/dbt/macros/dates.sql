{# Calendar day of a timestamptz in UTC, whatever the session's TimeZone setting. #}
{% macro utc_date(column) -%}
    ({{ column }} at time zone 'UTC')::date
{%- endmacro %}

{# First day of the month of a date (use utc_date first for a timestamptz). #}
{% macro month_start(date_column) -%}
    date_trunc('month', {{ date_column }})::date
{%- endmacro %}

{# Safe ratio: numerator / denominator as numeric rounded to `scale` digits, null when denominator is 0. #}
{% macro ratio(numerator, denominator, scale=4) -%}
    round(({{ numerator }})::numeric / nullif(({{ denominator }})::numeric, 0), {{ scale }})
{%- endmacro %}
