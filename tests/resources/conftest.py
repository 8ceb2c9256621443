"""Fixtures for the warehouse resource tests: one real backend per parameter, and ``deploy``
(deployments set the way Dagster+ sets them, with environment variables)."""

from __future__ import annotations

import pytest
from warehouse_support import Backend

from tests.support.deployments import deploy

BACKENDS = {
    "postgresql": ("postgres_url", "analytics"),
    "duckdb": ("duckdb_url", "analytics"),
    "sqlite": ("sqlite_url", "main"),  # SQLite's own schema as production
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    fixture, base = BACKENDS[request.param]
    return Backend(request.param, str(request.getfixturevalue(fixture)), base)


__all__ = ["backend", "deploy"]
