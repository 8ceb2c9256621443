"""The ``deploy`` fixture: switching deployments the way Dagster+ does."""

from tests.support.deployments import deploy

__all__ = ["deploy"]
