"""Two code locations share one PostgreSQL warehouse, its ledger and one S3 server (issue 13,
class 2): each lists, plans and cleans only what it recorded, and one cannot write into a name
the other recorded."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from dagster_branch import BranchDatabaseResource, BranchS3Resource
from dagster_branch.cleanup.plan import build_cleanup_plan
from dagster_branch.cleanup.verify import check_plan
from dagster_branch.errors import OwnershipConflictError
from dagster_branch.naming import Namespace
from tests.cleanup.world import deployment

LOG = logging.getLogger("test-owners")
PR_7 = Namespace.parse("pr_7")


def env(location: str, repo: str, pr: int | None) -> dict[str, Any]:
    """A location's production deployment (``pr=None``) or branch deployment."""
    if pr is None:
        return {"kind": "production", "location": location}
    return {"kind": "branch", "pr": pr, "location": location, "repository": repo}


class Location:
    """One code location's resources: its own base schema and buckets, the shared ledger."""

    def __init__(self, name: str, repo: str, url: str, endpoint: str, base: str) -> None:
        self.name, self.repo, self.url, self.endpoint, self.base = name, repo, url, endpoint, base

    def stores(self) -> dict[str, Any]:
        return {
            "warehouse": BranchDatabaseResource(url=self.url, base_schema=self.base),
            "lake": BranchS3Resource(
                bucket=f"{self.base}-data",
                prefix="lake",
                branch_bucket=f"{self.base}-branches",
                endpoint_url=self.endpoint,
                region_name="us-east-1",
                ledger_url=self.url,  # the warehouse's ledger, shared by both locations
            ),
        }

    def write(self, pr: int | None) -> None:
        with deployment(env(self.name, self.repo, pr)):
            stores = self.stores()
            warehouse, lake = stores["warehouse"], stores["lake"]
            try:
                with warehouse.get_connection() as conn:
                    conn.execute(sa.text(f"CREATE TABLE {warehouse.table('t')} AS SELECT 1 AS x"))
                lake.get_client().put_object(
                    Bucket=lake.bucket_name, Key=lake.key("f.csv"), Body=self.name.encode()
                )
            finally:
                close(stores)


def close(stores: Mapping[str, Any]) -> None:
    stores["warehouse"].close()
    stores["lake"].close()


@pytest.fixture
def locations(postgres_url: str, s3_endpoint: str) -> tuple[Location, Location]:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for base in ("analytics", "ml"):
        s3.create_bucket(Bucket=f"{base}-data")
        s3.create_bucket(Bucket=f"{base}-branches")
    etl = Location("etl", "acme/etl", postgres_url, s3_endpoint, "analytics")
    ml = Location("ml", "acme/ml", postgres_url, s3_endpoint, "ml")
    for location in (etl, ml):
        location.write(None)
        location.write(7)  # PR numbers repeat across repositories
    ml.write(9)
    return etl, ml


def keys(endpoint: str, bucket: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def schemas(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_schema_names())
    finally:
        engine.dispose()


def test_each_location_lists_plans_and_cleans_only_its_own_records(
    locations: tuple[Location, Location], postgres_url: str, s3_endpoint: str
) -> None:
    etl, ml = locations
    with deployment(env("etl", "acme/etl", None)):
        stores = etl.stores()
        try:
            # ml's pr_9 is none of etl's business: its sensor and orphans never see it.
            assert stores["warehouse"].list_namespaces() == {PR_7}
            assert stores["lake"].list_namespaces() == {PR_7}
            plan = build_cleanup_plan("pr_7", stores)
            assert sorted(p.name for p in plan) == [
                "analytics-branches/_branches/pr_7/",
                "analytics__pr_7",
            ]
            assert check_plan(plan, stores, source=None, require_closed=False).approved
            for key, store in stores.items():
                results = store.remove_objects(plan.objects_for(key), dry_run=False, log=LOG)
                assert all(r.removed for r in results), results
        finally:
            close(stores)

    # etl's pr_7 is gone; ml's open pr_7 (same number, other repository) is untouched.
    assert "analytics__pr_7" not in schemas(postgres_url)
    assert {"ml__pr_7", "ml__pr_9", "analytics", "ml"} <= schemas(postgres_url)
    assert keys(s3_endpoint, "analytics-branches") == []
    assert keys(s3_endpoint, "ml-branches") == [
        "_branches/pr_7/lake/f.csv",
        "_branches/pr_9/lake/f.csv",
    ]
    with deployment(env("ml", "acme/ml", None)):
        stores = ml.stores()
        try:
            assert stores["warehouse"].list_namespaces() == {PR_7, Namespace.parse("pr_9")}
            assert len(build_cleanup_plan("pr_7", stores)) == 2
        finally:
            close(stores)


def test_a_branch_writing_into_a_name_another_location_recorded_fails_naming_both(
    locations: tuple[Location, Location], postgres_url: str, s3_endpoint: str
) -> None:
    # A third location copied etl's configuration: same base_schema, same buckets.
    copy = Location("reports", "acme/reports", postgres_url, s3_endpoint, "analytics")
    with pytest.raises(OwnershipConflictError) as raised:
        copy.write(7)
    message = str(raised.value)
    assert "schema 'analytics__pr_7' is already recorded by owner 'etl'" in message
    assert "owner 'reports' (repository acme/reports)" in message
    assert "base_schema" in message
    with deployment(env("etl", "acme/etl", None)):  # etl's records are still etl's alone
        stores = etl_stores = locations[0].stores()
        try:
            assert sorted(p.name for p in build_cleanup_plan("pr_7", stores)) == [
                "analytics-branches/_branches/pr_7/",
                "analytics__pr_7",
            ]
        finally:
            close(etl_stores)
