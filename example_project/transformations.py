"""The example's dbt models, loaded as Dagster assets next to the Python ones.

The dbt project ``shop_dbt/`` (a seed, a view, a table, an incremental model, a model in the
custom schema ``marts`` and tests) runs on the same warehouse as
:class:`~dagster_branch.BranchDatabaseResource`: its profile follows ``WAREHOUSE_URL`` (DuckDB by
default, PostgreSQL when the URL says so). :func:`~dagster_branch.dbt.branch_dbt_cli` routes it:

=============  =====================================  =====================================
deployment     ``region_targets`` (target schema)     ``marts.region_summary`` (custom)
=============  =====================================  =====================================
production     ``analytics.region_targets``           ``analytics_marts.region_summary``
PR 7           ``analytics__pr_7.region_targets``     ``analytics_marts__pr_7.region_summary``
=============  =====================================  =====================================

A branch reads the models it does not build from production: production's ``manifest.json`` is
expected in ``SHOP_DBT_STATE_DIR`` (default ``shop_dbt/state``), where
``dagster-cloud ci dagster-dbt project manage-state`` puts it in a branch deployment's build.
"""

# No `from __future__ import annotations`: Dagster reads the context annotation at run time.
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster import AssetExecutionContext
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from dagster_branch import BranchDatabaseResource
from dagster_branch.dbt import branch_dbt_cli

__all__ = [
    "SHOP_DBT_DIR",
    "dbt_resource",
    "prepare",
    "profile_environment",
    "shop_dbt_assets",
    "shop_project",
]

SHOP_DBT_DIR = Path(__file__).resolve().parent / "shop_dbt"


def shop_project() -> DbtProject:
    """The dbt project; production's manifest is expected in ``SHOP_DBT_STATE_DIR``. dbt's own
    ``DBT_TARGET_PATH`` (which dagster-dbt also reads) moves its artifacts out of ``target/``."""
    state = os.environ.get("SHOP_DBT_STATE_DIR", "").strip() or "state"
    target = os.environ.get("DBT_TARGET_PATH", "").strip() or "target"
    return DbtProject(project_dir=SHOP_DBT_DIR, state_path=state, target_path=target)


def prepare(project: DbtProject, dbt: DbtCliResource) -> None:
    """``dbt deps`` (a local package: no network) and ``dbt parse`` when the manifest is missing,
    as ``dagster-dbt project prepare-and-package`` does at build time."""
    if project.manifest_path.exists():
        return
    # Two processes loading the project at once (a code server and the CLI, parallel tests)
    # would both write dbt_packages/ and the target folder: the first prepares, the others wait.
    project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with open(project.project_dir / "dbt_packages.concurrent-update-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not project.manifest_path.exists():
            dbt.cli(["deps", "--quiet"], target_path=project.target_path).wait()
            dbt.cli(["parse", "--quiet"], target_path=project.target_path).wait()


def profile_environment(url: str) -> dict[str, str]:
    """The ``SHOP_DBT_*`` variables ``shop_dbt/profiles.yml`` reads, for the warehouse at ``url``.

    The password goes to ``DBT_ENV_SECRET_SHOP_PASSWORD``: dbt scrubs ``DBT_ENV_SECRET_`` values
    from its logs.
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "duckdb":
        return {"SHOP_DBT_TARGET": "duckdb", "SHOP_DBT_PATH": str(parsed.database or "")}
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"The example's dbt project runs on DuckDB or PostgreSQL, not {url!r}.")
    return {
        "SHOP_DBT_TARGET": "postgres",
        "SHOP_DBT_HOST": parsed.host or "localhost",
        "SHOP_DBT_PORT": str(parsed.port or 5432),
        "SHOP_DBT_USER": parsed.username or "",
        "SHOP_DBT_DBNAME": parsed.database or "",
        "DBT_ENV_SECRET_SHOP_PASSWORD": str(parsed.password or ""),
    }


def dbt_resource(project: DbtProject, url: str) -> DbtCliResource:
    """The dbt CLI resource, its profile pointed at ``url`` through the environment."""
    os.environ.update(profile_environment(url))  # dbt reads its profile from the environment
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"  # no network
    # The dbt of this Python environment, also when its bin folder is not on PATH.
    beside = Path(sys.executable).with_name("dbt")
    return DbtCliResource(
        project_dir=project, dbt_executable=str(beside) if beside.exists() else "dbt"
    )


def shop_dbt_assets(project: DbtProject) -> dg.AssetsDefinition:
    """The dbt models, seed and tests as assets and checks, run branch-aware."""

    @dbt_assets(manifest=project.manifest_path, project=project, name="shop_dbt")
    def shop_dbt(
        context: AssetExecutionContext, dbt: DbtCliResource, warehouse: BranchDatabaseResource
    ) -> Iterator[Any]:
        yield from branch_dbt_cli(dbt, ["build"], warehouse=warehouse, context=context).stream()

    return shop_dbt
