"""The run metadata a person reads in the Dagster UI after a cleanup."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from dagster_branch.cleanup.plan import CleanupPlan, PlannedObject
from dagster_branch.cleanup.report import (
    StoreRemoval,
    failures_of,
    format_bytes,
    format_duration,
    plan_metadata,
    removal_metadata,
)
from dagster_branch.inventory import (
    ObjectKind,
    OwnedObject,
    RemovalResult,
    Survey,
    refused_for_dependents,
)
from dagster_branch.naming import Namespace
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus

PR_7 = Namespace.parse("pr_7")
SCHEMA = OwnedObject(PR_7, "postgresql", ObjectKind.SCHEMA, "analytics__pr_7")
PREFIX = OwnedObject(PR_7, "s3", ObjectKind.PREFIX, "_branches/pr_7/", container="lake")
NOW = datetime(2025, 1, 2, 12, 0, tzinfo=timezone.utc)


def _removals(*, dry_run: bool = False, prefix_error: str | None = None) -> list[StoreRemoval]:
    return [
        StoreRemoval(
            "warehouse",
            (RemovalResult(SCHEMA, removed=not dry_run, objects=3, bytes=0),),
            started_at=100.0,
            finished_at=101.5,
            dry_run=dry_run,
        ),
        StoreRemoval(
            "lake",
            (
                RemovalResult(
                    PREFIX,
                    removed=not dry_run and prefix_error is None,
                    objects=2_001,
                    bytes=3 * 1024 * 1024,
                    error=prefix_error,
                ),
            ),
            started_at=100.2,
            finished_at=104.0,
            dry_run=dry_run,
        ),
    ]


def _table_rows(value: dg.MetadataValue) -> list[dict[str, object]]:
    assert isinstance(value, dg.TableMetadataValue)
    return [dict(record.data) for record in value.records]


def test_removal_metadata_lists_each_object_with_totals_duration_and_time_since_close() -> None:
    closed = PullRequestState(
        number=7,
        state=PullRequestStatus.MERGED,
        merged_at=NOW - timedelta(hours=2, minutes=5),
        url="https://github.com/acme/data/pull/7",
    )
    metadata = removal_metadata(_removals(), pull_request=closed, now=NOW)

    assert _table_rows(metadata["removed"]) == [
        {
            "store": "warehouse",
            "kind": "schema",
            "name": "analytics__pr_7",
            "objects": 3,
            "bytes": 0,
            "status": "removed",
            "dependents": "-",
        },
        {
            "store": "lake",
            "kind": "prefix",
            "name": "lake/_branches/pr_7/",
            "objects": 2_001,
            "bytes": 3 * 1024 * 1024,
            "status": "removed",
            "dependents": "-",
        },
    ]
    assert metadata["objects_removed"] == dg.MetadataValue.int(2)
    assert metadata["contents_objects"] == dg.MetadataValue.int(2_004)
    assert metadata["contents_bytes"] == dg.MetadataValue.int(3 * 1024 * 1024)
    assert metadata["failures"] == dg.MetadataValue.int(0)
    # The two stores ran in parallel: 100.0 → 104.0, not the sum of both.
    assert metadata["duration_seconds"] == dg.MetadataValue.float(4.0)
    assert metadata["since_pr_closed"] == dg.MetadataValue.text("2h 5m")
    assert metadata["seconds_since_pr_closed"] == dg.MetadataValue.float(7500.0)
    assert metadata["pull_request"] == dg.MetadataValue.url("https://github.com/acme/data/pull/7")
    summary = metadata["summary"]
    assert isinstance(summary, dg.MarkdownMetadataValue)
    assert "**Removed 2 of 2 planned objects** (2004 objects inside, 3.0 MiB)" in summary.value
    assert (
        "| lake | prefix | lake/_branches/pr_7/ | 2001 | 3.0 MiB | removed | - |" in summary.value
    )


def test_dry_run_metadata_reports_the_same_rows_as_would_remove() -> None:
    real = removal_metadata(_removals(), now=NOW)
    dry = removal_metadata(_removals(dry_run=True), now=NOW)

    strip = [
        {k: v for k, v in row.items() if k != "status"} for row in _table_rows(real["removed"])
    ]
    assert [
        {k: v for k, v in row.items() if k != "status"} for row in _table_rows(dry["removed"])
    ] == strip
    assert {row["status"] for row in _table_rows(dry["removed"])} == {"would remove"}
    assert dry["dry_run"] == dg.MetadataValue.bool(True)
    assert dry["objects_to_remove"] == dg.MetadataValue.int(2)
    assert "objects_removed" not in dry
    assert failures_of(_removals(dry_run=True)) == []


def test_failures_name_store_object_and_reason() -> None:
    removals = _removals(prefix_error="SlowDown after 5 attempts; 12 keys left")
    assert failures_of(removals) == [
        "lake: prefix lake/_branches/pr_7/: SlowDown after 5 attempts; 12 keys left"
    ]
    metadata = removal_metadata(removals, now=NOW)
    assert metadata["failures"] == dg.MetadataValue.int(1)
    assert metadata["objects_removed"] == dg.MetadataValue.int(1)
    assert [row["status"] for row in _table_rows(metadata["removed"])] == ["removed", "failed"]
    summary = metadata["summary"]
    assert isinstance(summary, dg.MarkdownMetadataValue)
    assert "**1 failed**: run the cleanup again to retry them." in summary.value


def test_a_result_neither_removed_nor_failed_counts_as_a_failure() -> None:
    silent = StoreRemoval(
        "warehouse", (RemovalResult(SCHEMA, removed=False),), started_at=0, finished_at=1
    )
    assert failures_of([silent]) == [
        "warehouse: schema analytics__pr_7: the store reported it as not removed, without a reason"
    ]


def test_pending_expiry_is_not_a_failure() -> None:
    pending = StoreRemoval(
        "lake", (RemovalResult(PREFIX, removed=False, pending=True),), started_at=0, finished_at=1
    )
    assert failures_of([pending]) == []
    rows = _table_rows(removal_metadata([pending], now=NOW)["removed"])
    assert rows[0]["status"] == "pending expiry"


def test_plan_metadata_shows_every_planned_object_and_where_it_was_found() -> None:
    ledger_and_discovery = OwnedObject(
        PR_7,
        "postgresql",
        ObjectKind.SCHEMA,
        "analytics__pr_7",
        found_in=frozenset({"ledger", "discovery"}),
    )
    plan = CleanupPlan(
        namespace=PR_7,
        objects=(PlannedObject("warehouse", ledger_and_discovery), PlannedObject("lake", PREFIX)),
        store_keys=("warehouse", "lake"),
    )
    metadata = plan_metadata(plan)
    assert metadata["namespace"] == dg.MetadataValue.text("pr_7")
    # The prefix was found by nothing that records it: listed, kept, not counted as planned.
    assert metadata["planned_objects"] == dg.MetadataValue.int(1)
    assert metadata["unrecorded_kept"] == dg.MetadataValue.int(1)
    assert metadata["planned_by_kind"] == dg.MetadataValue.text("1 schema")
    assert _table_rows(metadata["plan"]) == [
        {
            "store": "warehouse",
            "kind": "schema",
            "name": "analytics__pr_7",
            "found_in": "discovery, ledger",
            "contents": 1,
            "dependents": "-",
            "status": "remove",
        },
        {
            "store": "lake",
            "kind": "prefix",
            "name": "lake/_branches/pr_7/",
            "found_in": "-",
            "contents": 1,
            "dependents": "-",
            "status": "unrecorded: kept",
        },
    ]
    assert "refused" not in metadata


def test_refused_objects_show_their_dependents_in_the_plan_and_the_dry_run() -> None:
    schema = OwnedObject(
        PR_7, "postgresql", ObjectKind.SCHEMA, "analytics__pr_7", found_in=frozenset({"ledger"})
    )
    dependents = ("analytics.refunds has a foreign key to analytics__pr_7.orders",)
    plan = CleanupPlan(
        namespace=PR_7,
        objects=(PlannedObject("warehouse", schema, Survey(contents=4, dependents=dependents)),),
        store_keys=("warehouse",),
    )
    refused = plan_metadata(plan)["refused"]
    assert isinstance(refused, dg.MarkdownMetadataValue)
    assert "- warehouse: schema analytics__pr_7\n  - analytics.refunds has a foreign key" in (
        refused.value
    )
    removal = StoreRemoval(
        "warehouse",
        (refused_for_dependents(schema, dependents),),
        started_at=100.0,
        finished_at=101.0,
        dry_run=True,
    )
    metadata = removal_metadata([removal], now=NOW)
    [row] = _table_rows(metadata["removed"])
    assert (row["status"], row["dependents"]) == ("refused", dependents[0])
    summary = metadata["summary"]
    assert isinstance(summary, dg.MarkdownMetadataValue)
    assert "**1 refused**" in summary.value and "failed" not in summary.value


def test_sizes_and_durations_read_naturally() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 GiB",
    ]
    assert [format_duration(s) for s in (4.24, 60, 3725, 90_061)] == [
        "4.2s",
        "1m",
        "1h 2m 5s",
        "1d 1h 1m 1s",
    ]
