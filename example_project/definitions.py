"""The example project's Definitions, the way dagster-branch recommends using it.

The same code runs everywhere; the deployment decides where it writes:

- production (``DAGSTER_CLOUD_DEPLOYMENT_NAME`` set) and local runs: the assets, plus the cleanup
  sensor ``branch_cleanup_sensor`` and job ``branch_cleanup`` (the warehouse under the resource
  key ``warehouse``, the S3 lake under ``lake``);
- branch deployments (``DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1``): the assets only, writing to the
  branch's own schema and prefix. Dagster+ runs no sensors there, and a branch never cleans.

With the ``dbt`` extra installed, the dbt models of ``shop_dbt/`` are assets too
(:mod:`example_project.transformations`).
"""

from __future__ import annotations

import importlib.util

import dagster as dg

from dagster_branch import (
    BranchTableIOManager,
    CleanupPolicy,
    DeploymentContext,
    branch_cleanup_definitions,
)
from example_project import resources
from example_project.assets import customers, orders, orders_export_asset, revenue_by_customer

__all__ = ["build_definitions"]


def build_definitions() -> dg.Definitions:
    """Build the Definitions from the current environment (see :mod:`example_project.resources`)."""
    deployment = DeploymentContext.from_env()
    warehouse = resources.warehouse()
    lake = resources.lake()
    assets: list[dg.AssetsDefinition] = [customers, orders, revenue_by_customer]
    bound: dict[str, object] = {
        "warehouse": warehouse,
        "io_manager": BranchTableIOManager(database=warehouse),
    }
    if _has_dbt():
        from example_project import transformations

        project = transformations.shop_project()
        dbt = transformations.dbt_resource(project, resources.dbt_warehouse_url())
        transformations.prepare(project, dbt)
        assets.append(transformations.shop_dbt_assets(project))
        bound["dbt"] = dbt
    if lake is not None:
        assets.append(orders_export_asset())
        bound["lake"] = lake
    # DuckDB and SQLite files take one writing process at a time: run their steps in one.
    single_writer = resources.is_single_writer()
    app = dg.Definitions(
        assets=assets,
        resources=bound,
        executor=dg.in_process_executor if single_writer else None,
    )
    if deployment.is_branch_deployment:
        return app
    stores = {"warehouse": warehouse, **({"lake": lake} if lake is not None else {})}
    cleanup = branch_cleanup_definitions(
        stores=stores,
        source=resources.pull_request_source(),
        policy=CleanupPolicy(grace_period=resources.grace_period()),
        # The job passes small Python objects between its ops: pickle them to files, since
        # this project's default io_manager writes tables.
        io_manager_key="cleanup_io_manager",
    )
    extra = dg.Definitions(resources={"cleanup_io_manager": dg.FilesystemIOManager()})
    return dg.Definitions.merge(app, cleanup, extra)


def _has_dbt() -> bool:
    """Whether the optional dbt extra (``dagster-branch[dbt]``) and an adapter are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("dagster_dbt", "dbt.adapters"))
