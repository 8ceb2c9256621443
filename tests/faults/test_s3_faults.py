"""S3 under faults: a fault proxy between the cleanup job and the real S3 server.

Every scenario ends the same way for the user: everything of ``pr_7`` removed (now or after a
rerun), production and ``pr_8`` byte-for-byte unchanged, and a ledger that says which is which.
botocore retries throttled, failed and lost requests (its standard mode, ``max_attempts``
retries); the library re-sends the keys a ``DeleteObjects`` answer reports as throttled.
"""

from __future__ import annotations

import logging

import boto3
import pytest

from dagster_branch import Namespace
from tests.cleanup.helpers import failure_text
from tests.support.deployments import Deploy
from tests.support.snapshots import live_ledger, outside, s3_snapshot

from .conftest import BulkS3
from .proxy import (
    FailKeys,
    HttpFaultProxy,
    LoseResponse,
    Rule,
    TcpFaultProxy,
    Truncate,
    internal_error,
    slow_down,
)
from .world import BUCKET, lake, run_cleanup, write_files

BRANCH_KEYS = 2_100  # three DeleteObjects batches of at most 1,000 keys


@pytest.fixture
def lake_world(bulk_s3: BulkS3, sqlite_url: str, deploy: Deploy) -> str:
    """Production files, ``pr_7`` and ``pr_8``, all written the real way (plus 50 more keys of
    ``pr_7`` seeded straight into the server; tests that need several batches seed more)."""
    s3_endpoint = bulk_s3.endpoint_url
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=BUCKET
    )
    deploy("production")
    write_files(lake(s3_endpoint, sqlite_url), {"orders.csv": b"id\n1\n", "users.csv": b"u\n"})
    deploy("branch", pr=7)
    write_files(lake(s3_endpoint, sqlite_url), {"orders.csv": b"id\n7\n"})
    deploy("branch", pr=8)
    write_files(lake(s3_endpoint, sqlite_url), {"orders.csv": b"id\n8\n"})
    seed_pr7(bulk_s3, 50)
    deploy("production")
    return sqlite_url


def seed_pr7(bulk_s3: BulkS3, count: int) -> None:
    bulk_s3.seed(BUCKET, (f"_branches/pr_7/lake/part-{n:05d}" for n in range(count)))


def _pr7_keys(endpoint: str) -> dict[str, str]:
    return s3_snapshot(endpoint, prefix="_branches/pr_7/")


def test_throttled_delete_batches_still_remove_everything(
    bulk_s3_proxy: HttpFaultProxy, bulk_s3: BulkS3, lake_world: str
) -> None:
    seed_pr7(bulk_s3, BRANCH_KEYS)
    before = s3_snapshot(bulk_s3.endpoint_url)
    bulk_s3_proxy.add(Rule(method="POST", query="delete", on={2, 3}, action=slow_down()))

    result = run_cleanup({"lake": lake(bulk_s3_proxy.url, lake_world)}, "pr_7")

    assert result.success, failure_text(result)
    assert bulk_s3_proxy.count(method="POST", query="delete", outcome="slow-down") == 2
    assert _pr7_keys(bulk_s3.endpoint_url) == {}
    assert s3_snapshot(bulk_s3.endpoint_url) == outside(before, "pr_7")
    assert live_ledger(lake_world, "pr_7") == set()
    assert live_ledger(lake_world, "pr_8") == {"lake:acme-data/_branches/pr_8/"}


def test_per_key_throttling_inside_a_successful_answer_is_retried(
    bulk_s3_proxy: HttpFaultProxy, bulk_s3: BulkS3, lake_world: str
) -> None:
    before = s3_snapshot(bulk_s3.endpoint_url)
    bulk_s3_proxy.add(Rule(method="POST", query="delete", on={1, 2}, action=FailKeys(20)))

    result = run_cleanup({"lake": lake(bulk_s3_proxy.url, lake_world)}, "pr_7")

    assert result.success, failure_text(result)
    assert bulk_s3_proxy.count(method="POST", query="delete", outcome="fail-keys") == 2
    assert _pr7_keys(bulk_s3.endpoint_url) == {}
    assert s3_snapshot(bulk_s3.endpoint_url) == outside(before, "pr_7")


