"""A pull request reopened between the sensor's tick and the cleanup run.

The sensor sees ``pr_7`` merged and requests its cleanup; before the run starts, someone reopens
the pull request. The job's ``require_closed`` check asks GitHub again and stops the run before
anything is removed; the ledger still lists every object. The next tick keeps the namespace (the
PR is open); when the PR is closed again, the new closing time gives a new run key, and that run
removes ``pr_7`` and nothing else.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import dagster as dg
from pytest_httpserver import HTTPServer

from dagster_branch import GitHubPullRequests, branch_cleanup_definitions
from tests.faults.world import BUCKET, lake, warehouse, write_files, write_tables
from tests.sources.stand_ins import GitHubStandIn
from tests.support.deployments import Deploy
from tests.support.snapshots import database_snapshot, live_ledger, outside, s3_snapshot

NOW = datetime.now(timezone.utc)


def _tick(defs: dg.Definitions, cursor: str | None) -> dg.SensorExecutionData:  # type: ignore[name-defined]
    sensor = defs.resolve_sensor_def("branch_cleanup_sensor")
    with dg.build_sensor_context(
        cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        return sensor.evaluate_tick(context)


def _run(defs: dg.Definitions, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance:
        return defs.resolve_job_def("branch_cleanup").execute_in_process(
            run_config=request.run_config,
            tags=request.tags,
            instance=instance,
            raise_on_error=False,
        )


def test_a_pr_reopened_after_the_tick_stops_the_run_before_anything_is_removed(
    postgres_url: str, s3_endpoint: str, httpserver: HTTPServer, deploy: Deploy
) -> None:
    github = GitHubStandIn(httpserver, token="ghp_race")
    github.clock = NOW - timedelta(days=2)
    github.add(7)
    github.add(8)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    for who in ("production", 7, 8):
        deploy("production") if who == "production" else deploy("branch", pr=int(who))
        write_tables(postgres_url)
        write_files(lake(s3_endpoint, postgres_url), {"orders.csv": b"x"})
    deploy("production")
    github.close(7, merged=True, at=NOW - timedelta(hours=1))
    tables, keys = database_snapshot(postgres_url), s3_snapshot(s3_endpoint)
    ledger = live_ledger(postgres_url)
    source = GitHubPullRequests(
        repository=github.repository, token="ghp_race", api_url=github.api_url
    )
    defs = branch_cleanup_definitions(
        stores={"warehouse": warehouse(postgres_url), "lake": lake(s3_endpoint, postgres_url)},
        source=source,
    )

    first = _tick(defs, None)
    (request,) = first.run_requests
    github.reopen(7, at=NOW - timedelta(minutes=40))  # between the tick and the run
    stopped = _run(defs, request)

    assert not stopped.success
    failures = [e for e in stopped.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["verify"]
    description = failures[0].step_failure_data.user_failure_data.description
    assert "Pull request #7 of pr_7 is open" in description
    assert "nothing was removed" in description
    assert database_snapshot(postgres_url) == tables
    assert s3_snapshot(s3_endpoint) == keys
    assert live_ledger(postgres_url) == ledger  # the ledger still tells the truth

    second = _tick(defs, first.cursor)
    assert second.run_requests == []
    assert "pr_7: pull request #7 is open" in second.skip_message

    github.close(7, at=NOW - timedelta(minutes=20))  # closed for good this time
    third = _tick(defs, second.cursor)
    (again,) = third.run_requests
    assert again.run_key != request.run_key  # a new closing time: a new run, not a dedup
    assert _run(defs, again).success

    assert database_snapshot(postgres_url) == {
        k: v for k, v in tables.items() if k != "analytics__pr_7"
    }
    assert s3_snapshot(s3_endpoint) == outside(keys, "pr_7")
    assert live_ledger(postgres_url, "pr_7") == set()
    assert live_ledger(postgres_url, "pr_8") == {
        "warehouse:analytics__pr_8",
        "lake:acme-data/_branches/pr_8/",
    }
