"""Dagster IO managers built on the branch-aware resources."""

from dagster_branch.io_managers.database import BranchTableIOManager

__all__ = ["BranchTableIOManager"]
