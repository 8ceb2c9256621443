"""Verification with the real stores: both keys of the safety invariant, checked per object.

A plan is a value, so a test can hand verification a plan that a buggy store, a corrupted
ledger or a hand-edited inventory might produce, and check that every bad object is named.
"""

from __future__ import annotations

from typing import Any

import pytest

from dagster_branch import BranchDatabaseResource, BranchS3Resource, CleanupRefusedError
from dagster_branch.cleanup.plan import CleanupPlan, PlannedObject
from dagster_branch.cleanup.verify import check_plan, verify_plan
from dagster_branch.inventory import ObjectKind, OwnedObject
from dagster_branch.naming import Namespace
from dagster_branch.pull_requests import PullRequestStatus
from dagster_branch.sources.github import GitHubPullRequests
from tests.sources.stand_ins import GitHubStandIn

PR_7, PR_8 = Namespace.parse("pr_7"), Namespace.parse("pr_8")


@pytest.fixture
def stores(duckdb_url: str, s3_endpoint: str) -> dict[str, Any]:
    return {
        "warehouse": BranchDatabaseResource(
            url=duckdb_url, base_schema="analytics", protected_schemas=["finance"]
        ),
        "lake": BranchS3Resource(
            bucket="acme-data",
            prefix="lake",
            branch_bucket="acme-branches",
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
        ),
    }


def _plan(*objects: tuple[str, OwnedObject]) -> CleanupPlan:
    return CleanupPlan(
        namespace=PR_7,
        objects=tuple(PlannedObject(key, obj) for key, obj in objects),
        store_keys=("warehouse", "lake"),
    )


LEDGER = frozenset({"ledger"})  # as if a ledger row of the store's owner recorded it


def _schema(name: str, namespace: Namespace = PR_7) -> OwnedObject:
    return OwnedObject(namespace, "duckdb", ObjectKind.SCHEMA, name, found_in=LEDGER)


def _prefix(bucket: str, name: str) -> OwnedObject:
    return OwnedObject(PR_7, "s3", ObjectKind.PREFIX, name, container=bucket, found_in=LEDGER)


def test_a_plan_of_the_namespace_own_objects_is_approved(stores: dict[str, Any]) -> None:
    plan = _plan(
        ("warehouse", _schema("analytics__pr_7")),
        ("lake", _prefix("acme-branches", "_branches/pr_7/")),
    )
    verdict = check_plan(plan, stores, source=None, require_closed=False)
    assert verdict.approved, verdict.reasons


def test_every_object_that_is_not_the_namespace_own_is_named(stores: dict[str, Any]) -> None:
    plan = _plan(
        ("warehouse", _schema("analytics__pr_7")),  # fine
        ("warehouse", _schema("analytics")),  # production
        ("warehouse", _schema("finance")),  # protected by configuration
        ("warehouse", _schema("analytics__pr_70")),  # another PR's name, claimed by pr_7
        ("warehouse", _schema("analytics__pr_8", PR_8)),  # reported for another namespace
        ("lake", _prefix("acme-data", "lake/")),  # production's prefix
        ("lake", _prefix("acme-branches", "_branches/pr_70/")),
    )

    with pytest.raises(CleanupRefusedError) as refused:
        verify_plan(plan, stores, source=None, require_closed=False)

    message = str(refused.value)
    assert message.startswith("Refusing to clean pr_7; nothing was removed:")
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(lines) == 6
    for name in (
        "schema 'analytics'",
        "finance",
        "analytics__pr_70",
        "belongs to pr_8",
        "acme-data/lake/",
        "_branches/pr_70/",
    ):
        assert any(name in line for line in lines), name
    assert not any("'analytics__pr_7'" in line for line in lines)


def test_max_objects_counts_planned_objects(stores: dict[str, Any]) -> None:
    """Objects without a survey count as one each (contents: test_max_objects_contents.py)."""
    plan = _plan(
        ("warehouse", _schema("analytics__pr_7")),
        ("lake", _prefix("acme-branches", "_branches/pr_7/")),
    )
    assert check_plan(plan, stores, source=None, require_closed=False, max_objects=2).approved
    verdict = check_plan(plan, stores, source=None, require_closed=False, max_objects=1)
    assert verdict.reasons == (
        "The plan for pr_7 would remove 2 objects (warehouse: schema analytics__pr_7: 1; "
        "lake: prefix acme-branches/_branches/pr_7/: 1), more than max_objects=1: nothing will "
        "be removed. Check the plan (dagster-branch plan), then raise max_objects in the run "
        "config if this many is expected.",
    )


def test_the_pull_request_is_asked_fresh_and_only_closed_or_merged_passes(
    stores: dict[str, Any], github: GitHubStandIn, pull_requests: GitHubPullRequests
) -> None:
    plan = _plan(("warehouse", _schema("analytics__pr_7")))

    merged = verify_plan(plan, stores, source=pull_requests)
    assert merged is not None and merged.state is PullRequestStatus.MERGED

    github.reopen(7)
    with pytest.raises(CleanupRefusedError, match="Pull request #7 of pr_7 is open"):
        verify_plan(plan, stores, source=pull_requests)
    assert len(github.api_requests()) == 2  # one fresh lookup per verification

    with pytest.raises(CleanupRefusedError, match="no pull-request source is configured"):
        verify_plan(plan, stores, source=None, require_closed=True)
