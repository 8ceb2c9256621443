"""The S3 purge on the S3 server over HTTP: everything of one namespace goes, nothing else does,
with about two requests per 1,000 objects; and the BranchStore removal built on it."""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from dagster_branch.errors import CleanupRefusedError
from dagster_branch.inventory import ObjectKind, OwnedObject
from dagster_branch.ledger import Ledger
from dagster_branch.naming import Namespace
from dagster_branch.resources.s3 import BranchS3Resource
from dagster_branch.stores.s3_batches import Entry, RetryPolicy, S3Calls, delete_batch
from dagster_branch.stores.s3_purge import purge_bucket, purge_prefix
from tests.support.deployments import Deploy
from tests.support.requests_seen import count_requests

BUCKET = "acme-data"
PR_4 = "_branches/pr_4/"
PR_42 = "_branches/pr_42/"


def put_many(client: Any, bucket: str, keys: list[str], body: bytes = b"0123456789") -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body), keys))


def versions(client: Any, bucket: str, prefix: str = "") -> set[tuple[str, str, str, bool]]:
    """Every version and delete marker: (key, version id, etag or 'marker', is latest)."""
    found: set[tuple[str, str, str, bool]] = set()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            found.add((v["Key"], v["VersionId"], v["ETag"], v["IsLatest"]))
        for m in page.get("DeleteMarkers", []):
            found.add((m["Key"], m["VersionId"], "marker", m["IsLatest"]))
    return found


def uploads(client: Any, bucket: str, prefix: str = "") -> set[str]:
    answer = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return {u["Key"] for u in answer.get("Uploads", [])}


def neighbours(client: Any, bucket: str) -> None:
    """Production keys, the neighbouring namespace pr_42, and a key that merely starts with
    the same characters as pr_4's folder."""
    put_many(client, bucket, [f"lake/orders/{i}.csv" for i in range(5)], b"production")
    put_many(client, bucket, [f"{PR_42}lake/{i}.csv" for i in range(5)], b"pr_42")
    client.put_object(Bucket=bucket, Key="_branches/pr_4.txt", Body=b"not a namespace")
    client.create_multipart_upload(Bucket=bucket, Key=f"{PR_42}lake/big.parquet")


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[logging.Logger]:
    caplog.set_level(logging.INFO, logger="test.purge")
    yield logging.getLogger("test.purge")


