"""dbt in branch deployments: routed, deferred to production, recorded and cleaned.

Install with ``pip install 'dagster-branch[dbt]'``. Three pieces, documented in docs/dbt.md:

- a dbt package (:data:`DBT_PACKAGE_DIR`, installed with a ``local:`` entry in
  ``packages.yml``) whose ``generate_schema_name`` macro maps the target schema and every custom
  schema to the namespace's schema (``analytics`` -> ``analytics__pr_7``), under the same rules as
  :class:`~dagster_branch.BranchDatabaseResource`;
- :func:`branch_dbt_cli`, the one call in a ``@dbt_assets`` function: it passes the routing
  variable, defers to the production manifest (``--defer --state <state_path> --favor-state``)
  and records what dbt built in the ledger;
- ``extra_schemas`` on the warehouse resource, listing the production schemas of dbt's custom
  schemas, so the cleanup knows their branch versions.

Example::

    from dagster import AssetExecutionContext, Definitions
    from dagster_dbt import DbtCliResource, DbtProject, dbt_assets
    from dagster_branch import BranchDatabaseResource
    from dagster_branch.dbt import branch_dbt_cli

    shop_project = DbtProject(project_dir="shop_dbt", state_path="state")

    @dbt_assets(manifest=shop_project.manifest_path)
    def shop_dbt(context: AssetExecutionContext, dbt: DbtCliResource,
                 warehouse: BranchDatabaseResource):
        yield from branch_dbt_cli(dbt, ["build"], warehouse=warehouse, context=context).stream()

    warehouse = BranchDatabaseResource(url=..., base_schema="analytics",
                                       extra_schemas=["analytics_marts"])
    defs = Definitions(assets=[shop_dbt], resources={
        "dbt": DbtCliResource(project_dir=shop_project), "warehouse": warehouse})
"""

from pathlib import Path

from dagster_branch.dbt.artifacts import BuiltRelation, built_relations
from dagster_branch.dbt.invocation import BranchDbtInvocation, branch_dbt_cli, record_dbt_relations
from dagster_branch.dbt.routing import ROUTING_VAR, DbtRouting

__all__ = [
    "DBT_PACKAGE_DIR",
    "ROUTING_VAR",
    "BranchDbtInvocation",
    "BuiltRelation",
    "DbtRouting",
    "branch_dbt_cli",
    "built_relations",
    "record_dbt_relations",
]

DBT_PACKAGE_DIR = Path(__file__).resolve().parent / "package"
"""The dbt package shipped with dagster-branch: the ``local:`` path for ``packages.yml``."""
