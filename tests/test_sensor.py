"""The cleanup sensor, end to end: real stores, API stand-ins, build_sensor_context, cursors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from pydantic import Field
from pytest_httpserver import HTTPServer

from dagster_branch import (
    BranchDatabaseResource,
    DagsterBranchConfigError,
    GitHubPullRequests,
    Namespace,
    branch_cleanup_definitions,
)
from dagster_branch.detection import CleanupPolicy
from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import Ledger, LedgerEntry
from dagster_branch.sensors import CleanupCursor
from tests.sources.stand_ins import GitHubStandIn, json_response, rate_limited
from tests.support.servers import free_port

TOKEN = "ghp_sensorTestToken000"
NOW = datetime.now(timezone.utc)


def pr(number: int) -> Namespace:
    return Namespace.for_pull_request(number)


@pytest.fixture
def github(httpserver: HTTPServer) -> GitHubStandIn:
    stand_in = GitHubStandIn(httpserver, token=TOKEN)
    stand_in.clock = NOW - timedelta(days=3)
    return stand_in


class Warehouse(BranchDatabaseResource):
    """The real warehouse resource, plus a quick way to make branch schemas for a test."""

    def create(self, *namespaces: Namespace) -> None:
        """Schemas as branch deployments leave them: each with a table, and its ledger row
        (the sensor lists recorded namespaces only)."""
        engine = sa.create_engine(self.url)
        ledger = Ledger(engine, owner=self.resolved_owner())
        try:
            with engine.begin() as conn:
                for namespace in namespaces:
                    schema = f"{self.base_schema}__{namespace.key}"
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                    conn.execute(sa.text(f'CREATE TABLE "{schema}".orders AS SELECT 1 AS id'))
            for namespace in namespaces:
                schema = f"{self.base_schema}__{namespace.key}"
                ledger.record(
                    LedgerEntry(namespace, self.store_key, "duckdb", ObjectKind.SCHEMA, schema)
                )
        finally:
            engine.dispose()


class ActiveWarehouse(Warehouse):
    """A warehouse that also reports when each namespace was last written (for stale_after)."""

    written_at: dict[str, float] = Field(
        default_factory=dict, description="Last write per namespace key, in Unix seconds."
    )

    def last_activity_of(self, namespace: Namespace) -> datetime | None:
        stamp = self.written_at.get(namespace.key)
        return datetime.fromtimestamp(stamp, tz=timezone.utc) if stamp is not None else None


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}", base_schema="analytics")


@pytest.fixture
def lake(tmp_path: Path) -> Warehouse:
    return Warehouse(url=f"duckdb:///{tmp_path / 'lake.duckdb'}", base_schema="raw")


def definitions(
    github: GitHubStandIn, warehouse: Warehouse, lake: Warehouse, **kwargs: Any
) -> dg.Definitions:
    source = GitHubPullRequests(repository=github.repository, token=TOKEN, api_url=github.api_url)
    return branch_cleanup_definitions(
        stores={"warehouse": warehouse, "lake": lake}, source=source, **kwargs
    )


@dataclass
class Tick:
    run_requests: list[dg.RunRequest]
    skip_reason: str
    cursor: str | None


def tick(defs: dg.Definitions, cursor: str | None = None) -> Tick:
    """One evaluation of the sensor, as the daemon runs it, with the Definitions' resources."""
    (sensor,) = defs.sensors or []
    assert isinstance(sensor, dg.SensorDefinition)
    with dg.build_sensor_context(
        cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        data = sensor.evaluate_tick(context)
    return Tick(list(data.run_requests or []), data.skip_message or "", data.cursor)


def keys(result: Tick) -> list[str]:
    return [request.run_key or "" for request in result.run_requests]


def namespaces(result: Tick) -> list[str]:
    return [request.tags["dagster-branch/namespace"] for request in result.run_requests]


def test_a_merged_pull_request_gets_one_cleanup_run(
    github: GitHubStandIn, warehouse: Warehouse, lake: Warehouse
) -> None:
    for number in (1, 2, 3):
        github.add(number)
    merged_at = NOW - timedelta(hours=2)
    github.close(1, merged=True, at=merged_at)
    github.close(3, at=datetime.now(timezone.utc) - timedelta(minutes=2))  # within the grace
    warehouse.create(pr(1), pr(2))
    lake.create(pr(1), pr(3))
    defs = definitions(github, warehouse, lake)

    result = tick(defs)

    (request,) = result.run_requests
    assert request.run_key == f"cleanup:pr_1:{merged_at.replace(microsecond=0).isoformat()}"
    assert request.run_config == {"ops": {"plan": {"config": {"namespace": "pr_1"}}}}
    ours = {key: value for key, value in request.tags.items() if key.startswith("dagster-branch/")}
    assert ours == {
        "dagster-branch/namespace": "pr_1",
        "dagster-branch/pull-request": "1",
        "dagster-branch/state": "merged",
    }
    cursor = CleanupCursor.model_validate_json(result.cursor or "")
    assert cursor.requested == {"pr_1": request.run_key}

    # The next tick: nothing changed, one 304, no duplicate request, a reason that says why.
    github.server.clear_log()
    again = tick(defs, result.cursor)
    assert not again.run_requests
    assert len(github.api_requests()) == 1 and github.server.log[0][1].status_code == 304
    assert "1 cleanup(s) already requested" in again.skip_reason
    assert "pr_3: pull request #3 was closed 2 minutes ago" in again.skip_reason


def test_a_reopened_pull_request_is_not_cleaned_and_a_new_close_is(
    github: GitHubStandIn, warehouse: Warehouse, lake: Warehouse
) -> None:
    github.add(5)
    github.close(5, at=NOW - timedelta(hours=1))
    warehouse.create(pr(5))
    defs = definitions(github, warehouse, lake)
    first = tick(defs)
    assert len(first.run_requests) == 1

    github.reopen(5, at=NOW - timedelta(minutes=30))
    reopened = tick(defs, first.cursor)
    assert not reopened.run_requests
    assert "pr_5: pull request #5 is open" in reopened.skip_reason
    assert CleanupCursor.model_validate_json(reopened.cursor or "").requested == {}

    closed_again = NOW - timedelta(minutes=20)
    github.close(5, at=closed_again)
    second = tick(defs, reopened.cursor)
    assert keys(second) == [f"cleanup:pr_5:{closed_again.replace(microsecond=0).isoformat()}"]
    assert keys(second) != keys(first)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (rate_limited(reset_in=900), "rate limit reached"),
        (json_response({"message": "Server Error"}, status=502), "HTTP 502"),
        (None, "not valid JSON"),
    ],
    ids=["rate-limit", "server-error", "malformed-json"],
)
def test_source_failures_skip_the_tick_and_keep_the_cursor(
    github: GitHubStandIn,
    warehouse: Warehouse,
    lake: Warehouse,
    fault: Any,
    expected: str,
) -> None:
    from werkzeug import Response

    github.add(1)
    github.close(1, at=NOW - timedelta(hours=1))
    github.add(2)
    warehouse.create(pr(1), pr(2))
    defs = definitions(github, warehouse, lake)
    first = tick(defs)
    github.close(2, at=NOW - timedelta(hours=1))  # a change, so the next tick reads a body

    github.fail_with(fault or Response(b'[{"number": 2, "sta', content_type="application/json"))
    failed = tick(defs, first.cursor)

    assert not failed.run_requests
    assert expected in failed.skip_reason
    assert "nothing is cleaned now" in failed.skip_reason
    assert failed.cursor == first.cursor, "a failed tick changes nothing"
    assert TOKEN not in failed.skip_reason

    recovered = tick(defs, failed.cursor)
    assert namespaces(recovered) == ["pr_2"]


