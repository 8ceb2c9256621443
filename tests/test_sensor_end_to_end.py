"""From a closed pull request to a removed schema: the real warehouse resource, every source.

Branch deployments write through ``BranchDatabaseResource`` (deployments are switched with the
environment variables Dagster+ sets); the production sensor then sees their namespaces, asks a
source, requests the cleanup, and the cleanup job runs with exactly that run config.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from dagster_branch import (
    BranchDatabaseResource,
    DagsterPlusBranchDeployments,
    GitHubPullRequests,
    GitLabMergeRequests,
    GitRemoteBranches,
    Namespace,
    branch_cleanup_definitions,
)
from dagster_branch.detection import CleanupPolicy
from dagster_branch.dialects import list_schema_names
from tests.sources.stand_ins import (
    DagsterPlusStandIn,
    GitHubStandIn,
    GitLabStandIn,
    json_response,
)
from tests.sources.test_git import commit, git
from tests.support.deployments import Deploy, deploy

__all__ = ["deploy"]  # the fixture, for the tests below

NOW = datetime.now(timezone.utc)


def write_table(url: str) -> None:
    """What a branch (or production) deployment's asset does: write one table where routed."""
    warehouse = BranchDatabaseResource(url=url, base_schema="analytics")
    try:
        warehouse.ensure_namespace()
        with warehouse.get_connection() as conn:
            conn.execute(sa.text(f"CREATE TABLE {warehouse.table('orders')} AS SELECT 1 AS id"))
    finally:
        warehouse.close()


