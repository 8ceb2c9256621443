"""GitHubPullRequests against a stand-in speaking GitHub's documented REST JSON."""

from __future__ import annotations

import json
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from dagster_branch import GitHubPullRequests, Namespace, SourceError
from dagster_branch.errors import RateLimitedError, SourceUnavailableError, UnexpectedResponseError
from dagster_branch.pull_requests import PullRequestStatus
from tests.sources.stand_ins import GitHubStandIn, json_response, rate_limited
from tests.support.servers import free_port

TOKEN = "ghp_s3cretTokenValue0123456789"


def pr(number: int) -> Namespace:
    return Namespace.for_pull_request(number)


@pytest.fixture
def github(httpserver: HTTPServer) -> GitHubStandIn:
    return GitHubStandIn(httpserver, token=TOKEN)


def source(github: GitHubStandIn, **overrides: object) -> GitHubPullRequests:
    settings: dict[str, object] = {
        "repository": github.repository,
        "token": TOKEN,
        "api_url": github.api_url,
    }
    settings.update(overrides)
    return GitHubPullRequests(**settings)  # type: ignore[arg-type]


def test_first_call_follows_link_pages_and_reads_each_state(github: GitHubStandIn) -> None:
    for number in range(1, 251):
        github.add(number)
    github.close(3, merged=True)
    github.close(4)
    oldest = 1  # least recently updated: on the last page
    answer = source(github).states_of([pr(3), pr(4), pr(200), pr(oldest)])

    assert answer.states[pr(3)].state is PullRequestStatus.MERGED
    assert answer.states[pr(3)].merged_at is not None
    assert answer.states[pr(4)].state is PullRequestStatus.CLOSED
    assert answer.states[pr(200)].state is PullRequestStatus.OPEN
    assert answer.states[pr(oldest)].head_branch == "feature-1"
    assert answer.states[pr(oldest)].url == "https://github.com/octo-org/analytics/pull/1"
    pages = [r.args.get("page", "1") for r in github.api_requests()]
    assert pages == ["1", "2", "3"], "Link rel=next was followed to the last page"
    assert answer.requests == 3


def test_nothing_changed_costs_one_conditional_request_answered_304(github: GitHubStandIn) -> None:
    for number in range(1, 40):
        github.add(number)
    github.close(7, merged=True)
    live = [pr(n) for n in range(1, 40)]
    first = source(github).states_of(live)
    github.server.clear_log()

    second = source(github).states_of(live, cursor=first.cursor)

    ((request, response),) = github.server.log
    assert request.headers["If-None-Match"].startswith('W/"')
    assert response.status_code == 304
    assert second.requests == 1
    assert second.states == first.states
    assert second.cursor == first.cursor


def test_a_change_is_read_from_the_first_page_only(github: GitHubStandIn) -> None:
    for number in range(1, 301):
        github.add(number)
    live = [pr(n) for n in range(1, 301)]
    first = source(github).states_of(live)
    github.close(12, merged=True)
    github.server.clear_log()

    second = source(github).states_of(live, cursor=first.cursor)

    assert len(github.api_requests()) == 1
    assert github.server.log[0][1].status_code == 200
    assert second.states[pr(12)].state is PullRequestStatus.MERGED
    assert second.states[pr(13)].state is PullRequestStatus.OPEN


def test_a_reopened_pull_request_is_open_again(github: GitHubStandIn) -> None:
    github.add(5)
    github.close(5)
    first = source(github).states_of([pr(5)])
    assert first.states[pr(5)].state is PullRequestStatus.CLOSED

    github.reopen(5)
    second = source(github).states_of([pr(5)], cursor=first.cursor)

    assert second.states[pr(5)].state is PullRequestStatus.OPEN
    assert second.states[pr(5)].closed_at is None


def test_a_pull_request_the_listing_did_not_reach_is_fetched_once(github: GitHubStandIn) -> None:
    for number in range(1, 11):
        github.add(number)
    github.close(2, merged=True)
    first = source(github).states_of([pr(9)])
    github.server.clear_log()

    # pr_3 became live after the first call; it is older than the high-water mark.
    second = source(github).states_of([pr(9), pr(3)], cursor=first.cursor)
    paths = [r.path for r in github.api_requests()]
    assert paths == ["/repos/octo-org/analytics/pulls", "/repos/octo-org/analytics/pulls/3"]
    assert second.states[pr(3)].state is PullRequestStatus.OPEN

    github.server.clear_log()
    third = source(github).states_of([pr(9), pr(3)], cursor=second.cursor)
    assert len(github.api_requests()) == 1, "pr_3 is now in the cursor"
    assert third.states[pr(3)].state is PullRequestStatus.OPEN


