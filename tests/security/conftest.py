"""Fixtures shared with the fault tests: switching deployments the way Dagster+ does."""

from tests.faults.world import deploy

__all__ = ["deploy"]
