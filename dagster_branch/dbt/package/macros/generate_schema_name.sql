{#
    Schema routing for dagster-branch.

    Production and local runs: dbt's own names (the target schema, or
    "<target schema>_<custom schema>").

    Branch deployments: dagster_branch.dbt passes
        --vars '{"dagster_branch": {"namespace": "pr_7",
                 "schemas": {"analytics": "analytics__pr_7",
                             "analytics_marts": "analytics_marts__pr_7"}}}'
    built by the same naming rules as BranchDatabaseResource, and each production name is
    replaced by the namespace's name for it. A production name without an entry stops the
    parse: a branch must never write where the cleanup cannot find it.

    Use it from the project's own macros/generate_schema_name.sql:

        {% macro generate_schema_name(custom_schema_name, node) -%}
            {{ dagster_branch.generate_schema_name(custom_schema_name, node) }}
        {%- endmacro %}

    A project with its own production naming routes that instead:
        {{ dagster_branch.branch_schema_name(my_production_name(custom_schema_name, node)) }}
#}

{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set production = dbt.default__generate_schema_name(custom_schema_name, node) | trim -%}
    {%- set routing = var("dagster_branch", none) -%}
    {%- if routing is not none and node is not none and node.resource_type == "test"
            and production not in routing["schemas"] -%}
        {#- Tests build nothing unless they store failures: those go to the branch's own
            target schema rather than to a custom audit schema nobody routed. -#}
        {%- set production = dbt.default__generate_schema_name(none, node) | trim -%}
    {%- endif -%}
    {{- dagster_branch.branch_schema_name(production) -}}
{%- endmacro %}


{% macro branch_schema_name(production_schema) -%}
    {%- set routing = var("dagster_branch", none) -%}
    {%- if routing is none -%}
        {{- production_schema -}}
    {%- elif production_schema in routing["schemas"] -%}
        {{- routing["schemas"][production_schema] -}}
    {%- else -%}
        {{- exceptions.raise_compiler_error(
            "dagster-branch: schema '" ~ production_schema ~ "' is not routed for namespace "
            ~ routing["namespace"] ~ " (routed: " ~ (routing["schemas"] | list | join(", "))
            ~ "). Add '" ~ production_schema ~ "' to extra_schemas of the warehouse's "
            ~ "BranchDatabaseResource, so that the branch writes its own version of it and the "
            ~ "cleanup can find that.") -}}
    {%- endif -%}
{%- endmacro %}
