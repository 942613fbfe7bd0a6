{#
    Schema names are the layer names, exactly as written in dbt_project.yml (+schema per folder).
    dbt's default would prefix them with the target schema (public_silver_stg); every environment
    here has its own database, so the plain name is both safe and what BI tools and DAGs expect.

    A product folder (models/<layer>/<product>/) without a +schema gets its product's schema for
    the layer, so a new product needs no line in dbt_project.yml and two products never share a
    schema: staging -> stg_<product>, core -> silver_<product>, marts -> gold_<product>,
    metrics -> gold_<product>_metrics, platinum -> platinum_<product> (the freshness checks read silver_* / gold_* schemas).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set layer_schemas = {
        'staging': 'stg_', 'core': 'silver_', 'marts': 'gold_', 'metrics': 'gold_', 'platinum': 'platinum_'
    } -%}
    {%- set fqn = node.fqn or [] -%}
    {%- if custom_schema_name is not none -%}
        {#- a layer or product folder set +schema: use it verbatim, not <target.schema>_<custom> -#}
        {{ custom_schema_name | trim }}
    {%- elif node.resource_type == 'model' and fqn | length > 3 and fqn[1] in layer_schemas -%}
        {#- models/<layer>/<product>/<model>: the product's schema of that layer -#}
        {{ layer_schemas[fqn[1]] ~ fqn[2] ~ ('_metrics' if fqn[1] == 'metrics' else '') }}
    {%- else -%}
        {#- no +schema for this node (e.g. a stored test failure): the profile's target schema -#}
        {{ target.schema }}
    {%- endif -%}
{%- endmacro %}