def test_a_lost_answer_and_a_truncated_listing_are_retried_safely(
    bulk_s3_proxy: HttpFaultProxy, bulk_s3: BulkS3, lake_world: str
) -> None:
    before = s3_snapshot(bulk_s3.endpoint_url)
    # The server deletes the first batch but its answer never arrives; the first listing page
    # arrives cut in half.
    bulk_s3_proxy.add(Rule(method="POST", query="delete", on={1}, action=LoseResponse()))
    bulk_s3_proxy.add(
        Rule(method="GET", query="list-type", on={1}, action=Truncate(keep_bytes=500))
    )

    result = run_cleanup({"lake": lake(bulk_s3_proxy.url, lake_world)}, "pr_7")

    assert result.success, failure_text(result)
    assert bulk_s3_proxy.count(outcome="lose-response") == 1
    assert bulk_s3_proxy.count(outcome="truncate") == 1
    assert _pr7_keys(bulk_s3.endpoint_url) == {}
    assert s3_snapshot(bulk_s3.endpoint_url) == outside(before, "pr_7")


def test_persistent_throttling_fails_the_run_and_a_rerun_completes(
    bulk_s3_proxy: HttpFaultProxy, bulk_s3: BulkS3, lake_world: str
) -> None:
    seed_pr7(bulk_s3, 1_100)  # two batches: the first goes through
    before = s3_snapshot(bulk_s3.endpoint_url)
    bulk_s3_proxy.add(Rule(method="POST", query="delete", on=range(2, 100), action=slow_down()))
    store = {"lake": lake(bulk_s3_proxy.url, lake_world, max_attempts=2)}

    first = run_cleanup(store, "pr_7")

    assert not first.success
    message = failure_text(first)
    assert "incomplete" in message and "_branches/pr_7/" in message
    assert "run the cleanup again" in message
    left = _pr7_keys(bulk_s3.endpoint_url)
    assert 0 < len(left) < 1_101  # one batch went through, the other is still there
    assert s3_snapshot(bulk_s3.endpoint_url) == {**outside(before, "pr_7"), **left}
    assert live_ledger(lake_world, "pr_7") == {"lake:acme-data/_branches/pr_7/"}  # the truth

    bulk_s3_proxy.clear()  # the throttling stops
    second = run_cleanup({"lake": lake(bulk_s3_proxy.url, lake_world)}, "pr_7")

    assert second.success, failure_text(second)
    assert _pr7_keys(bulk_s3.endpoint_url) == {}
    assert s3_snapshot(bulk_s3.endpoint_url) == outside(before, "pr_7")
    assert live_ledger(lake_world, "pr_7") == set()


def test_a_listing_that_keeps_failing_removes_nothing_and_says_so(
    bulk_s3_proxy: HttpFaultProxy, bulk_s3: BulkS3, lake_world: str
) -> None:
    before = s3_snapshot(bulk_s3.endpoint_url)
    bulk_s3_proxy.add(Rule(method="GET", query="list-type", action=internal_error()))

    result = run_cleanup({"lake": lake(bulk_s3_proxy.url, lake_world, max_attempts=1)}, "pr_7")

    assert not result.success
    assert "InternalError" in failure_text(result) or "500" in failure_text(result)
    assert s3_snapshot(bulk_s3.endpoint_url) == before
    assert bulk_s3_proxy.count(method="POST", query="delete") == 0
    assert live_ledger(lake_world, "pr_7") == {"lake:acme-data/_branches/pr_7/"}


# -- the ledger lost after a successful purge ---------------------------------------------------


