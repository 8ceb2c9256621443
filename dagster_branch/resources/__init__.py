"""Branch-aware Dagster resources: each deployment reads and writes its own corner of a store."""

from dagster_branch.resources.database import BranchDatabaseResource, TableLocation

__all__ = ["BranchDatabaseResource", "TableLocation"]
