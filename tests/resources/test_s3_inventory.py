"""What the cleanup sees of a BranchS3Resource: namespaces found from the ledger, from namespace
bucket names and from folders under branch_root (paginated), and the second ownership key."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dagster_branch.inventory import BranchStore, ObjectKind, OwnedObject
from dagster_branch.ledger import Ledger, LedgerEntry
from dagster_branch.naming import Namespace
from dagster_branch.resources.s3 import BranchS3Resource
from tests.support.deployments import Deploy
from tests.support.requests_seen import count_requests

PRODUCTION_BUCKET = "acme-data"
BRANCH_BUCKET = "acme-branches"


def test_more_than_1000_namespace_folders_are_found_page_by_page(
    s3_endpoint: str, s3_client: Any, sqlite_url: str, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BRANCH_BUCKET)
    keys = [f"_branches/pr_{n}/lake/part-0.parquet" for n in range(1, 1006)]
    keys += [f"_branches/pr_1/lake/part-{i}.parquet" for i in range(1, 200)]  # one big folder
    keys += [
        "_branches/pr_0/x",  # not a PR number
        "_branches/PR_5/x",  # not a namespace key
        "_branches/pr_2001",  # a file, not a folder
        "_branches/notes.txt",
        "elsewhere/pr_7/x",
    ]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_client.put_object(Bucket=BRANCH_BUCKET, Key=k, Body=b"1"), keys))
    ledger = Ledger.from_url(sqlite_url)
    try:  # a namespace whose objects are gone but whose ledger row is still live
        ledger.record(
            LedgerEntry(
                namespace=Namespace.parse("pr_2000"),
                store="lake",
                backend="s3",
                kind=ObjectKind.PREFIX,
                name="_branches/pr_2000/",
                container=BRANCH_BUCKET,
            )
        )
    finally:
        ledger.close()
    deploy("production")
    lake = BranchS3Resource(
        bucket=PRODUCTION_BUCKET,
        branch_bucket=BRANCH_BUCKET,
        endpoint_url=s3_endpoint,
        ledger_url=sqlite_url,
    )
    seen = count_requests(lake.get_cleanup_client())

    found = lake.list_namespaces()
    unrecorded = lake.unrecorded_objects()

    # Only the ledger records a namespace; the 1,005 folders were written behind its back.
    assert found == {Namespace.parse("pr_2000")}
    expected = {Namespace.for_pull_request(n) for n in range(1, 1006)}
    assert {obj.namespace for obj in unrecorded} == expected
    assert seen["ListObjectsV2"] == 2  # 1,005 folders: two pages, whatever the number of keys
    [ledger_only] = lake.objects_of(Namespace.parse("pr_2000"))
    assert ledger_only.found_in == {"ledger"}
    [big] = lake.objects_of(Namespace.parse("pr_1"))
    assert (big.kind, big.name, big.container, big.found_in) == (
        ObjectKind.PREFIX,
        "_branches/pr_1/",
        BRANCH_BUCKET,
        {"s3"},
    )
    assert lake.objects_of(Namespace.parse("pr_2001")) == []


def test_a_prefix_holding_only_delete_markers_or_an_upload_is_still_found(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BRANCH_BUCKET)
    s3_client.put_bucket_versioning(
        Bucket=BRANCH_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    s3_client.put_object(Bucket=BRANCH_BUCKET, Key="_branches/pr_1/a.csv", Body=b"1")
    s3_client.delete_object(Bucket=BRANCH_BUCKET, Key="_branches/pr_1/a.csv")
    s3_client.create_multipart_upload(Bucket=BRANCH_BUCKET, Key="_branches/pr_2/big.parquet")
    deploy("production")
    lake = BranchS3Resource(
        bucket=PRODUCTION_BUCKET, branch_bucket=BRANCH_BUCKET, endpoint_url=s3_endpoint
    )
    for key in ("pr_1", "pr_2"):
        [obj] = lake.objects_of(Namespace.parse(key))
        assert obj.name == f"_branches/{key}/"


def test_namespace_buckets_are_found_by_name_and_carry_their_tags(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    config = {"bucket": PRODUCTION_BUCKET, "strategy": "bucket", "endpoint_url": s3_endpoint}
    made = []
    for kind, pr in (("branch", 1), ("branch", 22), ("local", None)):
        deploy(kind, pr=pr)
        lake = BranchS3Resource(**config)  # type: ignore[arg-type]
        lake.ensure_namespace()
        made.append(lake.namespace)
    for decoy in (PRODUCTION_BUCKET, "acme-data--pr-01", "acme-data--pr-3-x", "other--pr-3"):
        s3_client.create_bucket(Bucket=decoy)
    deploy("production")
    lake = BranchS3Resource(**config)  # type: ignore[arg-type]

    assert lake.list_namespaces() == set(made)
    for namespace in made:
        assert namespace is not None
        [obj] = lake.objects_of(namespace)
        assert (obj.kind, obj.name, obj.found_in) == (
            ObjectKind.BUCKET,
            lake.layout().bucket_for(namespace),
            {"s3", "tags"},  # its name and its namespace tag agree
        )
        tags = s3_client.get_bucket_tagging(Bucket=obj.name)["TagSet"]
        assert {"Key": "dagster-branch/namespace", "Value": namespace.key} in tags
    assert lake.objects_of(Namespace.parse("pr_3")) == []
    assert isinstance(lake, BranchStore)  # what the sensor and the cleanup job rely on


PR_4 = Namespace.parse("pr_4")
PR_42 = Namespace.parse("pr_42")


def _tagged_bucket(client: Any, name: str, namespace: str | None, files: int = 3) -> None:
    client.create_bucket(Bucket=name)
    for n in range(files):
        client.put_object(Bucket=name, Key=f"lake/part-{n}.parquet", Body=b"data")
    if namespace is not None:
        tags = [{"Key": "dagster-branch/namespace", "Value": namespace}]
        client.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags})


def _keys(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_bucket_tags_are_read_back_and_a_disagreeing_tag_is_refused(
    s3_endpoint: str, s3_client: Any, deploy: Deploy, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"bucket": PRODUCTION_BUCKET, "strategy": "bucket", "endpoint_url": s3_endpoint}
    deploy("branch", pr=1)
    BranchS3Resource(**config).ensure_namespace()  # type: ignore[arg-type]
    _tagged_bucket(s3_client, "acme-data--pr-2", None)  # made by hand, never tagged
    _tagged_bucket(s3_client, "acme-data--pr-3", "pr_9")  # the name says pr_3, the tag pr_9
    _tagged_bucket(s3_client, "acme-data--copy--pr-4", "pr_4")  # tagged ours, name not ours
    _tagged_bucket(s3_client, "acme-data--notes", "pr_5")  # not branch-shaped: never read
    _tagged_bucket(s3_client, "acme-data-logs", "pr_6")  # outside the name prefix
    deploy("production")
    lake = BranchS3Resource(**config)  # type: ignore[arg-type]
    seen = count_requests(lake.get_cleanup_client())

    with caplog.at_level("WARNING"):
        found = lake.list_namespaces()

    assert found == {Namespace.parse("pr_1")}  # tagged by its owner; the rest are unrecorded
    # One listing, then one GetBucketTagging per branch-shaped bucket, none for the others.
    assert (seen["ListBuckets"], seen["GetBucketTagging"]) == (1, 4)
    assert sum(seen.values()) == 5
    warnings = caplog.text
    assert "'acme-data--pr-3'" in warnings and "disagree" in warnings
    assert "'acme-data--copy--pr-4'" in warnings and "not a namespace bucket" in warnings

    def only(key: str) -> OwnedObject:
        [obj] = lake.objects_of(Namespace.parse(key))
        return obj

    assert only("pr_1").found_in == {"s3", "tags"}
    assert only("pr_2").found_in == {"s3"}
    conflict, stray = only("pr_3"), only("pr_4")
    assert (conflict.name, conflict.found_in) == ("acme-data--pr-3", {"s3"})
    # Tagged by hand, without the owner tag the resource writes: not a record of anyone's.
    assert (stray.name, stray.found_in) == ("acme-data--copy--pr-4", {"tags (no owner)"})
    assert lake.objects_of(Namespace.parse("pr_9")) == []  # a tag never claims a named bucket

    problem = lake.ownership_problem(conflict)
    assert problem is not None and "pr_9" in problem and "disagree" in problem
    stray_problem = lake.ownership_problem(stray)
    assert stray_problem is not None and "mismatch" in stray_problem
    for obj in (conflict, stray):
        [result] = lake.remove_objects([obj], dry_run=False, log=logging.getLogger("test"))
        assert not result.removed and result.error is not None
        assert result.error.startswith("refused:")
        assert len(_keys(s3_client, obj.name)) == 3  # never purged
    # The two buckets that are really pr_1's and pr_2's go.
    for key in ("pr_1", "pr_2"):
        [result] = lake.remove_objects([only(key)], dry_run=False, log=logging.getLogger("t"))
        assert result.removed and result.error is None
    left = {b["Name"] for b in s3_client.list_buckets()["Buckets"]}
    assert left == {
        "acme-data--pr-3",
        "acme-data--copy--pr-4",
        "acme-data--notes",
        "acme-data-logs",
    }


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        (OwnedObject(PR_4, "s3", ObjectKind.PREFIX, "_branches/pr_4/", BRANCH_BUCKET), None),
        # A namespace bucket, but this configuration (strategy='prefix') puts pr_4 in a folder.
        (OwnedObject(PR_4, "s3", ObjectKind.BUCKET, "acme-data--pr-4"), "mismatch"),
        (OwnedObject(PR_42, "s3", ObjectKind.PREFIX, "_branches/pr_4/", BRANCH_BUCKET), "not the"),
        (OwnedObject(PR_4, "s3", ObjectKind.PREFIX, "_branches/pr_4/lake/", BRANCH_BUCKET), "not"),
        (OwnedObject(PR_4, "s3", ObjectKind.PREFIX, "lake/", PRODUCTION_BUCKET), "overlaps"),
        (OwnedObject(PR_4, "s3", ObjectKind.PREFIX, "_branches/pr_4/", "other"), "mismatch"),
        (OwnedObject(PR_4, "s3", ObjectKind.PREFIX, "_branches/", BRANCH_BUCKET), "not the"),
        (OwnedObject(PR_4, "s3", ObjectKind.PREFIX, "_branches/pr_4/"), "names no bucket"),
        (OwnedObject(PR_4, "s3", ObjectKind.BUCKET, PRODUCTION_BUCKET), "production"),
        (OwnedObject(PR_4, "s3", ObjectKind.BUCKET, BRANCH_BUCKET), "shared branch bucket"),
        (OwnedObject(PR_42, "s3", ObjectKind.BUCKET, "acme-data--pr-4"), "not a bucket of"),
        (OwnedObject(PR_4, "s3", ObjectKind.BUCKET, "other--pr-4"), "mismatch"),
        (OwnedObject(PR_4, "postgresql", ObjectKind.SCHEMA, "analytics__pr_4"), "not an S3"),
        (OwnedObject(PR_4, "s3", ObjectKind.TABLE, "x", "y"), "only prefixes and buckets"),
    ],
)
def test_ownership_problem_is_the_second_key(
    obj: OwnedObject, problem: str | None, s3_endpoint: str
) -> None:
    lake = BranchS3Resource(
        bucket=PRODUCTION_BUCKET,
        prefix="lake",
        branch_bucket=BRANCH_BUCKET,
        endpoint_url=s3_endpoint,  # a namespace bucket's tags are read (here: no such bucket)
    )
    found = lake.ownership_problem(obj)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_a_branch_prefix_in_the_shared_production_bucket_is_owned() -> None:
    lake = BranchS3Resource(bucket=PRODUCTION_BUCKET, prefix="lake")
    mine = OwnedObject(PR_4, "s3", ObjectKind.PREFIX, "_branches/pr_4/", PRODUCTION_BUCKET)
    assert lake.ownership_problem(mine) is None
