"""The cleanup never runs inside a branch deployment: job, sensor, schedule and CLI refuse.

A branch deployment loads the same code as production. Run there, the cleanup job (with
``require_closed: false``) removed another pull request's data; the sensor and the schedule
requested cleanups from a deployment whose credentials and stores are a branch's. Each entry
point now refuses when it runs, before any store is read, and says to run it from production.

The world: PostgreSQL and the S3 server hold production, ``pr_7`` (merged on the GitHub
stand-in) and ``pr_8`` (open); the process runs as ``pr_8``'s branch deployment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from dagster_branch import (
    BranchDatabaseResource,
    BranchS3Resource,
    CleanupRefusedError,
    GitHubPullRequests,
    branch_cleanup_definitions,
)
from dagster_branch.cli import main
from tests.cleanup.helpers import failure_text
from tests.faults.world import BUCKET, lake, run_cleanup, warehouse, write_files, write_tables
from tests.sources.stand_ins import GitHubStandIn
from tests.support.deployments import Deploy
from tests.support.snapshots import database_snapshot, s3_snapshot

TOKEN = "ghp_branchRefusalToken000"
REFUSAL = "refuses to run inside a branch deployment (DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1, "
FIX = "Run it from the production deployment"


def definitions_from_env() -> dg.Definitions:
    """The production Definitions a team adds unconditionally (also loaded by branches)."""
    stores: dict[str, Any] = {
        "warehouse": BranchDatabaseResource(
            url=os.environ["WAREHOUSE_URL"], base_schema="analytics"
        ),
        "lake": BranchS3Resource(
            bucket=BUCKET,
            prefix="lake",
            endpoint_url=os.environ["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
        ),
    }
    source = GitHubPullRequests(
        repository="octo-org/shop", token=TOKEN, api_url=os.environ["GITHUB_API_URL"]
    )
    return branch_cleanup_definitions(stores=stores, source=source, include_schedule=True)


@dataclass
class World:
    postgres_url: str
    s3_endpoint: str
    github: GitHubStandIn

    def snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        return database_snapshot(self.postgres_url), s3_snapshot(self.s3_endpoint)


@pytest.fixture
def world(
    postgres_url: str,
    s3_endpoint: str,
    s3_client: Any,
    httpserver: HTTPServer,
    deploy: Deploy,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    s3_client.create_bucket(Bucket=BUCKET)
    github = GitHubStandIn(httpserver, repository="octo-org/shop", token=TOKEN)
    now = datetime.now(timezone.utc)
    github.add(7, head="feature/orders-v2", at=now - timedelta(days=2))
    github.close(7, merged=True, at=now - timedelta(hours=3))
    github.add(8, head="feature/new-region", at=now - timedelta(days=1))
    for pr in (None, 7, 8):
        deploy("production") if pr is None else deploy("branch", pr=pr)
        write_tables(postgres_url)
        write_files(lake(s3_endpoint, None), {"orders.csv": f"{pr}".encode()})
    monkeypatch.setenv("WAREHOUSE_URL", postgres_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    deploy("branch", pr=8)  # from here on, this process is pr_8's branch deployment
    yield World(postgres_url, s3_endpoint, github)


def _everything_is_still_there(world: World, before: tuple[Any, Any]) -> None:
    tables, files = world.snapshot()
    assert (tables, files) == before
    assert {"analytics", "analytics__pr_7", "analytics__pr_8"} <= set(tables)
    assert any(key.startswith("_branches/pr_7/") for key in files)


def test_the_cleanup_job_refuses_even_without_the_pr_check(world: World) -> None:
    before = world.snapshot()
    stores = {
        "warehouse": warehouse(world.postgres_url),
        "lake": lake(world.s3_endpoint, None),
    }

    result = run_cleanup(stores, "pr_7", require_closed=False)

    assert not result.success
    text = failure_text(result)
    assert f"The cleanup job 'branch_cleanup' {REFUSAL}namespace pr_8)" in text
    assert FIX in text
    _everything_is_still_there(world, before)


def test_the_cli_cleanup_refuses_with_exit_code_3(world: World, tmp_path: Path) -> None:
    before = world.snapshot()
    definitions = tmp_path / "definitions.py"
    definitions.write_text(
        "from tests.security.test_cleanup_in_branch_deployment import definitions_from_env\n"
        "defs = definitions_from_env()\n"
    )

    result = CliRunner().invoke(
        main, ["cleanup", "-f", str(definitions), "--pr", "7", "--yes", "--no-pr-check"]
    )

    assert result.exit_code == 3, result.output
    assert f"Error: dagster-branch cleanup {REFUSAL}namespace pr_8)" in result.output
    assert FIX in result.output and "Traceback" not in result.output
    _everything_is_still_there(world, before)


def _evaluation_error(evaluate: Any) -> str:
    with pytest.raises((CleanupRefusedError, dg.DagsterUserCodeExecutionError)) as info:
        evaluate()
    # Dagster wraps a schedule's error (ScheduleExecutionError), not a sensor's.
    cause = getattr(info.value, "user_exception", info.value)
    assert isinstance(cause, CleanupRefusedError)
    return str(cause)


def test_the_sensor_refuses_to_tick(world: World) -> None:
    defs = definitions_from_env()
    (sensor,) = defs.sensors or []
    assert isinstance(sensor, dg.SensorDefinition)
    world.github.server.clear_log()

    with dg.build_sensor_context(resources=defs.resources, definitions=defs) as context:
        message = _evaluation_error(lambda: sensor.evaluate_tick(context))

    assert message.startswith(f"The sensor 'branch_cleanup_sensor' {REFUSAL}namespace pr_8)")
    assert FIX in message
    assert world.github.api_requests() == []  # refused before asking anything


def test_the_schedule_refuses_to_run(world: World) -> None:
    defs = definitions_from_env()
    (schedule,) = defs.schedules or []
    assert isinstance(schedule, dg.ScheduleDefinition)
    world.github.server.clear_log()

    with dg.build_schedule_context(resources=defs.resources) as context:
        message = _evaluation_error(lambda: schedule.evaluate_tick(context))

    assert message.startswith(f"The schedule 'branch_cleanup_schedule' {REFUSAL}namespace pr_8)")
    assert FIX in message
    assert world.github.api_requests() == []


def test_production_still_runs_every_entry_point(world: World, deploy: Deploy) -> None:
    deploy("production")
    defs = definitions_from_env()
    (sensor,) = defs.sensors or []
    assert isinstance(sensor, dg.SensorDefinition)
    with dg.build_sensor_context(resources=defs.resources, definitions=defs) as context:
        tick = sensor.evaluate_tick(context)
    assert [r.tags["dagster-branch/namespace"] for r in tick.run_requests or []] == ["pr_7"]

    result = run_cleanup(
        {"warehouse": warehouse(world.postgres_url), "lake": lake(world.s3_endpoint, None)},
        "pr_7",
        require_closed=False,
    )

    assert result.success
    tables, files = world.snapshot()
    assert "analytics__pr_7" not in tables and "analytics__pr_8" in tables
    assert not any(key.startswith("_branches/pr_7/") for key in files)
