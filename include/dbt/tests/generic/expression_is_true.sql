{#
    Fails on every row where `expression` is not true (null counts as a failure only when
    `allow_null` is false). On a column, the expression is appended to the column name:
        - expression_is_true: {arguments: {expression: ">= started_at"}}   # on column ended_at
    On a model, it is a full predicate:
        - expression_is_true: {arguments: {expression: "finished_sessions <= sessions_started"}}
#}
{% test expression_is_true(model, expression, column_name=none, allow_null=true) %}

    {%- set predicate = (column_name ~ ' ' ~ expression) if column_name else expression -%}

    select *
    from {{ model }}
    where not coalesce(({{ predicate }}), {{ 'true' if allow_null else 'false' }})

{% endtest %}
