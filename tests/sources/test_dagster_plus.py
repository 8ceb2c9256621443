"""DagsterPlusBranchDeployments against a stand-in answering the branchDeployments query."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from dagster_branch import DagsterPlusBranchDeployments, Namespace
from dagster_branch.errors import SourceUnavailableError, UnexpectedResponseError
from dagster_branch.pull_requests import PullRequestStatus
from tests.sources.stand_ins import DagsterPlusStandIn, json_response

TOKEN = "user:s3cret-dagster-plus-token"


@pytest.fixture
def plus(httpserver: HTTPServer) -> DagsterPlusStandIn:
    return DagsterPlusStandIn(httpserver, token=TOKEN)


def source(plus: DagsterPlusStandIn, **overrides: object) -> DagsterPlusBranchDeployments:
    settings: dict[str, object] = {"organization": "hooli", "api_token": TOKEN, "url": plus.url}
    settings.update(overrides)
    return DagsterPlusBranchDeployments(**settings)  # type: ignore[arg-type]


def test_states_from_branch_deployment_git_metadata(plus: DagsterPlusStandIn) -> None:
    plus.add(branch="feature/orders", number=42, status="MERGED")
    plus.add(branch="feature/users", number=43, status="CLOSED")
    plus.add(branch="feature/open", number=44, status="OPEN")
    plus.add(branch="spike/no-pr", number=None, status=None)
    pr42, pr43, pr44 = (Namespace.for_pull_request(n) for n in (42, 43, 44))
    spike, unknown = Namespace.for_branch("spike/no-pr"), Namespace.for_pull_request(99)

    answer = source(plus).states_of([pr42, pr43, pr44, spike, unknown])

    assert answer.states[pr42].state is PullRequestStatus.MERGED
    assert answer.states[pr42].merged_at is not None
    assert answer.states[pr43].state is PullRequestStatus.CLOSED
    assert answer.states[pr44].state is PullRequestStatus.OPEN
    assert answer.states[spike].state is PullRequestStatus.OPEN, "a live deployment, no PR"
    assert "no Dagster+ branch deployment" in answer.unknown[unknown]
    assert answer.requests == 1
    (body,) = plus.bodies
    assert body["variables"] == {"limit": 1000, "pullRequestStatus": None}
    request, _ = plus.server.log[0]
    assert request.headers["Dagster-Cloud-Api-Token"] == TOKEN


def test_closing_time_is_first_seen_and_stable_through_the_cursor(plus: DagsterPlusStandIn) -> None:
    plus.add(branch="feature/orders", number=42, status="CLOSED")
    pr42 = Namespace.for_pull_request(42)
    first = source(plus).states_of([pr42])
    second = source(plus).states_of([pr42], cursor=first.cursor)
    assert first.states[pr42].closed_at == second.states[pr42].closed_at is not None


def test_graphql_errors_fail_closed(plus: DagsterPlusStandIn) -> None:
    plus.fail_with(json_response({"data": None, "errors": [{"message": "Cannot query field"}]}))
    with pytest.raises(UnexpectedResponseError, match="Cannot query field"):
        source(plus).states_of([Namespace.for_pull_request(1)])


def test_python_error_result_fails_closed(plus: DagsterPlusStandIn) -> None:
    error = {"__typename": "PythonError", "message": "boom"}
    plus.fail_with(json_response({"data": {"branchDeployments": error}}))
    with pytest.raises(UnexpectedResponseError, match="PythonError"):
        source(plus).states_of([Namespace.for_pull_request(1)])


@pytest.mark.parametrize(
    "payload",
    [
        {"data": {"branchDeployments": {"nodes": {"not": "a list"}}}},
        {"data": {"branchDeployments": {"edges": []}}},
        {"data": {"somethingElse": {}}},
        {
            "data": {
                "branchDeployments": {
                    "nodes": [
                        {
                            "deploymentName": "abc",
                            "branchDeploymentGitMetadata": {"pullRequestStatus": "DRAFT"},
                        }
                    ]
                }
            }
        },
        ["not", "an", "object"],
    ],
    ids=["nodes-not-list", "no-nodes", "no-branch-deployments", "unknown-status", "list"],
)
def test_unexpected_shapes_fail_closed(plus: DagsterPlusStandIn, payload: object) -> None:
    plus.fail_with(json_response(payload))
    with pytest.raises(UnexpectedResponseError):
        source(plus).states_of([Namespace.for_pull_request(1)])


def test_malformed_json_and_server_errors(plus: DagsterPlusStandIn) -> None:
    plus.fail_with(Response(b'{"data": {"branchDepl', content_type="application/json"))
    with pytest.raises(UnexpectedResponseError, match="not valid JSON"):
        source(plus).states_of([Namespace.for_pull_request(1)])
    plus.fail_with(Response(b"upstream down", status=503))
    with pytest.raises(SourceUnavailableError, match="HTTP 503"):
        source(plus).states_of([Namespace.for_pull_request(1)])


def test_a_bad_token_never_shows_up(plus: DagsterPlusStandIn) -> None:
    wrong = "user:wrong-token-0042"
    with pytest.raises(UnexpectedResponseError, match="Invalid token") as caught:
        source(plus, api_token=wrong).states_of([Namespace.for_pull_request(1)])
    assert wrong not in str(caught.value)
    assert TOKEN not in repr(source(plus))


def test_several_repositories_need_the_repository_setting(plus: DagsterPlusStandIn) -> None:
    plus.add(branch="a", number=7, status="MERGED", repo="octo-org/analytics")
    plus.add(branch="b", number=7, status="OPEN", repo="octo-org/website")
    pr7 = Namespace.for_pull_request(7)
    ambiguous = source(plus).states_of([pr7])
    assert "several repositories" in ambiguous.unknown[pr7]
    scoped = source(plus, repository="octo-org/analytics").states_of([pr7])
    assert scoped.states[pr7].state is PullRequestStatus.MERGED


def test_a_full_answer_says_to_raise_the_limit(plus: DagsterPlusStandIn) -> None:
    for number in range(1, 4):
        plus.add(branch=f"b{number}", number=number, status="OPEN")
    answer = source(plus, limit=3).states_of([Namespace.for_pull_request(9)])
    assert "raise limit" in answer.unknown[Namespace.for_pull_request(9)]


def test_default_endpoint_is_the_organization_deployment_graphql() -> None:
    plus = DagsterPlusBranchDeployments(organization="hooli", api_token=TOKEN)
    assert plus.endpoint == "https://hooli.dagster.cloud/prod/graphql"
    with pytest.raises(Exception, match="bare organization name"):
        DagsterPlusBranchDeployments(organization="hooli.dagster.cloud", api_token=TOKEN)
