"""The Git host and the Dagster+ API misbehaving, seen end to end through the sensor and the job.

The ``written_warehouse``: a DuckDB warehouse where production, ``pr_7`` (merged an hour ago)
and ``pr_8`` (open) have written. Between the production deployment and the API stand-in sits
the fault proxy (or the stand-in itself answers badly). For every fault the promise is the
same (docs/safety.md, promise 4): the sensor requests no cleanup and its skip reason says why,
its cursor does not move, the cleanup job refuses to remove anything, and once the host behaves
the next tick requests the cleanup and the run removes ``pr_7`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from dagster_branch import (
    DagsterPlusBranchDeployments,
    GitHubPullRequests,
    GitLabMergeRequests,
    branch_cleanup_definitions,
)
from dagster_branch.detection import CleanupPolicy
from tests.cleanup.helpers import failure_text
from tests.sources.stand_ins import (
    DagsterPlusStandIn,
    GitHubStandIn,
    GitLabStandIn,
    json_response,
    rate_limited,
)
from tests.support.deployments import Deploy
from tests.support.snapshots import database_snapshot

from .proxy import Drop, Forward, HttpFaultProxy, Rule, Truncate, bad_gateway
from .world import run_cleanup, warehouse, write_tables

NOW = datetime.now(timezone.utc)
TOKEN = "ghp_faults"


@pytest.fixture
def written_warehouse(duckdb_url: str, deploy: Deploy) -> str:
    """The URL of a warehouse where production, pr_7 and pr_8 have each written their
    ``orders`` table."""
    deploy("production")
    write_tables(duckdb_url)
    for pr in (7, 8):
        deploy("branch", pr=pr)
        write_tables(duckdb_url)
    deploy("production")
    return duckdb_url


@pytest.fixture
def github(httpserver: HTTPServer) -> GitHubStandIn:
    """pr_7 merged an hour ago, pr_8 open."""
    stand_in = GitHubStandIn(httpserver, token=TOKEN)
    stand_in.clock = NOW - timedelta(days=2)
    stand_in.add(7)
    stand_in.add(8)
    stand_in.close(7, merged=True, at=NOW - timedelta(hours=1))
    return stand_in


@pytest.fixture
def github_proxy(github: GitHubStandIn) -> Iterator[HttpFaultProxy]:
    with HttpFaultProxy(github.api_url) as proxy:
        yield proxy


def _defs(url: str, source: Any) -> dg.Definitions:
    return branch_cleanup_definitions(
        stores={"warehouse": warehouse(url)},
        source=source,
        policy=CleanupPolicy(grace_period=timedelta(minutes=10)),
    )


def _tick(defs: dg.Definitions, cursor: str | None = None) -> Any:
    sensor = defs.resolve_sensor_def("branch_cleanup_sensor")
    with dg.build_sensor_context(
        cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        return sensor.evaluate_tick(context)


def _github_source(proxy: HttpFaultProxy) -> GitHubPullRequests:
    return GitHubPullRequests(
        repository="octo-org/analytics", token=TOKEN, api_url=proxy.url, timeout_seconds=0.2
    )


def _assert_fails_closed(
    written_warehouse: str, defs: dg.Definitions, cursor: str | None, why: str, *, job: bool = True
) -> None:
    """No run request, a skip reason naming the problem, the cursor kept, nothing removed;
    with ``job``, the cleanup job asked directly refuses too."""
    before = database_snapshot(written_warehouse)
    outcome = _tick(defs, cursor)
    assert outcome.run_requests == []
    assert why in outcome.skip_message, outcome.skip_message
    assert "nothing is cleaned" in outcome.skip_message.lower()
    if cursor is not None:
        assert outcome.cursor == cursor
    if not job:
        assert database_snapshot(written_warehouse) == before
        return
    refused = run_cleanup(
        {"warehouse": warehouse(written_warehouse)},
        "pr_7",
        source=defs.resources["pull_requests"],  # type: ignore[index]
    )
    assert not refused.success
    assert "could not tell whether pr_7 is closed" in failure_text(refused)
    assert database_snapshot(written_warehouse) == before


def _assert_recovers(written_warehouse: str, defs: dg.Definitions, cursor: str | None) -> None:
    before = database_snapshot(written_warehouse)
    outcome = _tick(defs, cursor)
    assert len(outcome.run_requests) == 1, outcome.skip_message
    (request,) = outcome.run_requests
    assert request.tags["dagster-branch/namespace"] == "pr_7"
    job = defs.resolve_job_def("branch_cleanup")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(run_config=request.run_config, instance=instance)
    assert result.success
    assert database_snapshot(written_warehouse) == {
        k: v for k, v in before.items() if k != "analytics__pr_7"
    }


NETWORK_FAULTS: dict[str, tuple[Callable[[], Rule], str]] = {
    "timeout": (lambda: Rule(path="/pulls", action=Forward(delay=0.6)), "timed out"),
    "connection dropped": (lambda: Rule(path="/pulls", action=Drop()), "could not connect"),
    "502 from the gateway": (lambda: Rule(path="/pulls", action=bad_gateway()), "HTTP 502"),
    "answer cut short": (
        lambda: Rule(path="/pulls", action=Truncate(keep_bytes=300)),
        "ChunkedEncodingError",
    ),
}


@pytest.mark.parametrize("fault", NETWORK_FAULTS, ids=list(NETWORK_FAULTS))
def test_github_network_faults_fail_closed_then_recover(
    fault: str, written_warehouse: str, github_proxy: HttpFaultProxy
) -> None:
    rule, why = NETWORK_FAULTS[fault]
    defs = _defs(written_warehouse, _github_source(github_proxy))
    github_proxy.add(rule())

    _assert_fails_closed(written_warehouse, defs, None, why)

    github_proxy.clear()
    _assert_recovers(written_warehouse, defs, None)


HOST_ANSWERS: dict[str, tuple[Callable[[], Response], str]] = {
    "rate limited": (lambda: rate_limited(reset_in=900), "rate limit reached"),
    "secondary rate limit": (
        lambda: json_response(
            {"message": "You have exceeded a secondary rate limit."},
            status=403,
            headers={"Retry-After": "60"},
        ),
        "wait 60s",
    ),
    "malformed JSON": (
        lambda: Response(b"<html>Unicorn!</html>", status=200, content_type="application/json"),
        "not valid JSON",
    ),
    "truncated JSON": (
        lambda: Response(b'[{"number": 7, "state": "clo', content_type="application/json"),
        "not valid JSON",
    ),
    "wrong shape": (
        lambda: json_response({"total_count": 1, "items": []}),
        "not a list of pull requests",
    ),
    "pull request without its fields": (
        lambda: json_response([{"number": 7, "state": "closed"}]),
        "cannot read",
    ),
    "unknown state": (
        lambda: json_response(
            [{"number": 7, "state": "archived", "updated_at": "2024-01-01T00:00:00Z"}]
        ),
        "cannot read",
    ),
}


@pytest.mark.parametrize("answer", HOST_ANSWERS, ids=list(HOST_ANSWERS))
def test_github_bad_answers_fail_closed_and_keep_the_cursor(
    answer: str, written_warehouse: str, github: GitHubStandIn, github_proxy: HttpFaultProxy
) -> None:
    respond, why = HOST_ANSWERS[answer]
    defs = _defs(written_warehouse, _github_source(github_proxy))
    github.add(9)  # a first, healthy tick leaves a cursor behind
    first = _tick(defs)
    assert [r.tags["dagster-branch/namespace"] for r in first.run_requests] == ["pr_7"]
    github.touch(9)  # something changed, so the next tick must read the host again
    github.fail_with(respond())

    _assert_fails_closed(written_warehouse, defs, first.cursor, why, job=False)


def test_gitlab_outage_and_bad_json_fail_closed_then_recover(
    written_warehouse: str, httpserver: HTTPServer
) -> None:
    gitlab = GitLabStandIn(httpserver, token="glpat-faults")
    gitlab.clock = NOW - timedelta(days=1)
    gitlab.add(7)
    gitlab.add(8)
    gitlab.finish(7, "merged")
    with HttpFaultProxy(httpserver.url_for("/")) as proxy:
        source = GitLabMergeRequests(
            project=gitlab.project,
            token="glpat-faults",
            api_url=proxy.url + "/api/v4",
            timeout_seconds=0.5,
        )
        defs = _defs(written_warehouse, source)
        proxy.add(Rule(path="/merge_requests", action=bad_gateway()))
        _assert_fails_closed(written_warehouse, defs, None, "HTTP 502")
        proxy.clear()
        gitlab.fail_with(*[Response(b"{", content_type="application/json")] * 2)  # tick, job
        _assert_fails_closed(written_warehouse, defs, None, "not valid JSON")
        _assert_recovers(written_warehouse, defs, None)


def _graphql(payload: Any) -> Response:
    return json_response(payload)


def _node(**metadata: Any) -> dict[str, Any]:
    meta = {
        "branchName": "feature/pr-7",
        "repoName": "octo-org/analytics",
        "pullRequestStatus": "CLOSED",
        "pullRequestNumber": "7",
        **metadata,
    }
    return {"deploymentName": "a1b2c3", "branchDeploymentGitMetadata": meta}


def _nodes(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"branchDeployments": {"__typename": "Connection", "nodes": list(nodes)}}}


UNEXPECTED_SHAPES: dict[str, tuple[Any, str]] = {
    "PythonError": (
        {"data": {"branchDeployments": {"__typename": "PythonError", "message": "boom"}}},
        "PythonError",
    ),
    "UnauthorizedError": (
        {"data": {"branchDeployments": {"__typename": "UnauthorizedError", "message": "no"}}},
        "UnauthorizedError",
    ),
    "GraphQL errors": (
        {"errors": [{"message": "Cannot query field 'branchDeployments'"}]},
        "GraphQL errors",
    ),
    "no data": ({"data": None}, "without data"),
    "renamed list": (
        {"data": {"branchDeployments": {"__typename": "Connection", "results": []}}},
        "answered branchDeployments with Connection",
    ),
    "a list instead of an object": ([_node()], "unexpected shape"),
    "unknown status": (_nodes(_node(pullRequestStatus="DRAFT")), "unexpected shape"),
    "number as an integer": (_nodes(_node(pullRequestNumber=7)), "unexpected shape"),
    "node without a name": (
        _nodes({"branchDeploymentGitMetadata": _node()["branchDeploymentGitMetadata"]}),
        "unexpected shape",
    ),
}


@pytest.mark.parametrize("shape", UNEXPECTED_SHAPES, ids=list(UNEXPECTED_SHAPES))
def test_dagster_plus_unexpected_shapes_fail_closed(
    shape: str, written_warehouse: str, httpserver: HTTPServer
) -> None:
    payload, why = UNEXPECTED_SHAPES[shape]
    plus = DagsterPlusStandIn(httpserver, token="user:faults")
    plus.add(branch="feature/pr-7", number=7, status="CLOSED")
    plus.add(branch="feature/pr-8", number=8, status="OPEN")
    source = DagsterPlusBranchDeployments(
        organization="hooli", api_token="user:faults", url=plus.url
    )
    defs = branch_cleanup_definitions(
        stores={"warehouse": warehouse(written_warehouse)},
        source=source,
        policy=CleanupPolicy(grace_period=timedelta(0)),
    )
    plus.fail_with(_graphql(payload), _graphql(payload))

    _assert_fails_closed(
        written_warehouse, defs, None, why, job=shape in {"PythonError", "unknown status"}
    )


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param([_node(pullRequestNumber="7; DROP")], id="hostile PR number"),
        pytest.param([_node(pullRequestNumber="0")], id="PR number 0"),
        pytest.param([_node(), _node(pullRequestStatus="OPEN")], id="closed and open at once"),
        pytest.param([_node(repoName="evil/fork")], id="other repository"),
        pytest.param([], id="not listed at all"),
    ],
)
def test_dagster_plus_ambiguous_answers_keep_the_namespace(
    nodes: list[dict[str, Any]], written_warehouse: str, httpserver: HTTPServer
) -> None:
    plus = DagsterPlusStandIn(httpserver, token="user:faults")
    source = DagsterPlusBranchDeployments(
        organization="hooli",
        api_token="user:faults",
        url=plus.url,
        repository="octo-org/analytics",
    )
    defs = branch_cleanup_definitions(
        stores={"warehouse": warehouse(written_warehouse)},
        source=source,
        policy=CleanupPolicy(grace_period=timedelta(0)),
    )
    before = database_snapshot(written_warehouse)
    plus.fail_with(_graphql(_nodes(*nodes)))

    outcome = _tick(defs)

    assert outcome.run_requests == []
    assert "pr_7:" in outcome.skip_message
    assert database_snapshot(written_warehouse) == before
