"""BranchS3PickleIOManager on the S3 server: the same assets pickle to production, to a branch,
and locally with no routing code, and a branch reads upstream outputs it did not build from
production."""

from __future__ import annotations

import pickle
from typing import Any

from dagster import AssetKey, DagsterInstance, asset, materialize

from dagster_branch.io_managers.s3 import BranchS3PickleIOManager
from dagster_branch.naming import Namespace, bucket_name
from dagster_branch.resources.s3 import BranchS3Resource
from tests.support.deployments import Deploy

PRODUCTION_BUCKET = "acme-data"
BRANCH_BUCKET = "acme-branches"


@asset
def numbers() -> list[int]:
    return [1, 2, 3]


@asset
def total(numbers: list[int]) -> int:
    return sum(numbers)


def pickles(client: Any, bucket: str) -> dict[str, Any]:
    """Every object of ``bucket`` unpickled, by key (markers skipped)."""
    found: dict[str, Any] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".dagster-branch.json"):
                body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                found[obj["Key"]] = pickle.loads(body)
    return found


def io_manager(endpoint: str, *, path_prefix: str = "", **extra: Any) -> BranchS3PickleIOManager:
    lake = BranchS3Resource(
        bucket=PRODUCTION_BUCKET, prefix="dagster", endpoint_url=endpoint, **extra
    )
    return BranchS3PickleIOManager(s3_resource=lake, path_prefix=path_prefix)


def test_a_branch_reads_production_upstream_and_writes_only_its_own_outputs(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    for bucket in (PRODUCTION_BUCKET, BRANCH_BUCKET):
        s3_client.create_bucket(Bucket=bucket)
    manager = io_manager(s3_endpoint, branch_bucket=BRANCH_BUCKET)
    deploy("production")
    assert materialize([numbers, total], resources={"io_manager": manager}).success
    production = pickles(s3_client, PRODUCTION_BUCKET)
    assert production == {"dagster/numbers": [1, 2, 3], "dagster/total": 6}

    deploy("branch", pr=3)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [numbers, total], resources={"io_manager": manager}, selection=[total], instance=instance
    )  # the branch did not rebuild numbers

    assert result.success
    assert pickles(s3_client, PRODUCTION_BUCKET) == production
    assert pickles(s3_client, BRANCH_BUCKET) == {"_branches/pr_3/dagster/total": 6}
    [materialization] = result.asset_materializations_for_node("total")
    uri = materialization.metadata["uri"].value
    assert uri == f"s3://{BRANCH_BUCKET}/_branches/pr_3/dagster/total"
    assert materialization.metadata["dagster-branch/namespace"].value == "pr_3"
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("read production's s3://acme-data/dagster/numbers" in m for m in logged)

    # once the branch builds numbers itself, it reads its own copy
    assert materialize([numbers, total], resources={"io_manager": manager}).success
    assert pickles(s3_client, BRANCH_BUCKET) == {
        "_branches/pr_3/dagster/numbers": [1, 2, 3],
        "_branches/pr_3/dagster/total": 6,
    }


def test_locally_in_bucket_mode_the_namespace_bucket_is_made_on_first_write(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=PRODUCTION_BUCKET)
    deploy("local", user="alice")
    manager = io_manager(s3_endpoint, strategy="bucket")
    assert materialize([numbers, total], resources={"io_manager": manager}).success
    alice = Namespace.for_developer("alice")
    assert bucket_name(PRODUCTION_BUCKET, alice) == "acme-data--dev-alice-2bd806c97f0e00af"
    assert pickles(s3_client, bucket_name(PRODUCTION_BUCKET, alice)) == {
        "dagster/numbers": [1, 2, 3],
        "dagster/total": 6,
    }
    assert pickles(s3_client, PRODUCTION_BUCKET) == {}


def test_without_fallback_a_missing_upstream_fails_the_run(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=PRODUCTION_BUCKET)
    deploy("production")
    lake = BranchS3Resource(bucket=PRODUCTION_BUCKET, prefix="dagster", endpoint_url=s3_endpoint)
    assert materialize(
        [numbers], resources={"io_manager": BranchS3PickleIOManager(s3_resource=lake)}
    ).success
    deploy("branch", pr=5)
    strict = BranchS3PickleIOManager(s3_resource=lake, read_production_fallback=False)
    result = materialize(
        [numbers, total], resources={"io_manager": strict}, selection=[total], raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "_branches/pr_5/dagster/numbers" in str(failure.step_failure_data.error)


def test_op_outputs_and_nested_asset_keys_are_routed_too(
    s3_endpoint: str, s3_client: Any, deploy: Deploy
) -> None:
    @asset(key_prefix=["sales", "eu"])
    def orders() -> dict[str, int]:
        return {"n": 2}

    s3_client.create_bucket(Bucket=PRODUCTION_BUCKET)
    deploy("branch", pr=8)
    manager = io_manager(s3_endpoint, path_prefix="pickles")
    assert materialize([orders], resources={"io_manager": manager}).success
    assert pickles(s3_client, PRODUCTION_BUCKET) == {
        "_branches/pr_8/dagster/pickles/sales/eu/orders": {"n": 2}
    }
    assert orders.key == AssetKey(["sales", "eu", "orders"])
