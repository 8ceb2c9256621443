"""``max_objects`` counts contents, not containers (safety class: the circuit breaker).

``max_objects: 100`` let a run remove a schema and 300 S3 objects, because a schema or a prefix
counted as one. Now the plan counts what would actually be removed (the relations inside a
schema; every S3 key, version, delete marker and incomplete upload), the plan and the dry run
report it, and a plan over the limit removes nothing. The count is one listing that the purge
reuses, so a namespace within the limit is not listed twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest

from dagster_branch import Namespace
from dagster_branch.cleanup.ops import remove_from_store
from dagster_branch.cleanup.plan import build_cleanup_plan
from dagster_branch.stores.s3_survey import count_prefix
from tests.cleanup.helpers import failure_text
from tests.faults.world import (
    BUCKET,
    lake,
    run_cleanup,
    seed_keys,
    warehouse,
    write_files,
    write_tables,
)
from tests.support.deployments import Deploy
from tests.support.snapshots import live_ledger, s3_snapshot
from tests.support.sql import query

PR_7 = Namespace.parse("pr_7")
LOG = logging.getLogger("test.max_objects")


def _build(postgres_url: str, endpoint: str, s3_client: Any, deploy: Deploy, keys: int) -> None:
    """Production's table and file; PR 7's schema with 60 tables and ``keys`` lake keys."""
    s3_client.create_bucket(Bucket=BUCKET)
    deploy("production")
    write_tables(postgres_url)
    write_files(lake(endpoint, postgres_url), {"orders.csv": b"production"})
    deploy("branch", pr=7)
    write_tables(postgres_url, [f"t{n}" for n in range(60)])
    write_files(lake(endpoint, postgres_url), {"orders.csv": b"pr 7"})
    seed_keys(endpoint, BUCKET, [f"_branches/pr_7/lake/bulk/{n:05}.csv" for n in range(keys - 1)])
    deploy("production")


def _stores(postgres_url: str, endpoint: str) -> dict[str, Any]:
    return {"warehouse": warehouse(postgres_url), "lake": lake(endpoint, postgres_url)}


def _tables(url: str) -> set[str]:
    rows = query(url, "SELECT schemaname || '.' || tablename FROM pg_tables")
    return {name for (name,) in rows if name.startswith("analytics")}


def test_a_plan_over_the_limit_by_its_contents_removes_nothing(
    postgres_url: str, s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    _build(postgres_url, s3_endpoint, s3_client, deploy, keys=300)
    tables, keys = _tables(postgres_url), s3_snapshot(s3_endpoint)

    result = run_cleanup(_stores(postgres_url, s3_endpoint), "pr_7", max_objects=100)

    assert not result.success
    text = failure_text(result)
    assert "would remove at least 361 objects" in text  # counting stopped past the limit
    assert "more than max_objects=100" in text
    assert "warehouse: schema analytics__pr_7: 61" in text
    assert _tables(postgres_url) == tables and s3_snapshot(s3_endpoint) == keys  # nothing
    assert live_ledger(postgres_url, "pr_7") == {
        "warehouse:analytics__pr_7",
        f"lake:{BUCKET}/_branches/pr_7/",
    }


def test_the_plan_and_the_dry_run_report_the_contents_and_a_plan_within_the_limit_runs(
    postgres_url: str, s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    _build(postgres_url, s3_endpoint, s3_client, deploy, keys=30)
    s3_client.create_multipart_upload(Bucket=BUCKET, Key="_branches/pr_7/lake/big.parquet")

    dry = run_cleanup(_stores(postgres_url, s3_endpoint), "pr_7", max_objects=92, dry_run=True)

    assert dry.success
    plan = dry.output_for_node("plan").plan
    assert {(p.store_key, p.survey.contents) for p in plan} == {("warehouse", 61), ("lake", 31)}
    assert plan.contents == 92
    record = dry.output_for_node("record")
    assert {(r.obj.kind.value, r.objects) for r in record.results()} == {
        ("schema", 60),
        ("prefix", 30),
    }
    over = run_cleanup(_stores(postgres_url, s3_endpoint), "pr_7", max_objects=91)
    assert not over.success and "would remove at least 92 objects" in failure_text(over)

    result = run_cleanup(_stores(postgres_url, s3_endpoint), "pr_7", max_objects=92)

    assert result.success, failure_text(result)
    assert _tables(postgres_url) == {"analytics.orders"}
    assert set(s3_snapshot(s3_endpoint)) == {"lake/orders.csv"}
    uploads = s3_client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    assert uploads == []


def test_versions_delete_markers_and_uploads_are_counted(s3_endpoint: str, s3_client: Any) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    s3_client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"2", b"3"):
        s3_client.put_object(Bucket=BUCKET, Key="_branches/pr_7/a.csv", Body=body)
    s3_client.delete_object(Bucket=BUCKET, Key="_branches/pr_7/a.csv")  # a delete marker
    s3_client.create_multipart_upload(Bucket=BUCKET, Key="_branches/pr_7/b.csv")
    s3_client.put_object(Bucket=BUCKET, Key="lake/orders.csv", Body=b"production")

    listing = count_prefix(s3_client, BUCKET, "_branches/pr_7/", limit=100)

    assert (listing.objects, listing.delete_markers, listing.multipart_uploads) == (4, 1, 1)
    assert listing.contents == 5 and listing.complete
    assert listing.entries is not None and len(listing.entries) == 4


@pytest.mark.parametrize("keys", [2_100])
def test_a_purge_within_the_limit_lists_once_and_counting_stops_past_it(
    postgres_url: str, s3_endpoint: str, s3_client: Any, deploy: Deploy, keys: int
) -> None:
    _build(postgres_url, s3_endpoint, s3_client, deploy, keys=keys)
    store = lake(s3_endpoint, postgres_url)
    sent: Counter[str] = Counter()
    store.get_cleanup_client().meta.events.register(
        "request-created.s3", lambda operation_name, **_: sent.update([operation_name])
    )
    try:
        over = build_cleanup_plan("pr_7", {"lake": store}, max_objects=500)
        [far] = over
        assert (far.survey.complete, far.survey.listing.entries) == (False, None)
        # objects_of's one-key probe, then one page of the count: it stopped, 1,000 > 500
        assert sent["ListObjectsV2"] == 2
        sent.clear()

        plan = build_cleanup_plan("pr_7", {"lake": store}, max_objects=10_000)
        [planned] = plan
        assert planned.survey.contents == keys
        surveys = {planned.obj: planned.survey}
        [result] = remove_from_store(
            store, "lake", [planned.obj], dry_run=False, log=LOG, surveys=surveys
        )
    finally:
        store.close()
    assert (result.removed, result.objects, result.error) == (True, keys, None)
    assert set(s3_snapshot(s3_endpoint)) == {"lake/orders.csv"}
    # Planning (objects_of and the count) and the purge together: the keys are listed once.
    pages = -(-keys // 1000)
    assert sent["DeleteObjects"] == pages
    # Beyond the count's pages: objects_of's probe, the purge's own check, and the two re-checks
    # around the ledger update (has_anything: keys, versions, uploads), which make sure nothing
    # written meanwhile is marked removed.
    rechecks = 2 * 3
    assert sent["ListObjectsV2"] <= pages + 4, sent
    assert sum(sent.values()) <= 2 * pages + 5 + rechecks, sent
    print(f"requests for {keys} keys (plan + purge): {sum(sent.values())} {dict(sent)}")
