"""Fixtures for the warehouse resource tests: one real backend per parameter, and deployments set
the way Dagster+ sets them (environment variables)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from warehouse_support import Backend, Deploy

from dagster_branch.context import DeploymentContext

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
    variables = (
        "DAGSTER_CLOUD_DEPLOYMENT_NAME",
        "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT",
        "DAGSTER_CLOUD_PULL_REQUEST_ID",
        "DAGSTER_CLOUD_GIT_BRANCH",
        "DAGSTER_CLOUD_GIT_SHA",
        "DAGSTER_BRANCH_USER",
    )

    def switch(kind: str, *, pr: int | None = None, user: str = "alice") -> DeploymentContext:
        for name in variables:
            monkeypatch.delenv(name, raising=False)
        if kind == "production":
            monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
        elif kind == "branch":
            monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", f"5f2c0a9e1b7d{pr}")
            monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
            monkeypatch.setenv("DAGSTER_CLOUD_PULL_REQUEST_ID", str(pr))
            monkeypatch.setenv("DAGSTER_CLOUD_GIT_BRANCH", f"feature/pr-{pr}")
            monkeypatch.setenv("DAGSTER_CLOUD_GIT_SHA", "a1b2c3d4e5f6")
        else:
            monkeypatch.setenv("DAGSTER_BRANCH_USER", user)
        return DeploymentContext.from_env()

    yield switch
