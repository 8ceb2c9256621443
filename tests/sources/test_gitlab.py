"""GitLabMergeRequests against a stand-in speaking GitLab's documented merge request JSON."""

from __future__ import annotations

import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from dagster_branch import GitLabMergeRequests, Namespace, SourceError
from dagster_branch.errors import RateLimitedError, SourceUnavailableError, UnexpectedResponseError
from dagster_branch.pull_requests import PullRequestStatus
from tests.sources.stand_ins import GitLabStandIn, json_response

TOKEN = "glpat-s3cretTokenValue42"


def mr(iid: int) -> Namespace:
    return Namespace.for_pull_request(iid)


@pytest.fixture
def gitlab(httpserver: HTTPServer) -> GitLabStandIn:
    return GitLabStandIn(httpserver, token=TOKEN)


def source(gitlab: GitLabStandIn, **overrides: object) -> GitLabMergeRequests:
    settings: dict[str, object] = {
        "project": gitlab.project,
        "token": TOKEN,
        "api_url": gitlab.api_url,
    }
    settings.update(overrides)
    return GitLabMergeRequests(**settings)  # type: ignore[arg-type]


def test_merged_closed_locked_and_opened_are_told_apart(gitlab: GitLabStandIn) -> None:
    for iid in (1, 2, 3, 4):
        gitlab.add(iid)
    gitlab.finish(1, "merged")
    gitlab.finish(2, "closed")
    gitlab.finish(3, "locked")

    answer = source(gitlab).states_of([mr(1), mr(2), mr(3), mr(4)])

    assert answer.states[mr(1)].state is PullRequestStatus.MERGED
    assert answer.states[mr(1)].merged_at is not None
    assert answer.states[mr(2)].state is PullRequestStatus.CLOSED
    assert answer.states[mr(2)].closed_at is not None
    assert answer.states[mr(3)].state is PullRequestStatus.OPEN, "locked is a merge in progress"
    assert answer.states[mr(4)].state is PullRequestStatus.OPEN
    assert (
        answer.states[mr(4)].url == "https://gitlab.example.com/data/analytics/-/merge_requests/4"
    )


@pytest.mark.parametrize("link_paging", [False, True], ids=["x-next-page", "link"])
def test_pages_with_x_next_page_or_link(httpserver: HTTPServer, link_paging: bool) -> None:
    gitlab = GitLabStandIn(httpserver, token=TOKEN, link_paging=link_paging)
    for iid in range(1, 8):
        gitlab.add(iid)
    answer = source(gitlab, page_size=3).states_of([mr(1)])
    assert answer.states[mr(1)].state is PullRequestStatus.OPEN
    assert [r.args.get("page", "1") for r in gitlab.api_requests()] == ["1", "2", "3"]


def test_steady_state_is_one_request_filtered_by_updated_after(gitlab: GitLabStandIn) -> None:
    for iid in range(1, 60):
        gitlab.add(iid)
    live = [mr(i) for i in range(1, 60)]
    first = source(gitlab, page_size=20).states_of(live)
    httpserver = gitlab.server
    httpserver.clear_log()

    second = source(gitlab, page_size=20).states_of(live, cursor=first.cursor)
    (request,) = gitlab.api_requests()
    assert request.args["updated_after"].startswith("2024-08-01T")
    assert second.states == first.states

    gitlab.finish(30, "merged")
    httpserver.clear_log()
    third = source(gitlab, page_size=20).states_of(live, cursor=second.cursor)
    assert len(gitlab.api_requests()) == 1
    assert third.states[mr(30)].state is PullRequestStatus.MERGED


def test_reopened_merge_request_is_open_again(gitlab: GitLabStandIn) -> None:
    gitlab.add(5)
    gitlab.finish(5, "closed")
    first = source(gitlab).states_of([mr(5)])
    gitlab.finish(5, "opened")
    second = source(gitlab).states_of([mr(5)], cursor=first.cursor)
    assert second.states[mr(5)].state is PullRequestStatus.OPEN


def test_fallback_lookup_and_not_found(gitlab: GitLabStandIn) -> None:
    for iid in range(1, 5):
        gitlab.add(iid)
    first = source(gitlab).states_of([mr(4)])
    gitlab.server.clear_log()
    second = source(gitlab).states_of([mr(4), mr(1), mr(77)], cursor=first.cursor)
    paths = sorted(r.path for r in gitlab.api_requests())
    assert paths == [
        "/api/v4/projects/1234/merge_requests",
        "/api/v4/projects/1234/merge_requests/1",
        "/api/v4/projects/1234/merge_requests/77",
    ]
    assert second.states[mr(1)].state is PullRequestStatus.OPEN
    assert "does not exist" in second.unknown[mr(77)]


def test_project_path_is_url_encoded(httpserver: HTTPServer) -> None:
    seen: list[str] = []

    def handler(request):  # type: ignore[no-untyped-def]
        seen.append(request.environ.get("RAW_URI") or request.environ["REQUEST_URI"])
        return json_response([])

    httpserver.expect_request(
        "/api/v4/projects/data/analytics/merge_requests"
    ).respond_with_handler(handler)
    answer = GitLabMergeRequests(
        project="data/analytics", token=TOKEN, api_url=httpserver.url_for("/api/v4")
    ).states_of([Namespace.for_developer("ada")])
    assert seen and seen[0].startswith("/api/v4/projects/data%2Fanalytics/merge_requests?")
    assert answer.without_pull_request == {Namespace.for_developer("ada")}


def test_rate_limit_429_with_reset(gitlab: GitLabStandIn) -> None:
    reset = int(time.time()) + 120
    gitlab.fail_with(
        json_response(
            {"message": "429 Too Many Requests"},
            status=429,
            headers={"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)},
        )
    )
    with pytest.raises(RateLimitedError) as caught:
        source(gitlab).states_of([mr(1)])
    assert caught.value.retry_after is not None and 100 <= caught.value.retry_after <= 120


def test_errors_fail_closed_without_the_token(gitlab: GitLabStandIn) -> None:
    gitlab.fail_with(json_response({"message": "502 Bad Gateway"}, status=502))
    with pytest.raises(SourceUnavailableError):
        source(gitlab).states_of([mr(1)])
    gitlab.fail_with(
        Response(b'[{"iid": 1, "state": "opened", "upd', content_type="application/json")
    )
    with pytest.raises(UnexpectedResponseError):
        source(gitlab).states_of([mr(1)])
    with pytest.raises(SourceError) as caught:
        source(gitlab, token="wrong-" + TOKEN).states_of([mr(1)])
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(source(gitlab))


def test_api_url_defaults_to_ci_api_v4_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_API_V4_URL", "https://gitlab.example.com/api/v4")
    assert (
        GitLabMergeRequests(project="7", token=TOKEN).api_url == "https://gitlab.example.com/api/v4"
    )
    monkeypatch.delenv("CI_API_V4_URL")
    assert GitLabMergeRequests(project="7", token=TOKEN).api_url == "https://gitlab.com/api/v4"