def test_a_missing_pull_request_is_unknown_and_not_asked_again(github: GitHubStandIn) -> None:
    github.add(1)
    first = source(github).states_of([pr(1)])
    github.server.clear_log()

    second = source(github).states_of([pr(1), pr(404)], cursor=first.cursor)
    assert "does not exist" in second.unknown[pr(404)]
    assert pr(404) not in second.states
    assert github.server.log[-1][1].status_code == 404

    github.server.clear_log()
    third = source(github).states_of([pr(1), pr(404)], cursor=second.cursor)
    assert len(github.api_requests()) == 1
    assert pr(404) in third.unknown

    github.add(404)  # a pull request with that number appears later: the listing shows it
    fourth = source(github).states_of([pr(1), pr(404)], cursor=third.cursor)
    assert fourth.states[pr(404)].state is PullRequestStatus.OPEN


def test_branch_namespaces_map_through_the_head_branch(github: GitHubStandIn) -> None:
    github.add(1, head="feature/orders")
    github.add(2, head="feature/orders")  # a second, newer PR from the same branch
    github.close(1)
    github.add(3, head="fix/typo")
    github.close(3, merged=True)
    orders, typo = Namespace.for_branch("feature/orders"), Namespace.for_branch("fix/typo")
    lonely, dev = Namespace.for_branch("never/opened"), Namespace.for_developer("ada")

    answer = source(github).states_of([orders, typo, lonely, dev])

    assert answer.states[orders].number == 2, "an open PR from the branch wins"
    assert answer.states[orders].state is PullRequestStatus.OPEN
    assert answer.states[typo].state is PullRequestStatus.MERGED
    assert answer.without_pull_request == {lonely, dev}, "the whole listing was read"


def test_rate_limit_raises_with_the_reset_time_and_no_retry(github: GitHubStandIn) -> None:
    github.add(1)
    github.fail_with(rate_limited(reset_in=600))
    with pytest.raises(RateLimitedError) as caught:
        source(github).states_of([pr(1)])
    assert caught.value.retry_after is not None and 590 <= caught.value.retry_after <= 600
    assert "rate limit" in str(caught.value) and "UTC" in str(caught.value)
    assert len(github.api_requests()) == 1, "a rate limit is never retried blindly"


def test_secondary_rate_limit_honours_retry_after(github: GitHubStandIn) -> None:
    github.add(1)
    body = {"message": "You have exceeded a secondary rate limit.", "status": "403"}
    github.fail_with(json_response(body, status=403, headers={"Retry-After": "60"}))
    with pytest.raises(RateLimitedError) as caught:
        source(github).states_of([pr(1)])
    assert caught.value.retry_after == 60


def test_server_error_is_unavailable(github: GitHubStandIn) -> None:
    github.add(1)
    github.fail_with(json_response({"message": "Server Error"}, status=502))
    with pytest.raises(SourceUnavailableError, match="HTTP 502"):
        source(github).states_of([pr(1)])


@pytest.mark.parametrize(
    "body",
    [b"<html>Unicorn!</html>", b'[{"number": 1, "state": "open", "updated_at": "2024-08-0', b"{}"],
    ids=["html", "truncated", "not-a-list"],
)
def test_malformed_or_truncated_json_fails_closed(github: GitHubStandIn, body: bytes) -> None:
    github.add(1)
    github.fail_with(Response(body, status=200, content_type="application/json"))
    with pytest.raises(UnexpectedResponseError):
        source(github).states_of([pr(1)])


def test_unexpected_pull_request_shape_fails_closed(github: GitHubStandIn) -> None:
    github.add(1)
    github.fail_with(
        json_response([{"number": 1, "state": "draft", "updated_at": "2024-08-01T09:00:00Z"}])
    )
    with pytest.raises(UnexpectedResponseError, match="state"):
        source(github).states_of([pr(1)])


def test_bad_token_is_a_clear_error_without_the_token(github: GitHubStandIn) -> None:
    github.add(1)
    echo = json_response({"message": f"Bad credentials for {TOKEN}"}, status=401)
    github.fail_with(echo)
    with pytest.raises(SourceError) as caught:
        source(github).states_of([pr(1)])
    assert "token" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(source(github))