@pytest.fixture
def ledger_world(bulk_s3: BulkS3, postgres_proxy: tuple[TcpFaultProxy, str], deploy: Deploy) -> str:
    """Production, ``pr_7`` and ``pr_8`` written the real way, with the ledger on PostgreSQL
    reached through the TCP fault proxy; returns the ledger's URL through the proxy."""
    _, ledger_url = postgres_proxy
    endpoint = bulk_s3.endpoint_url
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    deploy("production")
    write_files(lake(endpoint, ledger_url), {"orders.csv": b"id\n1\n"})
    for pr in (7, 8):
        deploy("branch", pr=pr)
        write_files(lake(endpoint, ledger_url), {"orders.csv": f"id\n{pr}\n".encode()})
    seed_pr7(bulk_s3, 1_200)
    deploy("production")
    return ledger_url


def test_a_ledger_lost_after_the_purge_is_an_error_and_a_rerun_records_it(
    bulk_s3: BulkS3,
    postgres_url: str,
    postgres_proxy: tuple[TcpFaultProxy, str],
    ledger_world: str,
) -> None:
    proxy, _ = postgres_proxy
    endpoint = bulk_s3.endpoint_url
    before = s3_snapshot(endpoint)
    store = lake(endpoint, ledger_world)
    pr_7 = Namespace.parse("pr_7")
    [prefix] = store.objects_of(pr_7)
    proxy.drop_before(b"UPDATE", occurrence=1)  # the ledger goes away between purge and record

    [result] = store.remove_objects([prefix], dry_run=False, log=logging.getLogger("cleanup"))

    assert proxy.fired == 1
    assert result.removed and result.objects == 1_201  # the data is gone...
    assert result.error is not None  # ...but that is not reported as a success
    assert "ledger could not be updated" in result.error
    assert "run the cleanup again" in result.error
    assert _pr7_keys(endpoint) == {}
    assert s3_snapshot(endpoint) == outside(before, "pr_7")
    assert live_ledger(postgres_url, "pr_7") == {"lake:acme-data/_branches/pr_7/"}

    [again] = store.objects_of(pr_7)  # the rerun: found from the ledger only
    assert again.found_in == {"ledger"}
    [rerun] = store.remove_objects([again], dry_run=False, log=logging.getLogger("cleanup"))

    assert rerun.removed and rerun.error is None and rerun.objects == 0
    assert live_ledger(postgres_url, "pr_7") == set()
    assert live_ledger(postgres_url, "pr_8") == {"lake:acme-data/_branches/pr_8/"}
    assert s3_snapshot(endpoint) == outside(before, "pr_7")


def test_a_ledger_lost_twice_fails_the_cleanup_run_and_a_rerun_completes(
    bulk_s3: BulkS3,
    postgres_url: str,
    postgres_proxy: tuple[TcpFaultProxy, str],
    ledger_world: str,
) -> None:
    proxy, _ = postgres_proxy
    endpoint = bulk_s3.endpoint_url
    before = s3_snapshot(endpoint)
    proxy.drop_before(b"UPDATE", occurrence=1)
    proxy.drop_before(b"UPDATE", occurrence=2)  # the job's retry within the run, lost too

    first = run_cleanup({"lake": lake(endpoint, ledger_world)}, "pr_7")

    assert proxy.fired == 2
    assert not first.success
    message = failure_text(first)
    assert "_branches/pr_7/" in message and "ledger could not be updated" in message
    assert _pr7_keys(endpoint) == {}
    assert live_ledger(postgres_url, "pr_7") == {"lake:acme-data/_branches/pr_7/"}

    second = run_cleanup({"lake": lake(endpoint, ledger_world)}, "pr_7")

    assert second.success, failure_text(second)
    assert live_ledger(postgres_url, "pr_7") == set()
    assert s3_snapshot(endpoint) == outside(before, "pr_7")
