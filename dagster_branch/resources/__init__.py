"""Branch-aware Dagster resources: each deployment reads and writes its own corner of a store."""

from dagster_branch.resources.database import BranchDatabaseResource, TableLocation
from dagster_branch.resources.s3 import BranchS3Resource

__all__ = ["BranchDatabaseResource", "BranchS3Resource", "TableLocation"]