def schemas(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {s for s in list_schema_names(conn) if s.startswith("analytics")}
    finally:
        engine.dispose()


def production_defs(url: str, source: Any, **kwargs: Any) -> dg.Definitions:
    warehouse = BranchDatabaseResource(url=url, base_schema="analytics")
    return branch_cleanup_definitions(stores={"warehouse": warehouse}, source=source, **kwargs)


def tick(defs: dg.Definitions, cursor: str | None = None) -> Any:
    (sensor,) = defs.sensors or []
    assert isinstance(sensor, dg.SensorDefinition)
    with dg.build_sensor_context(
        cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        return sensor.evaluate_tick(context)


def run_cleanup(defs: dg.Definitions, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("branch_cleanup")
    with dg.DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags
        )


def test_github_merged_pr_is_cleaned_on_postgresql(
    postgres_url: str, httpserver: HTTPServer, deploy: Deploy
) -> None:
    github = GitHubStandIn(httpserver, token="ghp_e2e")
    github.clock = NOW - timedelta(days=2)
    github.add(1)
    github.add(2)
    github.close(1, merged=True, at=NOW - timedelta(hours=1))
    deploy("production")
    write_table(postgres_url)
    for number in (1, 2):
        deploy("branch", pr=number)
        write_table(postgres_url)
    assert schemas(postgres_url) == {"analytics", "analytics__pr_1", "analytics__pr_2"}

    deploy("production")
    source = GitHubPullRequests(
        repository=github.repository, token="ghp_e2e", api_url=github.api_url
    )
    defs = production_defs(postgres_url, source)
    first = tick(defs)
    (request,) = first.run_requests

    result = run_cleanup(defs, request)

    assert result.success
    assert schemas(postgres_url) == {"analytics", "analytics__pr_2"}
    after = tick(defs, first.cursor)
    assert not after.run_requests
    assert "1 live namespace(s)" in after.skip_message
    assert "pr_2: pull request #2 is open" in after.skip_message


def test_git_remote_deleted_branch_is_cleaned_on_duckdb(
    duckdb_url: str, tmp_path: Path, deploy: Deploy
) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    commit(origin, "README")
    for branch in ("feature/orders", "feature/users"):
        git(origin, "checkout", "-q", "-b", branch, "main")
        commit(origin, branch.replace("/", "-"))
        deploy("branch", branch=branch)  # a branch deployment without a pull request
        write_table(duckdb_url)
    git(origin, "checkout", "-q", "main")
    orders, users = Namespace.for_branch("feature/orders"), Namespace.for_branch("feature/users")

    deploy("production")
    source = GitRemoteBranches(remote=str(origin), cache_dir=str(tmp_path / "cache"))
    defs = production_defs(duckdb_url, source, policy=CleanupPolicy(grace_period=timedelta(0)))
    first = tick(defs)
    assert not first.run_requests and "2 active" in first.skip_message

    git(origin, "merge", "-q", "--no-ff", "-m", "merge orders", "feature/orders")
    git(origin, "branch", "-q", "-D", "feature/orders")
    second = tick(defs, first.cursor)
    (request,) = second.run_requests
    assert request.tags["dagster-branch/namespace"] == orders.key
    assert request.tags["dagster-branch/state"] == "merged"
    assert "dagster-branch/pull-request" not in request.tags

    assert run_cleanup(defs, request).success
    assert schemas(duckdb_url) == {f"analytics__{users.key}"}


def test_gitlab_merged_and_closed_are_cleaned_locked_is_not(
    duckdb_url: str, httpserver: HTTPServer, deploy: Deploy
) -> None:
    gitlab = GitLabStandIn(httpserver, token="glpat-e2e")
    gitlab.clock = NOW - timedelta(days=1)
    for iid in (1, 2, 3):
        gitlab.add(iid)
        deploy("branch", pr=iid)
        write_table(duckdb_url)
    gitlab.finish(1, "merged")
    gitlab.finish(2, "closed")
    gitlab.finish(3, "locked")

    deploy("production")
    source = GitLabMergeRequests(project=gitlab.project, token="glpat-e2e", api_url=gitlab.api_url)
    result = tick(production_defs(duckdb_url, source))

    states = {
        r.tags["dagster-branch/namespace"]: r.tags["dagster-branch/state"]
        for r in result.run_requests
    }
    assert states == {"pr_1": "merged", "pr_2": "closed"}


def test_dagster_plus_closed_pr_is_requested_once_and_fails_closed_on_surprises(
    duckdb_url: str, httpserver: HTTPServer, deploy: Deploy
) -> None:
    plus = DagsterPlusStandIn(httpserver, token="user:e2e")
    plus.add(branch="feature/a", number=11, status="CLOSED")
    plus.add(branch="feature/b", number=12, status="OPEN")
    for number in (11, 12):
        deploy("branch", pr=number)
        write_table(duckdb_url)

    deploy("production")
    source = DagsterPlusBranchDeployments(organization="hooli", api_token="user:e2e", url=plus.url)
    defs = production_defs(duckdb_url, source, policy=CleanupPolicy(grace_period=timedelta(0)))
    first = tick(defs)
    assert [r.tags["dagster-branch/namespace"] for r in first.run_requests] == ["pr_11"]

    second = tick(defs, first.cursor)
    assert not second.run_requests, "the closing time is kept, so the run key is the same"
    assert "1 cleanup(s) already requested" in second.skip_message

    plus.fail_with(
        json_response(
            {"data": {"branchDeployments": {"__typename": "PythonError", "message": "x"}}}
        )
    )
    third = tick(defs, second.cursor)
    assert not third.run_requests
    assert "PythonError" in third.skip_message
    assert third.cursor == second.cursor


def test_the_schedule_makes_the_sensors_decisions(
    duckdb_url: str, httpserver: HTTPServer, deploy: Deploy
) -> None:
    github = GitHubStandIn(httpserver, token="ghp_e2e")
    github.clock = NOW - timedelta(days=2)
    for number in (1, 2, 3):
        github.add(number)
        deploy("branch", pr=number)
        write_table(duckdb_url)
    github.close(1, merged=True, at=NOW - timedelta(hours=3))
    github.close(2, at=NOW - timedelta(hours=2))

    deploy("production")
    source = GitHubPullRequests(
        repository=github.repository, token="ghp_e2e", api_url=github.api_url
    )
    defs = production_defs(duckdb_url, source, include_schedule=True)
    schedule = defs.resolve_schedule_def("branch_cleanup_schedule")
    assert schedule.cron_schedule == "0 3 * * *"
    with dg.build_schedule_context(resources=defs.resources) as context:
        scheduled = schedule.evaluate_tick(context)

    sensed = tick(defs)
    assert sorted(r.run_key or "" for r in scheduled.run_requests or []) == sorted(
        r.run_key or "" for r in sensed.run_requests
    )
    assert len(sensed.run_requests) == 2


def test_definitions_hold_resources_job_sensor_and_optional_schedule(
    duckdb_url: str, httpserver: HTTPServer
) -> None:
    github = GitHubStandIn(httpserver)
    source = GitHubPullRequests(repository=github.repository, token="x", api_url=github.api_url)
    defs = production_defs(duckdb_url, source, policy=CleanupPolicy(stale_after=timedelta(days=30)))
    assert set(defs.resources or {}) == {"warehouse", "pull_requests"}
    assert defs.resolve_job_def("branch_cleanup").name == "branch_cleanup"
    sensor = defs.resolve_sensor_def("branch_cleanup_sensor")
    assert sensor.job_name == "branch_cleanup"
    assert sensor.required_resource_keys == {"warehouse", "pull_requests"}
    assert not defs.schedules
    dg.Definitions.validate_loadable(defs)