def test_at_most_max_runs_per_tick_and_the_rest_on_later_ticks(
    github: GitHubStandIn, warehouse: Warehouse, lake: Warehouse
) -> None:
    for number in range(1, 6):
        github.add(number)
        github.close(number, at=NOW - timedelta(hours=10 - number))
        warehouse.create(pr(number))
    defs = definitions(github, warehouse, lake, max_runs_per_tick=2)

    seen: list[str] = []
    cursor = None
    for _ in range(4):
        result = tick(defs, cursor)
        assert len(result.run_requests) <= 2
        seen += namespaces(result)
        cursor = result.cursor
    assert seen == ["pr_1", "pr_2", "pr_3", "pr_4", "pr_5"], "oldest closed first, none twice"


def test_stale_namespaces_only_when_stale_after_is_set(
    github: GitHubStandIn, tmp_path: Path, lake: Warehouse
) -> None:
    github.add(7, at=NOW - timedelta(days=40))
    github.add(8, at=NOW - timedelta(days=1))
    idle_dev, busy_dev = Namespace.for_developer("ada"), Namespace.for_developer("bob")
    warehouse = ActiveWarehouse(
        url=f"duckdb:///{tmp_path / 'w.duckdb'}",
        base_schema="analytics",
        written_at={
            idle_dev.key: (NOW - timedelta(days=60)).timestamp(),
            busy_dev.key: (NOW - timedelta(hours=1)).timestamp(),
        },
    )
    warehouse.create(pr(7), pr(8), idle_dev, busy_dev)

    without = tick(definitions(github, warehouse, lake))
    assert not without.run_requests

    stale = tick(
        definitions(github, warehouse, lake, policy=CleanupPolicy(stale_after=timedelta(days=30)))
    )
    by_namespace = {r.tags["dagster-branch/namespace"]: r for r in stale.run_requests}
    assert sorted(by_namespace) == [idle_dev.key, "pr_7"]
    for request in by_namespace.values():
        assert request.tags["dagster-branch/state"] == "stale"
        assert request.run_config["ops"]["plan"]["config"]["require_closed"] is False


