"""A namespace still live after its cleanup ran is requested again, a bounded number of times.

The sensor reads earlier cleanup runs from a real (temporary) Dagster instance: runs are executed
in it with the tags a sensor-launched run carries, the branch writes again after its cleanup
(a deployment still running after the merge), and the next ticks decide.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer

from dagster_branch import GitHubPullRequests
from dagster_branch.detection import CleanupPolicy
from dagster_branch.previous_runs import FollowUp, PreviousRun, follow_up
from tests.sources.stand_ins import GitHubStandIn
from tests.support.deployments import Deploy, deploy

__all__ = ["deploy"]  # the fixture, for the tests below
from tests.test_sensor_end_to_end import production_defs, schemas, write_table

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
BASE = "cleanup:pr_7:2026-11-27T10:00:00+00:00"


def finished(run_key: str | None, status: str = "FAILURE", ago: timedelta = timedelta(hours=2)):
    return PreviousRun(run_key=run_key, status=status, finished_at=NOW - ago)


@pytest.mark.parametrize(
    ("previous", "expected"),
    [
        (None, FollowUp(BASE)),
        (finished("cleanup:pr_7:2026-11-20T10:00:00+00:00"), FollowUp(BASE)),  # an older closing
        (finished(None), FollowUp(BASE)),  # a run launched by hand, without a run key
        (finished(BASE), FollowUp(f"{BASE}:attempt-2")),
        (finished(f"{BASE}:attempt-2", "SUCCESS"), FollowUp(f"{BASE}:attempt-3")),
    ],
)
def test_follow_up_requests_the_next_attempt(
    previous: PreviousRun | None, expected: FollowUp
) -> None:
    assert follow_up(BASE, previous, now=NOW) == expected


def test_follow_up_waits_for_a_running_or_recent_run_and_gives_up_after_max_attempts() -> None:
    running = PreviousRun(run_key=BASE, status="STARTED", finished_at=None)
    assert follow_up(BASE, running, now=NOW).reason == "its cleanup run is queued or running"

    recent = follow_up(BASE, finished(BASE, ago=timedelta(minutes=5)), now=NOW)
    assert recent.run_key is None and not recent.gave_up

    last = follow_up(BASE, finished(f"{BASE}:attempt-3"), now=NOW, max_attempts=3)
    assert last.run_key is None and last.gave_up
    assert "giving up" in last.reason and "dagster-branch cleanup" in last.reason


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    (sensor,) = defs.sensors or []
    assert isinstance(sensor, dg.SensorDefinition)
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        return sensor.evaluate_tick(context)


def launch(
    defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """Run the request as the sensor daemon would: its run key becomes the run's tag."""
    job = defs.resolve_job_def("branch_cleanup")
    tags = {**request.tags, "dagster/run_key": request.run_key or ""}
    return job.execute_in_process(run_config=request.run_config, instance=instance, tags=tags)


def closed_pull_request(
    httpserver: HTTPServer, number: int, url: str, switch: Deploy
) -> GitHubPullRequests:
    """PR ``number``'s branch deployment wrote a table; the PR was merged an hour ago; the
    environment is production's again. Returns the source the production sensor asks."""
    github = GitHubStandIn(httpserver, token="ghp_retry")
    github.clock = datetime.now(timezone.utc) - timedelta(days=1)
    github.add(number)
    github.close(number, merged=True, at=datetime.now(timezone.utc) - timedelta(hours=1))
    switch("branch", pr=number)
    write_table(url)
    switch("production")
    return GitHubPullRequests(
        repository=github.repository, token="ghp_retry", api_url=github.api_url
    )


def test_objects_written_after_the_cleanup_are_cleaned_by_a_second_run_then_left(
    duckdb_url: str,
    httpserver: HTTPServer,
    deploy: Deploy,
) -> None:
    source = closed_pull_request(httpserver, 7, duckdb_url, deploy)
    write_table(duckdb_url)  # production's own table
    defs = production_defs(
        duckdb_url, source, policy=CleanupPolicy(retry_after=timedelta(0), max_attempts=2)
    )
    with dg.instance_for_test() as instance:
        first = tick(defs, instance, None)
        (request,) = first.run_requests
        assert launch(defs, instance, request).success
        assert schemas(duckdb_url) == {"analytics"}

        deploy("branch", pr=7)  # a branch run still going after the merge writes again
        write_table(duckdb_url)
        deploy("production")
        second = tick(defs, instance, first.cursor)
        (again,) = second.run_requests
        assert again.run_key == f"{request.run_key}:attempt-2"
        assert again.tags == request.tags and again.run_config == request.run_config
        assert launch(defs, instance, again).success
        assert schemas(duckdb_url) == {"analytics"}

        deploy("branch", pr=7)
        write_table(duckdb_url)
        deploy("production")
        third = tick(defs, instance, second.cursor)
        assert not third.run_requests, "max_attempts=2: a person has to look now"
        assert "1 cleanup(s) already requested" in third.skip_message
        assert schemas(duckdb_url) == {"analytics", "analytics__pr_7"}


def test_a_live_namespace_is_not_requested_again_before_retry_after(
    duckdb_url: str,
    httpserver: HTTPServer,
    deploy: Deploy,
) -> None:
    source = closed_pull_request(httpserver, 8, duckdb_url, deploy)
    defs = production_defs(duckdb_url, source, policy=CleanupPolicy(retry_after=timedelta(hours=1)))
    with dg.instance_for_test() as instance:
        first = tick(defs, instance, None)
        (request,) = first.run_requests
        assert launch(defs, instance, request).success
        deploy("branch", pr=8)
        write_table(duckdb_url)
        deploy("production")

        # A fresh cursor (as after a reset) does not bypass it: the instance remembers the run.
        second = tick(defs, instance, None)
        assert not second.run_requests
        assert "1 cleanup(s) already requested" in second.skip_message
