{#
    Shared metric predicates, so each rule is written once (definitions: README.md and the
    model YAML).
#}

{# Does subscription `s` (a fct_subscription row) count toward MRR on day `day`? #}
{% macro mrr_counts_on(day, s='subscriptions') -%}
    ({{ s }}.mrr_start_date <= {{ day }}
        and ({{ s }}.mrr_end_date is null or {{ day }} < {{ s }}.mrr_end_date))
{%- endmacro %}