def test_an_unreadable_cursor_resets_safely(
    github: GitHubStandIn, warehouse: Warehouse, lake: Warehouse
) -> None:
    github.add(1)
    github.close(1, merged=True, at=NOW - timedelta(hours=1))
    warehouse.create(pr(1))
    defs = definitions(github, warehouse, lake)
    for broken in ("{not json", json.dumps({"version": 7}), json.dumps({"source": 12})):
        result = tick(defs, broken)
        assert keys(result) == keys(tick(defs)), "same decision as a first tick"
        CleanupCursor.model_validate_json(result.cursor or "")


def test_no_live_namespace_says_so(
    github: GitHubStandIn, warehouse: Warehouse, lake: Warehouse
) -> None:
    warehouse.create()
    result = tick(definitions(github, warehouse, lake))
    assert "No branch namespace owns objects in warehouse, lake" in result.skip_reason
    assert github.api_requests() == [], "no namespace, no question to the Git host"


def test_a_short_time_budget_answers_what_it_can_and_continues_next_tick(
    github: GitHubStandIn, warehouse: Warehouse, lake: Warehouse
) -> None:
    for number in range(1, 301):
        github.add(number)
    for number in (1, 2):
        github.close(number, at=github.clock + timedelta(minutes=number))
    github.clock += timedelta(minutes=5)
    for number in range(3, 301):
        github.touch(number)  # pulls 1 and 2 end up on the last page
    warehouse.create(*(pr(n) for n in range(1, 301)))
    defs = definitions(github, warehouse, lake, policy=CleanupPolicy(time_budget_seconds=0))

    first = tick(defs)
    assert not first.run_requests
    assert "not looked up yet" in first.skip_reason
    assert len(github.api_requests()) == 1, "out of time after the first page"

    defs = definitions(github, warehouse, lake)
    second = tick(defs, first.cursor)
    assert sorted(namespaces(second)) == ["pr_1", "pr_2"]


def test_steady_state_with_500_live_namespaces_costs_at_most_one_request(
    github: GitHubStandIn, warehouse: Warehouse, lake: Warehouse
) -> None:
    for number in range(1, 1001):
        github.add(number)
    warehouse.create(*(pr(n) for n in range(1, 501)))
    lake.create(*(pr(n) for n in range(250, 501)))
    defs = definitions(github, warehouse, lake)
    first = tick(defs)
    assert "500 live namespace(s)" in first.skip_reason

    github.server.clear_log()
    second = tick(defs, first.cursor)

    assert len(github.server.log) <= 1
    assert [response.status_code for _, response in github.server.log] == [304]
    assert not second.run_requests
    assert "500 active" in second.skip_reason
    # The tick's time is measured by benchmarks/bench_sensor.py, not asserted here.


def test_wrong_resources_are_clear_config_errors(
    github: GitHubStandIn, warehouse: Warehouse
) -> None:
    source = GitHubPullRequests(repository=github.repository, token=TOKEN, api_url=github.api_url)
    with pytest.raises(DagsterBranchConfigError, match="not a branch-aware store"):
        branch_cleanup_definitions(stores={"warehouse": source}, source=source)
    with pytest.raises(DagsterBranchConfigError, match="not a pull request source"):
        branch_cleanup_definitions(stores={"warehouse": warehouse}, source=warehouse)
    with pytest.raises(DagsterBranchConfigError, match="its own key"):
        branch_cleanup_definitions(stores={"pull_requests": warehouse}, source=source)


def test_a_store_that_cannot_answer_skips_the_tick(github: GitHubStandIn, lake: Warehouse) -> None:
    down = Warehouse(
        url=f"postgresql+psycopg://cleaner:pw-s3cret@127.0.0.1:{free_port()}/warehouse",
        base_schema="analytics",
    )
    result = tick(definitions(github, down, lake))
    assert not result.run_requests
    assert "store 'warehouse' could not list its namespaces (OperationalError" in result.skip_reason
    assert "pw-s3cret" not in result.skip_reason
    assert github.api_requests() == [], "no namespaces, no question to the Git host"


def test_the_sensor_and_schedule_can_be_called_directly_in_a_unit_test(
    github: GitHubStandIn, warehouse: Warehouse, lake: Warehouse
) -> None:
    """``sensor(context)``, the way Dagster's testing docs call sensors, works like a tick."""
    github.add(1)
    github.close(1, merged=True, at=NOW - timedelta(hours=2))
    warehouse.create(pr(1))
    defs = definitions(github, warehouse, lake, include_schedule=True)
    (sensor,) = defs.sensors or []
    (schedule,) = defs.schedules or []
    assert isinstance(sensor, dg.SensorDefinition)
    assert isinstance(schedule, dg.ScheduleDefinition)

    with dg.build_sensor_context(resources=defs.resources) as context:
        result = sensor(context)
    with dg.build_schedule_context(resources=defs.resources) as context:
        scheduled = schedule(context)

    assert isinstance(result, dg.SensorResult)
    assert [r.tags["dagster-branch/namespace"] for r in result.run_requests or []] == ["pr_1"]
    assert isinstance(scheduled, list)
    assert [r.run_key for r in scheduled] == [r.run_key for r in result.run_requests or []]
