"""The ``expire`` strategy through the cleanup job: a lake whose branch prefixes are too large to
delete promptly gets an S3 lifecycle rule instead, the run succeeds and says the deletion is
pending, and a run after S3 has expired the data finishes the job. PostgreSQL and the S3 server;
the S3 side does not depend on the warehouse dialect."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest
from botocore.exceptions import ClientError

from dagster_branch.ledger import Ledger
from dagster_branch.naming import Namespace
from tests.cleanup.conftest import RunCleanup
from tests.cleanup.helpers import outcome_of
from tests.cleanup.world import PRODUCTION, World, deployment, of_pr_7, outside_pr_7, snapshot

PR_7 = Namespace.parse("pr_7")
BRANCH_BUCKET, PRODUCTION_BUCKET = "acme-branches", "acme-data"


def _record_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return next(
        dict(event.step_output_data.metadata)
        for event in result.events_for_node("record")
        if event.is_successful_output
    )


def _rules(world: World, bucket: str) -> list[dict[str, Any]]:
    try:
        answer = world.admin().get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return []
    return list(answer["Rules"])


def _what_s3_expiry_does(world: World, prefix: str) -> None:
    """Within a day S3 deletes every version and marker under the prefix and aborts uploads."""
    s3 = world.admin()
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=BRANCH_BUCKET, Prefix=prefix
    ):
        entries = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if entries:
            s3.delete_objects(Bucket=BRANCH_BUCKET, Delete={"Objects": entries, "Quiet": True})
    for upload in s3.list_multipart_uploads(Bucket=BRANCH_BUCKET, Prefix=prefix).get("Uploads", []):
        s3.abort_multipart_upload(
            Bucket=BRANCH_BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
        )


def _live_lake_rows(world: World) -> list[str]:
    ledger = Ledger.from_url(world.warehouse_url)
    try:
        return [e.name for e in ledger.live_entries(PR_7, store="lake")]
    finally:
        ledger.close()


@pytest.fixture
def expiring(pg_world: World) -> dict[str, Any]:
    """The production stores, with the lake configured to expire instead of delete."""
    return pg_world.stores(lake=pg_world.lake(cleanup_strategy="expire"))


def test_expire_strategy_through_the_job_sets_the_rule_reports_pending_and_finishes_later(
    pg_world: World, expiring: dict[str, Any], run_cleanup: RunCleanup
) -> None:
    before = snapshot(pg_world)
    with deployment(PRODUCTION):  # as the cleanup sees it: production's code location
        [lake_prefix] = [o.name for o in expiring["lake"].objects_of(PR_7)]

    result = run_cleanup(pg_world, stores=expiring)

    outcome = outcome_of(result)  # pending is not a failure: the run succeeds
    by_store = {r.store_key: r.results for r in outcome.removals}
    [lake_result] = by_store["lake"]
    assert lake_result.pending and not lake_result.removed and lake_result.error is None
    assert all(r.removed for store in ("warehouse", "exports") for r in by_store[store])

    metadata = _record_metadata(result)
    statuses = {(row.data["store"], row.data["status"]) for row in metadata["removed"].records}
    assert statuses == {
        ("warehouse", "removed"),
        ("lake", "pending expiry"),
        ("exports", "removed"),
    }
    assert metadata["objects_pending"] == dg.MetadataValue.int(1)
    summary = str(metadata["summary"].value)
    assert "1 pending expiry" in summary and "lifecycle rule" in summary

    # The rule covers exactly pr_7's prefix in the branch bucket; production has none.
    rules = _rules(pg_world, BRANCH_BUCKET)
    assert rules and {r["Filter"]["Prefix"] for r in rules} == {lake_prefix}
    assert _rules(pg_world, PRODUCTION_BUCKET) == []
    after = snapshot(pg_world)
    assert outside_pr_7(after) == outside_pr_7(before)  # production and pr_8 byte for byte
    left = of_pr_7(after)
    # What is left of pr_7 is the lake's data, waiting for S3, and its ledger row.
    assert f"live ledger row prefix {lake_prefix}" in left
    assert all(
        item.startswith(f"{BRANCH_BUCKET}: ") or item == f"live ledger row prefix {lake_prefix}"
        for item in left
    ), left
    assert _live_lake_rows(pg_world) == [lake_prefix]  # the ledger says: not gone yet

    _what_s3_expiry_does(pg_world, lake_prefix)
    finish = run_cleanup(
        pg_world, stores=pg_world.stores(lake=pg_world.lake(cleanup_strategy="expire"))
    )

    [done] = [r for r in outcome_of(finish).results() if r.obj.name == lake_prefix]
    assert done.removed and not done.pending
    assert _rules(pg_world, BRANCH_BUCKET) == []  # our rule taken off again
    final = snapshot(pg_world)
    assert of_pr_7(final) == []  # every object of pr_7 gone, its ledger rows marked dropped
    assert _live_lake_rows(pg_world) == []
    assert outside_pr_7(final) == outside_pr_7(before)
