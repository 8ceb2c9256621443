"""Fixtures of the cleanup tests: a platform built through the real resources, a GitHub stand-in
for the pull requests, and a runner for the cleanup job in the production deployment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer

from dagster_branch.sources.github import GitHubPullRequests
from tests.cleanup.helpers import CLEANUP_JOB, cleanup_config
from tests.cleanup.world import PRODUCTION, World, deployment
from tests.sources.stand_ins import GitHubStandIn
from tests.support.deployments import deploy as deploy  # the fixture, for every cleanup test

URL_FIXTURES = {"postgresql": "postgres_url", "duckdb": "duckdb_url", "sqlite": "sqlite_url"}


@pytest.fixture(params=sorted(URL_FIXTURES))
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """The warehouse on each real dialect: PostgreSQL (server), DuckDB and SQLite (files)."""
    return str(request.getfixturevalue(URL_FIXTURES[request.param]))


@pytest.fixture
def world(warehouse_url: str, s3_endpoint: str) -> World:
    """Production, PR 7 and PR 8 have written tables, lake files and exports."""
    platform = World(warehouse_url=warehouse_url, s3_endpoint=s3_endpoint)
    platform.build()
    return platform


@pytest.fixture
def pg_world(postgres_url: str, s3_endpoint: str) -> World:
    """The platform on PostgreSQL only, for behaviours that do not depend on the dialect."""
    platform = World(warehouse_url=postgres_url, s3_endpoint=s3_endpoint)
    platform.build()
    return platform


@pytest.fixture
def big_world(postgres_url: str, s3_endpoint: str) -> World:
    """The platform on PostgreSQL, with 2,100 keys (three DeleteObjects batches) under PR 7.

    The S3 side does not depend on the warehouse dialect, so one dialect carries the big case.
    """
    platform = World(warehouse_url=postgres_url, s3_endpoint=s3_endpoint)
    platform.build(pr_7_lake_keys=2_100)
    return platform


@pytest.fixture
def github(httpserver: HTTPServer) -> GitHubStandIn:
    """GitHub answering for acme/data: PR 7 merged, PR 8 still open."""
    stand_in = GitHubStandIn(httpserver, repository="acme/data", token="ghp_cleanup_test")
    stand_in.add(7, head="feature/pr-7")
    stand_in.add(8, head="feature/pr-8")
    stand_in.close(7, merged=True)
    return stand_in


@pytest.fixture
def pull_requests(github: GitHubStandIn) -> GitHubPullRequests:
    return GitHubPullRequests(
        repository="acme/data", token="ghp_cleanup_test", api_url=github.api_url
    )


RunCleanup = Callable[..., dg.ExecuteInProcessResult]


@pytest.fixture
def run_cleanup(pull_requests: GitHubPullRequests) -> RunCleanup:
    """Run the cleanup job in the production deployment, with fresh resources each time."""

    def run(
        world: World,
        namespace: str = "pr_7",
        *,
        stores: dict[str, Any] | None = None,
        **config: Any,
    ) -> dg.ExecuteInProcessResult:
        with deployment(PRODUCTION):
            return CLEANUP_JOB.execute_in_process(
                run_config=cleanup_config(namespace, **config),
                resources={**(stores or world.stores()), "pull_requests": pull_requests},
                raise_on_error=False,
            )

    return run