def test_a_link_to_another_host_is_refused_so_the_token_stays_home(github: GitHubStandIn) -> None:
    github.add(1)
    elsewhere = f"http://127.0.0.2:{github.server.port}/repos/octo-org/analytics/pulls?page=2"
    github.fail_with(
        Response(
            "[]", headers={"Link": f'<{elsewhere}>; rel="next"'}, content_type="application/json"
        )
    )
    with pytest.raises(UnexpectedResponseError, match="outside the configured API"):
        source(github).states_of([pr(1)])
    assert all(
        r.host.startswith("localhost") or r.host.startswith("127.0.0.1")
        for r in github.api_requests()
    )


def test_an_unreachable_api_is_unavailable() -> None:
    unreachable = GitHubPullRequests(
        repository="octo-org/analytics", token=TOKEN, api_url=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(SourceUnavailableError, match="could not connect") as caught:
        unreachable.states_of([pr(1)])
    assert TOKEN not in str(caught.value)


def test_a_slow_api_times_out(github: GitHubStandIn) -> None:
    github.add(1)
    github.fail_with(lambda: (time.sleep(0.6), json_response([]))[1])
    github.fail_with(lambda: (time.sleep(0.6), json_response([]))[1])
    github.fail_with(lambda: (time.sleep(0.6), json_response([]))[1])
    with pytest.raises(SourceUnavailableError, match="timed out"):
        source(github, timeout_seconds=0.2).states_of([pr(1)])
    # The stand-in is still answering the abandoned request: let it finish, or its log entry
    # lands in the next test that shares the session's HTTP server.
    time.sleep(0.7)


def test_a_listing_cut_short_does_not_trust_old_closed_states(github: GitHubStandIn) -> None:
    for number in range(1, 6):
        github.add(number)
    github.close(1)
    first = source(github, page_size=2).states_of([pr(1), pr(2)])
    assert first.states[pr(1)].state is PullRequestStatus.CLOSED
    for number in range(10, 20):  # ten new updates: more than one page of two
        github.add(number)

    second = source(github, page_size=2, max_pages=1).states_of([pr(1), pr(2)], cursor=first.cursor)

    assert "could not be read up to date" in second.unknown[pr(1)]
    assert second.states[pr(2)].state is PullRequestStatus.OPEN, "open is safe to keep"
    cursor = json.loads(second.cursor or "{}")
    assert cursor["high_water"] == json.loads(first.cursor or "{}")["high_water"], "not advanced"


def test_state_of_reads_one_pull_request_fresh(github: GitHubStandIn) -> None:
    github.add(8)
    github.close(8, merged=True)
    state = source(github).state_of(pr(8))
    assert state is not None and state.state is PullRequestStatus.MERGED
    assert [r.path for r in github.api_requests()] == ["/repos/octo-org/analytics/pulls/8"]
    assert source(github).state_of(pr(99)) is None


def test_an_unreadable_or_foreign_cursor_starts_afresh(github: GitHubStandIn) -> None:
    github.add(1)
    github.close(1)
    for cursor in (
        "not json",
        '{"version": 99}',
        json.dumps({"identity": "github:elsewhere", "pulls": {}}),
    ):
        answer = source(github).states_of([pr(1)], cursor=cursor)
        assert answer.states[pr(1)].state is PullRequestStatus.CLOSED


def test_repository_must_be_owner_slash_repo() -> None:
    with pytest.raises(Exception, match="owner/repo"):
        GitHubPullRequests(repository="just-a-name", token=TOKEN)


def test_an_exhausted_quota_stops_paging_before_a_refused_request(github: GitHubStandIn) -> None:
    for number in range(1, 6):
        github.add(number)
    reset = int(time.time()) + 300
    original = github._list

    def last_request_of_the_hour(request):  # type: ignore[no-untyped-def]
        response = original(request)
        response.headers["X-RateLimit-Remaining"] = "0"
        response.headers["X-RateLimit-Reset"] = str(reset)
        return response

    github.server.clear_all_handlers()
    github.server.expect_request(f"/repos/{github.repository}/pulls").respond_with_handler(
        last_request_of_the_hour
    )
    with pytest.raises(RateLimitedError, match="was not sent") as caught:
        source(github, page_size=2).states_of([pr(1)])
    assert len(github.api_requests()) == 1
    assert caught.value.retry_after is not None and 290 <= caught.value.retry_after <= 300
