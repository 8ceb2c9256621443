"""Fixtures for the warehouse resource tests: one real backend per parameter, and deployments set
the way Dagster+ sets them (environment variables)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from warehouse_support import Backend, Deploy

from dagster_branch.context import DeploymentContext
from dagster_branch.testing import DEPLOYMENT_VARIABLE_PREFIXES, deployment_variables

BACKENDS = {
    "postgresql": ("postgres_url", "analytics"),
    "duckdb": ("duckdb_url", "analytics"),
    "sqlite": ("sqlite_url", "main"),  # SQLite's own schema as production
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    fixture, base = BACKENDS[request.param]
    return Backend(request.param, str(request.getfixturevalue(fixture)), base)


@pytest.fixture
def deploy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deploy]:
    """Switch the environment to a deployment: ``deploy("production")``, ``deploy("branch",
    pr=1)``, ``deploy("local", user="alice")``; returns the context the resources will see."""

    def switch(kind: str, *, pr: int | None = None, user: str = "alice") -> DeploymentContext:
        if kind == "branch":
            variables = deployment_variables(
                "branch", pr=pr, deployment_name=f"5f2c0a9e1b7d{pr}", git_sha="a1b2c3d4e5f6"
            )
        else:
            variables = deployment_variables(kind, user=user if kind == "local" else None)
        for name in list(os.environ):
            if name.startswith(DEPLOYMENT_VARIABLE_PREFIXES):
                monkeypatch.delenv(name)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return DeploymentContext.from_env()

    yield switch
