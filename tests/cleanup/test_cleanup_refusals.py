"""The cleanup fails closed: every reason to refuse stops the run before anything is removed.

A reopened pull request, a Git host that cannot answer, a PR it does not know, a plan larger
than ``max_objects``, a protected name, or a job running in the branch's own deployment: each
leaves every store byte for byte as it was, and the failure says why.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dagster_branch.sources.github import GitHubPullRequests
from tests.cleanup.conftest import RunCleanup
from tests.cleanup.helpers import (
    CLEANUP_JOB,
    STORE_KEYS,
    cleanup_config,
    failed_steps,
    failure_text,
    step_started,
)
from tests.cleanup.world import World, branch_env, deployment, snapshot
from tests.sources.stand_ins import GitHubStandIn, json_response
from tests.support.servers import LocalS3, use_test_credentials


@pytest.fixture(scope="module")
def world(s3_server: LocalS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One platform for the whole module (DuckDB and S3): every test here proves it unchanged,
    so it is built once instead of once per test."""
    with pytest.MonkeyPatch.context() as env:
        use_test_credentials(env)
        s3_server.reset()
        folder = tmp_path_factory.mktemp("refusals")
        world = World(
            warehouse_url=f"duckdb:///{folder / 'warehouse.duckdb'}",
            s3_endpoint=s3_server.endpoint_url,
        )
        world.build()
        yield world


def _assert_refused_before_removal(result: object, world: World, before: dict) -> str:
    assert not result.success  # type: ignore[attr-defined]
    for key in STORE_KEYS:
        assert not step_started(result, f"remove_from_{key}")  # type: ignore[arg-type]
    assert snapshot(world) == before
    return failure_text(result)  # type: ignore[arg-type]


def test_a_reopened_pull_request_stops_the_run_before_anything_is_removed(
    world: World, github: GitHubStandIn, run_cleanup: RunCleanup
) -> None:
    github.reopen(7)  # closed when the sensor looked, reopened before the run started
    before = snapshot(world)

    result = run_cleanup(world)

    text = _assert_refused_before_removal(result, world, before)
    assert failed_steps(result) == {"verify"}
    assert "Pull request #7 of pr_7 is open" in text
    assert "nothing was removed" in text
    # The state was asked fresh, right before deleting: one lookup of PR 7.
    assert [r.path for r in github.api_requests()] == ["/repos/acme/data/pulls/7"]


@pytest.mark.parametrize(
    "answer",
    [
        json_response({"message": "Server Error"}, status=502),
        json_response({"unexpected": "shape"}),
    ],
    ids=["bad-gateway", "malformed"],
)
def test_a_git_host_that_cannot_answer_means_do_nothing_now(
    world: World, github: GitHubStandIn, run_cleanup: RunCleanup, answer: object
) -> None:
    github.fail_with(*[answer] * 6)  # more than the client's retries
    before = snapshot(world)

    result = run_cleanup(world)

    text = _assert_refused_before_removal(result, world, before)
    assert "could not tell whether pr_7 is closed" in text


def test_a_pull_request_the_host_does_not_know_is_treated_as_open(
    world: World, github: GitHubStandIn, run_cleanup: RunCleanup
) -> None:
    del github.pulls[8]  # the host answers 404 for PR 8
    before = snapshot(world)

    result = run_cleanup(world, "pr_8")

    text = _assert_refused_before_removal(result, world, before)
    assert "does not know pr_8" in text
    assert "--no-pr-check" in text  # what to pass on the command line instead


def test_max_objects_trips_with_a_clear_message(world: World, run_cleanup: RunCleanup) -> None:
    before = snapshot(world)

    result = run_cleanup(world, max_objects=2)

    text = _assert_refused_before_removal(result, world, before)
    assert "more than max_objects=2" in text
    assert "raise max_objects in the run config" in text


def test_every_reason_is_listed_at_once(
    world: World, github: GitHubStandIn, run_cleanup: RunCleanup
) -> None:
    github.reopen(7)
    before = snapshot(world)

    result = run_cleanup(world, max_objects=1)

    text = _assert_refused_before_removal(result, world, before)
    assert "more than max_objects=1" in text
    assert "is open" in text


def test_a_protected_name_in_one_store_refuses_the_whole_plan(
    world: World, run_cleanup: RunCleanup
) -> None:
    guarded = world.warehouse(protected_schemas=["analytics__pr_7"])
    before = snapshot(world)

    result = run_cleanup(world, stores=world.stores(warehouse=guarded))

    text = _assert_refused_before_removal(result, world, before)  # S3 untouched as well
    assert "warehouse: schema analytics__pr_7:" in text
    assert "protected" in text


def test_the_branch_deployment_itself_may_not_run_its_own_cleanup(
    world: World, pull_requests: GitHubPullRequests
) -> None:
    before = snapshot(world)
    with deployment(branch_env(7)):
        result = CLEANUP_JOB.execute_in_process(
            run_config=cleanup_config("pr_7"),
            resources={**world.stores(), "pull_requests": pull_requests},
            raise_on_error=False,
        )

    text = _assert_refused_before_removal(result, world, before)
    assert "refuses to run inside a branch deployment" in text
    assert "Run it from the production deployment" in text
