"""Dagster IO managers built on the branch-aware resources."""

from dagster_branch.io_managers.database import BranchTableIOManager
from dagster_branch.io_managers.existing import branch_io_manager
from dagster_branch.io_managers.s3 import BranchS3PickleIOManager

__all__ = ["BranchS3PickleIOManager", "BranchTableIOManager", "branch_io_manager"]
