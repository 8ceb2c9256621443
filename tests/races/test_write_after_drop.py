"""A branch that writes again while, or after, its namespace is cleaned (issue 13, class 10).

With the record as the first key, an object whose rows all say "dropped" would never be cleaned.
So a row is marked dropped only for what is verifiably gone (S3 or the catalog is asked again
after the ledger update), and a later write records again (no cache of the resource instance
hides a dropped row). On PostgreSQL and the S3 server; the race is made exact by holding the
cleanup's ledger ``UPDATE`` in a TCP proxy while the branch writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from dagster_branch import BranchDatabaseResource, BranchS3Resource, Namespace
from dagster_branch.cleanup.plan import build_cleanup_plan
from dagster_branch.ledger import Ledger
from dagster_branch.stores.s3 import RECREATED as LAKE_RECREATED
from dagster_branch.stores.warehouse import RECREATED as WAREHOUSE_RECREATED
from tests.cleanup.world import PRODUCTION, branch_env, deployment
from tests.faults.proxy import TcpFaultProxy

LOG = logging.getLogger("test-write-after-drop")
PR_7 = Namespace.parse("pr_7")
MARK_DROPPED = b"SET dropped_at"  # the ledger UPDATE that follows a removal


@pytest.fixture
def proxied_url(postgres_url: str) -> Iterator[tuple[TcpFaultProxy, str]]:
    url = sa.make_url(postgres_url)
    assert url.host and url.port
    with TcpFaultProxy(url.host, url.port) as proxy:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)


def warehouse(url: str, strategy: str = "schema") -> BranchDatabaseResource:
    return BranchDatabaseResource(
        url=url,
        base_schema="analytics",
        strategy=strategy,  # type: ignore[arg-type]
        branch_schema="development" if strategy == "table_prefix" else None,
    )


def lake(ledger_url: str, endpoint: str, **options: Any) -> BranchS3Resource:
    return BranchS3Resource(
        bucket="acme-data",
        prefix="lake",
        branch_bucket="acme-branches",
        endpoint_url=endpoint,
        region_name="us-east-1",
        ledger_url=ledger_url,
        **options,
    )


def write_table(resource: BranchDatabaseResource) -> None:
    with resource.get_connection() as conn:
        conn.execute(sa.text(f"CREATE TABLE {resource.table('orders')} AS SELECT 1 AS x"))


def write_key(resource: BranchS3Resource, name: str) -> None:
    resource.get_client().put_object(Bucket=resource.bucket_name, Key=resource.key(name), Body=b"7")


def live_rows(url: str, store: str) -> list[str]:
    ledger = Ledger.from_url(url)
    try:
        return [e.name for e in ledger.live_entries(PR_7, store=store)]
    finally:
        ledger.close()


def clean(store: Any, key: str) -> list[Any]:
    """One removal of pr_7 by the production deployment's store (no retry, unlike the job)."""
    plan = build_cleanup_plan("pr_7", {key: store})
    return store.remove_objects(plan.objects_for(key), dry_run=False, log=LOG)


@pytest.fixture
def buckets(s3_endpoint: str) -> str:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for bucket in ("acme-data", "acme-branches"):
        s3.create_bucket(Bucket=bucket)
    return s3_endpoint


@pytest.mark.parametrize("strategy", ["schema", "table_prefix"])
def test_a_branch_run_that_writes_after_the_cleanup_records_its_objects_again(
    postgres_url: str, strategy: str
) -> None:
    branch = warehouse(postgres_url, strategy)  # one run of the branch, going on for a while
    with deployment(branch_env(7)):
        write_table(branch)
    with deployment(PRODUCTION):
        production = warehouse(postgres_url, strategy)
        assert all(r.removed for r in clean(production, "warehouse"))
        assert production.list_namespaces() == set()
        production.close()

    with deployment(branch_env(7)):  # the same resource instance writes again
        write_table(branch)
        branch.close()

    assert live_rows(postgres_url, "warehouse")  # recorded again: the cleanup will see it
    with deployment(PRODUCTION):
        production = warehouse(postgres_url, strategy)
        assert production.list_namespaces() == {PR_7}
        plan = build_cleanup_plan("pr_7", {"warehouse": production})
        assert plan.removable and not plan.kept
        production.close()


def test_a_lake_write_after_the_cleanup_records_the_prefix_again(
    postgres_url: str, buckets: str
) -> None:
    branch = lake(postgres_url, buckets, record_again_seconds=0)
    with deployment(branch_env(7)):
        write_key(branch, "a.csv")
    with deployment(PRODUCTION):
        production = lake(postgres_url, buckets)
        assert all(r.removed for r in clean(production, "lake"))
        assert live_rows(postgres_url, "lake") == []
        production.close()

    with deployment(branch_env(7)):
        write_key(branch, "b.csv")
        branch.close()

    assert live_rows(postgres_url, "lake") == ["_branches/pr_7/"]


def test_a_schema_created_again_while_its_row_is_marked_dropped_stays_recorded(
    postgres_url: str, proxied_url: tuple[TcpFaultProxy, str]
) -> None:
    proxy, through_proxy = proxied_url
    with deployment(branch_env(7)):
        first = warehouse(postgres_url)
        write_table(first)
        first.close()

    def branch_writes_again() -> None:  # between the DROP SCHEMA and the ledger UPDATE
        with deployment(branch_env(7)):
            again = warehouse(postgres_url)
            write_table(again)
            again.close()

    proxy.run_before(MARK_DROPPED, branch_writes_again)
    with deployment(PRODUCTION):
        production = warehouse(through_proxy)
        [result] = clean(production, "warehouse")
        assert proxy.fired == 1
        assert not result.removed and result.error == WAREHOUSE_RECREATED
        assert production.list_namespaces() == {PR_7}  # the schema exists, so it is recorded
        assert live_rows(postgres_url, "warehouse") == ["analytics__pr_7"]

        [again] = clean(production, "warehouse")  # once the branch stopped: gone, and marked
        assert again.removed and again.error is None
        assert production.list_namespaces() == set()
        production.close()


def test_a_prefix_written_again_while_its_row_is_marked_dropped_stays_recorded(
    postgres_url: str, proxied_url: tuple[TcpFaultProxy, str], buckets: str
) -> None:
    proxy, through_proxy = proxied_url
    with deployment(branch_env(7)):
        first = lake(postgres_url, buckets)
        write_key(first, "a.csv")
        first.close()

    def branch_writes_again() -> None:
        with deployment(branch_env(7)):
            again = lake(postgres_url, buckets)
            write_key(again, "b.csv")
            again.close()

    proxy.run_before(MARK_DROPPED, branch_writes_again)
    with deployment(PRODUCTION):
        production = lake(through_proxy, buckets)
        [result] = clean(production, "lake")
        assert proxy.fired == 1
        assert not result.removed and result.error == LAKE_RECREATED
        assert live_rows(postgres_url, "lake") == ["_branches/pr_7/"]
        s3 = boto3.client("s3", endpoint_url=buckets, region_name="us-east-1")
        listing = s3.list_objects_v2(Bucket="acme-branches").get("Contents", [])
        assert [o["Key"] for o in listing] == ["_branches/pr_7/lake/b.csv"]
        production.close()