def test_unversioned_prefix_is_purged_with_two_requests_per_1000_objects(
    s3_client: Any, log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    neighbours(s3_client, BUCKET)
    n = 3000
    put_many(s3_client, BUCKET, [f"{PR_4}lake/part-{i:05d}.parquet" for i in range(n)])
    s3_client.create_multipart_upload(Bucket=BUCKET, Key=f"{PR_4}lake/huge.parquet")
    others = versions(s3_client, BUCKET) - versions(s3_client, BUCKET, PR_4)
    other_uploads = uploads(s3_client, BUCKET, PR_42)

    dry = purge_prefix(s3_client, BUCKET, PR_4, dry_run=True, log=log)
    assert (dry.objects, dry.bytes, dry.multipart_uploads) == (n, n * 10, 1)
    assert len(versions(s3_client, BUCKET, PR_4)) == n and uploads(s3_client, BUCKET, PR_4)

    seen = count_requests(s3_client)
    report = purge_prefix(s3_client, BUCKET, PR_4, log=log, progress_every=0)
    seen = Counter(seen)  # what the purge sent; the checks below send more
    assert report.ok and not report.versioned
    assert (report.objects, report.bytes, report.multipart_uploads) == (n, n * 10, 1)
    assert versions(s3_client, BUCKET, PR_4) == set() and uploads(s3_client, BUCKET, PR_4) == set()
    assert versions(s3_client, BUCKET) == others  # production, pr_42, pr_4.txt: untouched
    assert uploads(s3_client, BUCKET, PR_42) == other_uploads

    # Requests counted at the client: the report is exact, and costs stay at the API minimum.
    assert report.total_requests == seen.total()
    pages = math.ceil(n / 1000)
    assert seen["ListObjectsV2"] == pages and seen["DeleteObjects"] == pages
    per_1000 = 1000 * (seen["ListObjectsV2"] + seen["DeleteObjects"]) / n
    assert per_1000 <= 2.1
    fixed = seen["GetBucketVersioning"] + seen["ListMultipartUploads"]
    assert fixed == 2  # so 20,000 objects cost (2 x 20 + 2) / 20 = 2.1 requests per 1,000
    assert seen["AbortMultipartUpload"] == 1
    progress = [r.message for r in caplog.records if "so far" in r.message]
    assert len(progress) >= pages and "deleted" in progress[-1]

    again = purge_prefix(s3_client, BUCKET, PR_4)
    assert again.ok and (again.objects, again.multipart_uploads) == (0, 0)
    assert again.total_requests == 3  # versioning, uploads, one empty page
    assert versions(s3_client, BUCKET) == others


def test_purge_listings_skip_timestamps_but_the_callers_listings_keep_them(
    s3_client: Any,
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    put_many(s3_client, BUCKET, [f"{PR_4}part-{i:05d}" for i in range(1500)])
    put_many(s3_client, BUCKET, [f"lake/orders-{i}.csv" for i in range(5)])
    purge_pages: list[dict[str, Any]] = []

    def record(parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("Prefix") == PR_4:
            purge_pages.append(parsed)

    s3_client.meta.events.register("after-call.s3.ListObjectsV2", record)
    purging = threading.Event()
    caller_pages: list[dict[str, Any]] = []

    def caller_lists_meanwhile() -> None:  # another thread of the caller, same client
        while not purging.is_set():
            caller_pages.append(s3_client.list_objects_v2(Bucket=BUCKET, Prefix="lake/"))

    with ThreadPoolExecutor(1) as pool:
        meanwhile = pool.submit(caller_lists_meanwhile)
        try:
            report = purge_prefix(s3_client, BUCKET, PR_4)
        finally:
            purging.set()
        meanwhile.result()

    assert report.ok and (report.objects, report.bytes) == (1500, 15_000)  # sizes still read
    assert len(purge_pages) == 2
    assert all("LastModified" not in o for page in purge_pages for o in page["Contents"])
    assert caller_pages and all(
        isinstance(o["LastModified"], datetime) for page in caller_pages for o in page["Contents"]
    )
    after = s3_client.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert [o["Key"] for o in after] == [f"lake/orders-{i}.csv" for i in range(5)]
    assert all(isinstance(o["LastModified"], datetime) for o in after)


def test_next_page_is_requested_while_the_purge_parses_this_one(s3_client: Any) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    put_many(s3_client, BUCKET, [f"{PR_4}part-{i:05d}" for i in range(2500)])
    requested = threading.Condition()
    tokens_sent: list[str | None] = []  # the ContinuationToken of each ListObjectsV2 request

    def before_call(params: dict[str, Any], **_: Any) -> None:
        with requested:
            tokens_sent.append(params["query_string"].get("continuation-token"))
            requested.notify_all()

    next_page_already_requested: list[bool] = []

    def after_parse(parsed: dict[str, Any], **_: Any) -> None:
        # A page is parsed: its next page must be on its way already (wait a little for the
        # other thread to get there, rather than race it).
        if parsed.get("IsTruncated"):
            token = parsed["NextContinuationToken"]
            with requested:
                found = requested.wait_for(lambda: token in tokens_sent, timeout=5)
            next_page_already_requested.append(found)

    s3_client.meta.events.register("before-call.s3.ListObjectsV2", before_call)
    s3_client.meta.events.register("after-call.s3.ListObjectsV2", after_parse)
    report = purge_prefix(s3_client, BUCKET, PR_4)

    assert report.ok and report.objects == 2500
    assert next_page_already_requested == [True, True]
    assert len(tokens_sent) == 3 and report.requests["list_objects_v2"] == 3  # none extra


def test_versioned_prefix_loses_every_version_and_delete_marker(
    s3_client: Any, log: logging.Logger
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    s3_client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    neighbours(s3_client, BUCKET)
    s3_client.put_object(Bucket=BUCKET, Key="lake/orders/0.csv", Body=b"production v2")
    s3_client.delete_object(Bucket=BUCKET, Key="lake/orders/1.csv")  # a production marker
    keys = [f"{PR_4}lake/{i:05d}.csv" for i in range(2050)]
    put_many(s3_client, BUCKET, keys)
    put_many(s3_client, BUCKET, keys[:100], b"second version")
    s3_client.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[-300:]], "Quiet": True}
    )
    s3_client.create_multipart_upload(Bucket=BUCKET, Key=f"{PR_4}lake/huge.parquet")
    others = versions(s3_client, BUCKET) - versions(s3_client, BUCKET, PR_4)
    expected = (2050 + 100 + 300, 300, 2050 * 10 + 100 * 14)  # entries, markers, bytes

    dry = purge_prefix(s3_client, BUCKET, PR_4, dry_run=True, versions_per_round=1000)
    assert (dry.objects, dry.delete_markers, dry.bytes) == expected
    assert dry.versioned and len(versions(s3_client, BUCKET, PR_4)) == expected[0]

    # rounds of at most 1,000 versions: memory stays bounded, and rounds restart cleanly
    report = purge_prefix(s3_client, BUCKET, PR_4, versions_per_round=1000, log=log)
    assert report.ok and report.versioned
    assert (report.objects, report.delete_markers, report.bytes) == expected
    assert report.multipart_uploads == 1
    assert versions(s3_client, BUCKET, PR_4) == set() and uploads(s3_client, BUCKET, PR_4) == set()
    assert versions(s3_client, BUCKET) == others

    again = purge_prefix(s3_client, BUCKET, PR_4)
    assert again.ok and again.objects == 0


def test_bucket_mode_deletes_the_bucket_and_nothing_else(s3_client: Any) -> None:
    mine, neighbour = "acme-data--pr-4", "acme-data--pr-42"
    for bucket in (BUCKET, mine, neighbour):
        s3_client.create_bucket(Bucket=bucket)
    s3_client.put_bucket_versioning(Bucket=mine, VersioningConfiguration={"Status": "Enabled"})
    put_many(s3_client, mine, [f"lake/{i}.csv" for i in range(30)])
    s3_client.delete_object(Bucket=mine, Key="lake/0.csv")
    s3_client.create_multipart_upload(Bucket=mine, Key="lake/huge.parquet")
    put_many(s3_client, neighbour, ["lake/0.csv"])
    put_many(s3_client, BUCKET, ["lake/0.csv"])
    before = {b: versions(s3_client, b) for b in (BUCKET, neighbour)}

    dry = purge_bucket(s3_client, mine, dry_run=True)
    assert (dry.objects, dry.delete_markers, dry.bucket_deleted) == (31, 1, False)
    report = purge_bucket(s3_client, mine)
    assert report.ok and report.bucket_deleted and report.objects == 31
    names = {b["Name"] for b in s3_client.list_buckets()["Buckets"]}
    assert names == {BUCKET, neighbour}
    assert {b: versions(s3_client, b) for b in (BUCKET, neighbour)} == before

    again = purge_bucket(s3_client, mine)
    assert again.ok and again.bucket_missing and again.objects == 0


def test_a_prefix_that_is_not_a_folder_is_refused(s3_client: Any) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    s3_client.put_object(Bucket=BUCKET, Key="_branches/pr_42/x", Body=b"x")
    for prefix in ("", "_branches/pr_4"):
        with pytest.raises(CleanupRefusedError, match="ending with '/'"):
            purge_prefix(s3_client, BUCKET, prefix)
    assert versions(s3_client, BUCKET) != set()


# -- throttling, against an HTTP server answering like S3 -----------------------------------------

DELETE_RESULT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{}</DeleteResult>'
)
SLOW_DOWN = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    "<Message>Please reduce your request rate.</Message></Error>"
)


