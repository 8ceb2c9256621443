"""BranchS3Resource on the S3 server over HTTP: routing per deployment, the write guard, bucket
mode, and ownership records (ledger or marker)."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import pytest
from dagster import asset, materialize

from dagster_branch.detection import ReportsActivity
from dagster_branch.errors import DagsterBranchConfigError, NamespaceViolationError
from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import Ledger
from dagster_branch.naming import Namespace
from dagster_branch.resources.s3 import BranchS3Resource
from tests.support.deployments import Deploy
from tests.support.requests_seen import count_requests

PRODUCTION_BUCKET = "acme-data"
BRANCH_BUCKET = "acme-branches"


def listing(client: Any, bucket: str) -> dict[str, bytes]:
    """Every key of ``bucket`` with its bytes, read with a plain client."""
    keys: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            keys[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return keys


def all_buckets(client: Any) -> dict[str, dict[str, bytes]]:
    return {b["Name"]: listing(client, b["Name"]) for b in client.list_buckets()["Buckets"]}


@asset
def export(lake: BranchS3Resource) -> None:
    """Asset code with no routing at all: a path, and the resource decides where it goes."""
    who = lake.namespace.key if lake.namespace else "production"
    lake.get_client().put_object(
        Bucket=lake.bucket_name, Key=lake.key("exports/orders.csv"), Body=f"built by {who}".encode()
    )


LAYOUTS = {
    "shared bucket": {"prefix": "lake"},
    "branch bucket": {"prefix": "lake", "branch_bucket": BRANCH_BUCKET},
    "bucket per namespace": {"prefix": "lake", "strategy": "bucket"},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_same_asset_writes_four_disjoint_places(
    layout: str, s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=PRODUCTION_BUCKET)
    s3_client.create_bucket(Bucket=BRANCH_BUCKET)
    lake = BranchS3Resource(bucket=PRODUCTION_BUCKET, endpoint_url=s3_endpoint, **LAYOUTS[layout])
    places: dict[str, tuple[str, str]] = {}
    for name, kind, pr in (
        ("production", "production", None),
        ("pr_1", "branch", 1),
        ("pr_2", "branch", 2),
        (Namespace.for_developer("alice").key, "local", None),
    ):
        context = deploy(kind, pr=pr)
        assert materialize([export], resources={"lake": lake}).success
        resource = BranchS3Resource(
            bucket=PRODUCTION_BUCKET, endpoint_url=s3_endpoint, **LAYOUTS[layout]
        )
        places[name] = (resource.bucket_name, resource.key("exports/orders.csv"))
        assert resource.namespace == context.namespace
        if name == "production":
            production_before = listing(s3_client, PRODUCTION_BUCKET)

    assert len(set(places.values())) == 4
    stored = all_buckets(s3_client)
    for name, (bucket, key) in places.items():
        assert stored[bucket][key] == f"built by {name}".encode()
    # production's keys are byte-for-byte what production wrote: nothing added or changed there
    if layout == "shared bucket":
        production_now = {
            k: v for k, v in stored[PRODUCTION_BUCKET].items() if not k.startswith("_branches/")
        }
    else:
        production_now = stored[PRODUCTION_BUCKET]
    assert (
        production_now == production_before == {"lake/exports/orders.csv": b"built by production"}
    )


def test_bucket_mode_creates_a_tagged_bucket_once(
    s3_endpoint: str, s3_client: Any, deploy: Deploy, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy("branch", pr=42)
    monkeypatch.setenv("DAGSTER_CLOUD_GIT_REPO", "acme/data-platform")
    config = {
        "bucket": PRODUCTION_BUCKET,
        "strategy": "bucket",
        "endpoint_url": s3_endpoint,
        "bucket_tags": {"team": "data", "cost-center": "42"},
        "expire_after_days": 14,
    }
    seen: Counter[str] = Counter()
    for _ in range(2):  # two runs, each with its own resource instance
        lake = BranchS3Resource(**config)  # type: ignore[arg-type]
        seen_here = count_requests(lake.get_cleanup_client())
        lake.ensure_namespace()
        lake.ensure_namespace()
        lake.get_client().put_object(Bucket=lake.bucket_name, Key=lake.key("a.csv"), Body=b"1")
        seen += seen_here

    assert lake.bucket_name == "acme-data--pr-42"
    assert seen["CreateBucket"] == 1
    assert seen["PutBucketTagging"] == 1
    assert seen["GetBucketTagging"] == 2  # the steady state costs one request per run
    tags = {
        t["Key"]: t["Value"]
        for t in s3_client.get_bucket_tagging(Bucket=lake.bucket_name)["TagSet"]
    }
    assert tags == {
        "dagster-branch/namespace": "pr_42",
        "dagster-branch/owner": "default",
        "dagster-branch/pull-request": "42",
        "dagster-branch/repository": "acme/data-platform",
        "team": "data",
        "cost-center": "42",
    }
    [rule, markers] = s3_client.get_bucket_lifecycle_configuration(Bucket=lake.bucket_name)["Rules"]
    assert rule["Expiration"] == {"Days": 14}
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 14
    assert markers["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert listing(s3_client, lake.bucket_name).keys() == {"a.csv", ".dagster-branch.json"}


def test_a_legacy_production_bucket_name_still_gives_a_valid_branch_bucket(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    deploy("branch", pr=3)
    lake = BranchS3Resource(bucket="Legacy_Data", strategy="bucket", endpoint_url=s3_endpoint)
    lake.ensure_namespace()  # the name is valid for S3: the server accepts it
    assert lake.bucket_name.endswith("--pr-3") and lake.bucket_name.islower()
    assert lake.bucket_name in {b["Name"] for b in s3_client.list_buckets()["Buckets"]}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_branch_writes_outside_the_namespace_are_refused(
    layout: str, s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=PRODUCTION_BUCKET)
    s3_client.create_bucket(Bucket=BRANCH_BUCKET)
    s3_client.put_object(Bucket=PRODUCTION_BUCKET, Key="lake/orders.csv", Body=b"production")
    before = all_buckets(s3_client)
    deploy("branch", pr=4)
    lake = BranchS3Resource(bucket=PRODUCTION_BUCKET, endpoint_url=s3_endpoint, **LAYOUTS[layout])
    client = lake.get_client()
    pr_42 = Namespace.parse("pr_42")
    neighbour = (lake.layout().bucket_for(pr_42), lake.layout().key_for(pr_42, "orders.csv"))
    shared = lake.bucket_name == PRODUCTION_BUCKET
    # one DeleteObjects request mixing an own key with a production key is refused as a whole
    mixed = [{"Key": lake.key("mine.csv")}] if shared else []
    attempts: list[Callable[[], object]] = [
        lambda: client.put_object(Bucket=PRODUCTION_BUCKET, Key="lake/orders.csv", Body=b"x"),
        lambda: client.delete_object(Bucket=PRODUCTION_BUCKET, Key="lake/orders.csv"),
        lambda: client.delete_objects(
            Bucket=PRODUCTION_BUCKET, Delete={"Objects": [*mixed, {"Key": "lake/orders.csv"}]}
        ),
        lambda: client.copy_object(
            Bucket=PRODUCTION_BUCKET,
            Key="lake/copy.csv",
            CopySource={"Bucket": PRODUCTION_BUCKET, "Key": "lake/orders.csv"},
        ),
        lambda: client.upload_fileobj(_bytes(b"x"), PRODUCTION_BUCKET, "lake/upload.csv"),
        lambda: client.put_object(Bucket=neighbour[0], Key=neighbour[1], Body=b"x"),
        lambda: client.put_bucket_tagging(
            Bucket=PRODUCTION_BUCKET, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
        ),
    ]
    for attempt in attempts:
        with pytest.raises(NamespaceViolationError, match=r"Refused .* for namespace pr_4"):
            attempt()
    assert all_buckets(s3_client) == before  # nothing written, not even the namespace marker

    # reads of production are fine, and writes inside the namespace go through
    assert client.get_object(Bucket=PRODUCTION_BUCKET, Key="lake/orders.csv")["Body"].read()
    client.put_object(Bucket=lake.bucket_name, Key=lake.key("mine.csv"), Body=b"mine")
    assert listing(s3_client, lake.bucket_name)[lake.key("mine.csv")] == b"mine"


def test_production_writes_only_to_its_bucket_and_prefix(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=PRODUCTION_BUCKET)
    deploy("production")
    lake = BranchS3Resource(bucket=PRODUCTION_BUCKET, prefix="lake", endpoint_url=s3_endpoint)
    client = lake.get_client()
    client.put_object(Bucket=PRODUCTION_BUCKET, Key=lake.key("orders.csv"), Body=b"p")
    for key in ("_branches/pr_4/lake/orders.csv", "elsewhere/orders.csv"):
        with pytest.raises(NamespaceViolationError, match="production deployment"):
            client.put_object(Bucket=PRODUCTION_BUCKET, Key=key, Body=b"x")
    assert listing(s3_client, PRODUCTION_BUCKET) == {"lake/orders.csv": b"p"}


def test_ownership_goes_to_the_ledger_when_configured(
    s3_endpoint: str, s3_client: Any, sqlite_url: str, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BRANCH_BUCKET)
    deploy("branch", pr=7)
    lake = BranchS3Resource(
        bucket=PRODUCTION_BUCKET,
        branch_bucket=BRANCH_BUCKET,
        endpoint_url=s3_endpoint,
        ledger_url=sqlite_url,
    )
    for _ in range(2):
        lake.get_client().put_object(Bucket=lake.bucket_name, Key=lake.key("a.csv"), Body=b"1")
        lake.ensure_namespace()

    ledger = Ledger.from_url(sqlite_url)
    try:
        [entry] = ledger.live_entries()
    finally:
        ledger.close()
    assert (entry.namespace.key, entry.store, entry.backend, entry.kind) == (
        "pr_7",
        "lake",
        "s3",
        ObjectKind.PREFIX,
    )
    assert (entry.container, entry.name) == (BRANCH_BUCKET, "_branches/pr_7/")
    assert (entry.pull_request_id, entry.branch, entry.git_sha) == (
        "7",
        "feature/pr-7",
        "a1b2c3d4e5f6",
    )
    assert listing(s3_client, BRANCH_BUCKET).keys() == {"_branches/pr_7/a.csv"}  # no marker
    [obj] = lake.objects_of(Namespace.parse("pr_7"))
    assert obj.found_in == {"ledger", "s3"}


def test_without_a_ledger_a_marker_object_records_ownership(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=PRODUCTION_BUCKET)
    deploy("branch", pr=9)
    lake = BranchS3Resource(bucket=PRODUCTION_BUCKET, prefix="lake", endpoint_url=s3_endpoint)
    lake.ensure_namespace()
    lake.ensure_namespace()
    marker = json.loads(
        s3_client.get_object(Bucket=PRODUCTION_BUCKET, Key="_branches/pr_9/.dagster-branch.json")[
            "Body"
        ].read()
    )
    assert marker["namespace"] == "pr_9" and marker["pull_request_id"] == "9"
    assert marker["branch"] == "feature/pr-9"


def test_one_client_per_resource_instance_even_under_concurrent_first_use(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BRANCH_BUCKET)
    deploy("branch", pr=5)
    lake = BranchS3Resource(
        bucket=PRODUCTION_BUCKET,
        prefix="lake",
        branch_bucket=BRANCH_BUCKET,
        endpoint_url=s3_endpoint,
    )
    start = threading.Barrier(16)

    def first_use(n: int) -> tuple[int, int]:
        start.wait()
        guarded, unguarded = lake.get_client(), lake.get_cleanup_client()
        guarded.put_object(Bucket=lake.bucket_name, Key=lake.key(f"part-{n}.csv"), Body=b"1")
        return id(guarded), id(unguarded)

    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(first_use, range(16)))

    assert len(ids) == 1  # every thread got the same two clients
    [(guarded, unguarded)] = ids
    assert guarded != unguarded  # the write guard stays off the cleanup's client
    assert len(listing(s3_client, BRANCH_BUCKET)) == 17  # 16 parts and one marker
    lake.close()
    lake.get_client().put_object(Bucket=lake.bucket_name, Key=lake.key("after.csv"), Body=b"2")
    assert "_branches/pr_5/lake/after.csv" in listing(s3_client, BRANCH_BUCKET)


def test_dagster_aws_connection_options_reach_the_client(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    deploy("branch", pr=6)
    lake = BranchS3Resource(
        bucket=PRODUCTION_BUCKET,
        strategy="bucket",
        endpoint_url=s3_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="branch-key",
        aws_secret_access_key="branch-secret",
        max_attempts=2,
    )
    lake.get_client().put_object(Bucket=lake.bucket_name, Key=lake.key("a.csv"), Body=b"1")

    location = s3_client.get_bucket_location(Bucket="acme-data--pr-6")["LocationConstraint"]
    assert location == "eu-west-1"  # the bucket was created in the configured region
    for client in (lake.get_client(), lake.get_cleanup_client()):
        assert client.meta.region_name == "eu-west-1"
        assert client.meta.endpoint_url == s3_endpoint
        # As with dagster-aws's S3Resource: max_attempts retries after the first attempt.
        assert client.meta.config.retries["total_max_attempts"] == 3


def test_last_activity_is_the_latest_run_that_wrote_without_listing_keys(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BRANCH_BUCKET)
    config = {
        "bucket": PRODUCTION_BUCKET,
        "prefix": "lake",
        "branch_bucket": BRANCH_BUCKET,
        "endpoint_url": s3_endpoint,
    }
    deploy("local", user="bob")  # a namespace without a pull request: what stale_after is for
    written = []
    for run in range(2):  # two runs of the deployment, a second apart (S3 keeps seconds)
        if run:
            time.sleep(1.1)
        lake = BranchS3Resource(**config)  # type: ignore[arg-type]
        lake.get_client().put_object(Bucket=lake.bucket_name, Key=lake.key("a.csv"), Body=b"1")
        written.append(datetime.now(timezone.utc))
        lake.close()
    bob = Namespace.for_developer("bob")
    deploy("production")
    lake = BranchS3Resource(**config)  # type: ignore[arg-type]
    seen = count_requests(lake.get_cleanup_client())

    activity = lake.last_activity_of(bob)

    assert isinstance(lake, ReportsActivity)  # what the sensor's stale_after looks for
    assert activity is not None and activity.tzinfo is not None
    # The second run's marker (the first run's is at or before written[0]).
    assert written[0] < activity <= written[1]
    assert dict(seen) == {"HeadObject": 1}  # one request, no listing
    assert lake.last_activity_of(Namespace.for_developer("alice")) is None


def test_last_activity_comes_from_the_ledger_when_configured(
    s3_endpoint: str, s3_client: Any, sqlite_url: str, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BRANCH_BUCKET)
    config = {
        "bucket": PRODUCTION_BUCKET,
        "prefix": "lake",
        "branch_bucket": BRANCH_BUCKET,
        "endpoint_url": s3_endpoint,
        "ledger_url": sqlite_url,
    }
    deploy("branch", pr=12)
    BranchS3Resource(**config).ensure_namespace()  # type: ignore[arg-type]
    pr_12 = Namespace.parse("pr_12")
    ledger = Ledger.from_url(sqlite_url)
    try:
        [row] = ledger.live_entries(pr_12, store="lake")
    finally:
        ledger.close()
    deploy("production")
    lake = BranchS3Resource(**config)  # type: ignore[arg-type]
    seen = count_requests(lake.get_cleanup_client())

    assert lake.last_activity_of(pr_12) == row.created_at
    assert sum(seen.values()) == 0  # the ledger answered: no S3 request at all
    assert lake.last_activity_of(Namespace.parse("pr_13")) is None


def test_unsafe_resource_configuration_is_refused_at_setup(s3_endpoint: str) -> None:
    for config, says in (
        ({"bucket": PRODUCTION_BUCKET}, "Set prefix"),
        ({"bucket": PRODUCTION_BUCKET, "prefix": "_branches/lake"}, "overlap"),
        (
            {"bucket": PRODUCTION_BUCKET, "prefix": "lake", "expire_after_days": 3},
            "strategy='bucket'",
        ),
    ):
        lake = BranchS3Resource(endpoint_url=s3_endpoint, **config)  # type: ignore[arg-type]
        with pytest.raises(DagsterBranchConfigError, match=says):
            lake.key("a.csv")
        result = materialize([export], resources={"lake": lake}, raise_on_error=False)
        assert not result.success


def test_secrets_stay_out_of_repr(s3_endpoint: str) -> None:
    lake = BranchS3Resource(
        bucket=PRODUCTION_BUCKET,
        prefix="lake",
        endpoint_url=s3_endpoint,
        aws_secret_access_key="s3cr3t-key",
        aws_session_token="s3cr3t-token",
        ledger_url="postgresql://u:s3cr3t-pw@db/warehouse",
    )
    shown = repr(lake) + str(lake)
    assert "s3cr3t" not in shown
    assert "acme-data" in shown


def _bytes(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
