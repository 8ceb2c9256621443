"""The promise users buy: the cleanup removes everything a closed branch created, and nothing
else, on PostgreSQL, DuckDB and SQLite with the S3 server; a dry run shows exactly that; and
running it twice, or twice at once, ends in the same state."""

from __future__ import annotations

import threading
from typing import Any

import dagster as dg

from dagster_branch.naming import Namespace
from tests.cleanup.conftest import RunCleanup
from tests.cleanup.helpers import CLEANUP_JOB, cleanup_config, failure_text, outcome_of
from tests.cleanup.world import PRODUCTION, World, deployment, of_pr_7, outside_pr_7, snapshot

PR_7, PR_8 = Namespace.parse("pr_7"), Namespace.parse("pr_8")


def record_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return next(
        dict(event.step_output_data.metadata)
        for event in result.events_for_node("record")
        if event.is_successful_output
    )


def table_rows(result: dg.ExecuteInProcessResult) -> list[dict[str, Any]]:
    value = record_metadata(result)["removed"]
    assert isinstance(value, dg.TableMetadataValue)
    return [dict(record.data) for record in value.records]


def _listed(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(row["store"], row["kind"], row["name"]) for row in rows]


def test_dry_run_reports_then_cleanup_removes_exactly_pr_7_and_a_rerun_changes_nothing(
    world: World, run_cleanup: RunCleanup
) -> None:
    before = snapshot(world)
    assert len(of_pr_7(before)) > 10  # tables, ledger rows, keys, versions, bucket, uploads

    dry = run_cleanup(world, dry_run=True)
    assert outcome_of(dry).dry_run
    assert snapshot(world) == before  # byte for byte: nothing removed, nothing written
    assert {row["status"] for row in table_rows(dry)} == {"would remove"}

    real = run_cleanup(world)
    after = snapshot(world)
    assert of_pr_7(after) == []
    assert outside_pr_7(after) == outside_pr_7(before)  # production and pr_8 untouched

    rows = table_rows(real)
    assert {row["status"] for row in rows} == {"removed"}
    assert _listed(table_rows(dry)) == _listed(rows)  # the dry run announced exactly these
    assert {(store, kind) for store, kind, _ in _listed(rows)} >= {
        ("warehouse", "schema"),
        ("lake", "prefix"),
        ("exports", "bucket"),
    }
    metadata = record_metadata(real)
    assert metadata["failures"] == dg.MetadataValue.int(0)
    assert metadata["objects_removed"] == dg.MetadataValue.int(len(rows))
    assert "since_pr_closed" in metadata  # GitHub said when PR 7 was merged
    assert metadata["pull_request"] == dg.MetadataValue.url("https://github.com/acme/data/pull/7")

    with deployment(PRODUCTION):
        for store in world.stores().values():
            assert store.objects_of(PR_7) == []
            assert PR_7 not in store.list_namespaces()
            assert PR_8 in store.list_namespaces()

    again = run_cleanup(world)  # the sensor may fire twice: the second run is a no-op
    assert outcome_of(again).results() == []
    assert snapshot(world) == after


def test_two_runs_at_once_end_in_the_same_state_without_errors(
    world: World, pull_requests: Any
) -> None:
    before = snapshot(world)
    results: list[dg.ExecuteInProcessResult] = []
    start = threading.Barrier(2)

    def run() -> None:
        resources = {**world.stores(), "pull_requests": pull_requests}
        start.wait()
        results.append(
            CLEANUP_JOB.execute_in_process(
                run_config=cleanup_config("pr_7"), resources=resources, raise_on_error=False
            )
        )

    with deployment(PRODUCTION):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)

    assert len(results) == 2
    for result in results:
        assert result.success, failure_text(result)
    after = snapshot(world)
    assert of_pr_7(after) == []
    assert outside_pr_7(after) == outside_pr_7(before)
