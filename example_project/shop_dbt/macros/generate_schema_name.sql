{# Branch deployments write to their namespace's schemas; production keeps dbt's names. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ dagster_branch.generate_schema_name(custom_schema_name, node) }}
{%- endmacro %}