def _error(key: str, code: str) -> str:
    return f"<Error><Key>{key}</Key><Code>{code}</Code><Message>{code}</Message></Error>"


def test_throttled_batches_retry_exactly_the_keys_reported(httpserver: HTTPServer) -> None:
    """First answer: the whole request throttled (503 SlowDown). Second: three keys throttled
    and one denied. Third: success. Only the three throttled keys are sent again."""
    bodies: list[bytes] = []
    answers = [
        Response(SLOW_DOWN, status=503, content_type="application/xml"),
        Response(
            DELETE_RESULT.format(
                _error("k1", "SlowDown")
                + _error("k2", "SlowDown")
                + _error("k3", "InternalError")
                + _error("k4", "AccessDenied")
            ),
            content_type="application/xml",
        ),
        Response(DELETE_RESULT.format(""), content_type="application/xml"),
    ]

    def handler(request: Request) -> Response:
        bodies.append(request.get_data())
        return answers[len(bodies) - 1]

    httpserver.expect_request("/acme-data", method="POST").respond_with_handler(handler)
    client = boto3.client(
        "s3",
        endpoint_url=httpserver.url_for("/"),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        # botocore retries the throttled request; the library re-sends the throttled keys.
        config=Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 4, "mode": "standard"},
        ),
    )
    calls = S3Calls(client, RetryPolicy(max_attempts=4, base_delay=0.001))
    entries = [Entry(f"k{i}", None, 10) for i in range(1, 11)]

    outcome = delete_batch(calls, "acme-data", entries)

    assert sorted(e.key for e in outcome.deleted) == sorted(
        f"k{i}" for i in (1, 2, 3, 5, 6, 7, 8, 9, 10)
    )
    assert [e.key for e in outcome.failed] == ["k4"]
    assert "AccessDenied" in outcome.failed[Entry("k4", None, 10)]
    assert len(bodies) == 3 and bodies[0] == bodies[1]
    assert bodies[2].count(b"<Key>") == 3
    assert all(f"<Key>{k}</Key>".encode() in bodies[2] for k in ("k1", "k2", "k3"))
    assert calls.requests["delete_objects"] == 3 and calls.retries == 2


