{#
    Fails on values outside [min_value, max_value] (either bound optional; nulls pass, pair
    with not_null when they must not occur). Rates use min 0, max 1; money and counts min 0.
#}
{% test in_range(model, column_name, min_value=none, max_value=none) %}

    select {{ column_name }}
    from {{ model }}
    where
        {%- if min_value is not none %}
        {{ column_name }} < {{ min_value }}
        {%- endif %}
        {%- if min_value is not none and max_value is not none %} or {% endif %}
        {%- if max_value is not none %}
        {{ column_name }} > {{ max_value }}
        {%- endif %}

{% endtest %}
