"""What the tests know of the example project (``example_project/``): its assets, and how to
import it again under another environment."""

from __future__ import annotations

import sys

import dagster as dg

WAREHOUSE_ASSETS = frozenset({"customers", "orders", "revenue_by_customer"})
"""The Python assets that write to the warehouse."""

S3_ASSETS = frozenset({"orders_export"})
"""The Python asset that writes to S3: left out unless ``DATA_BUCKET`` names a bucket."""

PYTHON_ASSETS = WAREHOUSE_ASSETS | S3_ASSETS

DBT_TABLES = frozenset({"regions", "stg_regions", "region_targets", "region_events"})
"""The dbt project's seed and models (``example_project/shop_dbt``) in the base schema."""

DBT_ASSETS = DBT_TABLES | {"marts/region_summary"}
"""Every dbt node as a Dagster asset key: the base schema's and the marts model."""


def asset_names(defs: dg.Definitions) -> set[str]:
    """Every asset key of ``defs``, as ``a/b`` strings."""
    return {key.to_user_string() for key in defs.resolve_all_asset_keys()}


def forget_example_project() -> None:
    """Forget the imported ``example_project``: it builds its Definitions from the environment
    when imported, so the next import sees the environment of the moment."""
    for name in [m for m in sys.modules if m.split(".")[0] == "example_project"]:
        del sys.modules[name]