def test_throttling_that_never_ends_fails_the_keys_without_hanging(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/acme-data", method="POST").respond_with_response(
        Response(SLOW_DOWN, status=503, content_type="application/xml")
    )
    client = boto3.client(
        "s3",
        endpoint_url=httpserver.url_for("/"),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 3, "mode": "standard"},
        ),
    )
    calls = S3Calls(client, RetryPolicy(max_attempts=3, base_delay=0.001))
    outcome = delete_batch(calls, "acme-data", [Entry("k1", None, 1)])
    assert outcome.deleted == [] and "SlowDown" in outcome.failed[Entry("k1", None, 1)]
    assert calls.requests["delete_objects"] == 3


def test_retry_delays_grow_with_jitter_and_stay_capped() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=3.0)
    for attempt, ceiling in ((0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (10, 3.0)):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jittered across the range, not fixed
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


# -- the BranchStore removal --------------------------------------------------------------------


def _resource(endpoint: str, **extra: Any) -> BranchS3Resource:
    return BranchS3Resource(
        bucket=BUCKET,
        prefix="lake",
        endpoint_url=endpoint,
        max_attempts=2,
        retry_base_delay_seconds=0.01,
        **extra,
    )


def test_store_removal_purges_marks_the_ledger_and_refuses_what_is_not_owned(
    s3_endpoint: str, s3_client: Any, sqlite_url: str, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    put_many(s3_client, BUCKET, ["lake/orders.csv"], b"production")
    for pr in (7, 8):
        deploy("branch", pr=pr)
        lake = _resource(s3_endpoint, ledger_url=sqlite_url)
        put_many(lake.get_client(), BUCKET, [lake.key(f"part-{i}.csv") for i in range(40)])
    deploy("production")
    lake = _resource(s3_endpoint, ledger_url=sqlite_url)
    pr_7 = Namespace.parse("pr_7")
    before_others = versions(s3_client, BUCKET) - versions(s3_client, BUCKET, "_branches/pr_7/")
    assert lake.list_namespaces() == {pr_7, Namespace.parse("pr_8")}
    [obj] = lake.objects_of(pr_7)
    assert (obj.kind, obj.name, obj.container, obj.found_in) == (
        ObjectKind.PREFIX,
        "_branches/pr_7/",
        BUCKET,
        {"ledger", "s3"},
    )
    production = OwnedObject(pr_7, "s3", ObjectKind.PREFIX, "lake/", BUCKET)
    whole_bucket = OwnedObject(pr_7, "s3", ObjectKind.BUCKET, BUCKET)
    log = logging.getLogger("test.purge")

    dry = lake.remove_objects([obj, production, whole_bucket], dry_run=True, log=log)
    assert [(r.removed, r.objects, r.bytes) for r in dry[:1]] == [(False, 40, 400)]
    assert all(r.error and r.error.startswith("refused") for r in dry[1:])
    assert lake.objects_of(pr_7) == [obj]  # nothing removed, ledger row still live

    results = lake.remove_objects([obj, production, whole_bucket], dry_run=False, log=log)
    assert [(r.removed, r.objects, r.bytes, r.error) for r in results[:1]] == [
        (True, 40, 400, None)
    ]
    assert not results[1].removed and not results[2].removed
    assert versions(s3_client, BUCKET, "_branches/pr_7/") == set()
    assert versions(s3_client, BUCKET) == before_others
    assert lake.objects_of(pr_7) == [] and lake.list_namespaces() == {Namespace.parse("pr_8")}
    ledger = Ledger.from_url(sqlite_url)
    try:
        assert [e.namespace.key for e in ledger.live_entries(store="lake")] == ["pr_8"]
    finally:
        ledger.close()

    [again] = lake.remove_objects([obj], dry_run=False, log=log)  # a second run: nothing left
    assert again.removed and again.objects == 0 and again.error is None


def test_expire_strategy_sets_a_merged_lifecycle_rule_then_finishes_once_empty(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    team_rule = {
        "ID": "team-logs",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 30},
    }
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=BUCKET, LifecycleConfiguration={"Rules": [team_rule]}
    )
    deploy("branch", pr=5)
    branch = _resource(s3_endpoint)
    put_many(branch.get_client(), BUCKET, [branch.key(f"{i}.csv") for i in range(20)])
    deploy("production")
    lake = _resource(s3_endpoint, cleanup_strategy="expire")
    [obj] = lake.objects_of(Namespace.parse("pr_5"))
    log = logging.getLogger("test.purge")

    [dry] = lake.remove_objects([obj], dry_run=True, log=log)
    assert dry.pending and not dry.removed
    assert [r["ID"] for r in _rules(s3_client)] == ["team-logs"]

    [result] = lake.remove_objects([obj], dry_run=False, log=log)
    assert result.pending and not result.removed and result.error is None
    rules = {r["ID"]: r for r in _rules(s3_client)}
    assert rules.keys() - {"team-logs"} and rules["team-logs"]["Expiration"] == {"Days": 30}
    ours = [r for r in rules.values() if r["ID"] != "team-logs"]
    assert {r["Filter"]["Prefix"] for r in ours} == {"_branches/pr_5/"}
    objects_rule = next(r for r in ours if "Days" in r["Expiration"])
    assert objects_rule["Expiration"] == {"Days": 1}
    assert objects_rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1
    assert objects_rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert (
        len(versions(s3_client, BUCKET, "_branches/pr_5/")) == 21
    )  # 20 + marker, for S3 to expire

    purge_prefix(s3_client, BUCKET, "_branches/pr_5/")  # what S3's lifecycle does in a day
    [done] = lake.remove_objects([obj], dry_run=False, log=log)
    assert done.removed and not done.pending
    assert [r["ID"] for r in _rules(s3_client)] == ["team-logs"]  # our rules taken off again


def _rules(client: Any) -> list[dict[str, Any]]:
    return list(client.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"])
