{#
    Schema names are the layer names, exactly as written in dbt_project.yml (+schema per folder).
    dbt's default would prefix them with the target schema (public_silver_stg); every environment
    here has its own database, so the plain name is both safe and what BI tools and DAGs expect.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {#- no +schema for this node (e.g. a stored test failure): the profile's target schema -#}
        {{ target.schema }}
    {%- else -%}
        {#- a layer folder set +schema: use it verbatim, not <target.schema>_<custom> -#}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
