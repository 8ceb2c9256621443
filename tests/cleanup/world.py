"""A small data platform for the cleanup tests, built through the real resources.

Production and the branch deployments of two pull requests write tables through
:class:`BranchDatabaseResource` (PostgreSQL, DuckDB or SQLite) and files through two
:class:`BranchS3Resource` stores on the S3 server: ``lake`` (branches under a prefix of a shared,
versioned branch bucket) and ``exports`` (one unversioned bucket per namespace). Each deployment
runs under the environment Dagster+ would give it. :func:`snapshot` dumps everything (with
:mod:`tests.support.snapshots`) so that a test can prove what changed and what did not.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import sqlalchemy as sa

from dagster_branch import BranchDatabaseResource, BranchS3Resource
from dagster_branch.testing import deployment_env
from tests.support.snapshots import s3_dump, sqlite_files, warehouse_dump

# A deployment is described by the arguments of dagster_branch.testing.deployment_env.
PRODUCTION: dict[str, Any] = {"kind": "production", "location": "data"}


def branch_env(pr: int) -> dict[str, Any]:
    """The branch deployment of pull request ``pr`` in code location ``data``."""
    sha = hashlib.sha1(f"sha{pr}".encode()).hexdigest()
    return {
        "kind": "branch",
        "pr": pr,
        "location": "data",
        "repository": "acme/data",
        "git_sha": sha,
    }


def deployment(described: Mapping[str, Any]) -> contextlib.AbstractContextManager[dict[str, str]]:
    """Run the block in the environment Dagster+ gives the ``described`` deployment."""
    return deployment_env(**described)


@dataclass
class World:
    """Where everything lives; builds fresh resources for each deployment."""

    warehouse_url: str
    s3_endpoint: str
    strategy: str = "schema"

    # -- resources ----------------------------------------------------------------------------

    def warehouse(self, url: str | None = None, **options: Any) -> BranchDatabaseResource:
        return BranchDatabaseResource(
            url=url or self.warehouse_url,
            base_schema="analytics",
            strategy=self.strategy,  # type: ignore[arg-type]
            branch_schema="development" if self.strategy == "table_prefix" else None,
            **options,
        )

    def lake(self, endpoint: str | None = None, **options: Any) -> BranchS3Resource:
        return BranchS3Resource(
            bucket="acme-data",
            prefix="lake",
            branch_bucket="acme-branches",
            endpoint_url=endpoint or self.s3_endpoint,
            region_name="us-east-1",
            ledger_url=self.warehouse_url,
            store_key="lake",
            **options,
        )

    def exports(self, endpoint: str | None = None, **options: Any) -> BranchS3Resource:
        return BranchS3Resource(
            bucket="acme-exports",
            strategy="bucket",
            endpoint_url=endpoint or self.s3_endpoint,
            region_name="us-east-1",
            ledger_url=self.warehouse_url,
            store_key="exports",
            **options,
        )

    def stores(self, **overrides: Any) -> dict[str, Any]:
        """Fresh store resources by key, as the production Definitions bind them."""
        return {
            "warehouse": overrides.get("warehouse") or self.warehouse(),
            "lake": overrides.get("lake") or self.lake(),
            "exports": overrides.get("exports") or self.exports(),
        }

    def admin(self) -> Any:
        """A plain boto3 client, for setting up buckets and for snapshots."""
        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1")

    # -- building the platform ----------------------------------------------------------------

    def create_buckets(self) -> None:
        s3 = self.admin()
        for bucket in ("acme-data", "acme-branches", "acme-exports"):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(
            Bucket="acme-branches", VersioningConfiguration={"Status": "Enabled"}
        )

    def build(self, pr_7_lake_keys: int = 40) -> None:
        """Production, then the branch deployments of PR 7 (big) and PR 8 (small) write."""
        self.create_buckets()
        write_deployment(self, PRODUCTION, label="prod", lake_keys=20)
        write_deployment(self, branch_env(7), label="pr7", lake_keys=pr_7_lake_keys)
        write_deployment(self, branch_env(8), label="pr8", lake_keys=15)


def _rows(label: str, n: int) -> list[dict[str, Any]]:
    return [{"id": i, "label": f"{label}-{i}", "amount": i * 1.5} for i in range(n)]


def write_deployment(world: World, env: Mapping[str, Any], *, label: str, lake_keys: int) -> None:
    """What one deployment's assets write: two tables, lake files (with overwritten and deleted
    keys, and an unfinished multipart upload in branches), and a few exports."""
    with deployment(env):
        warehouse, lake, exports = world.warehouse(), world.lake(), world.exports()
        try:
            tables = {"orders": _rows(label, 30), "customers": _rows(label, 7)}
            locations = {name: warehouse.table(name) for name in tables}
            with warehouse.get_connection() as conn:
                for name, rows in tables.items():
                    loc = locations[name]
                    table = sa.Table(
                        loc.name,
                        sa.MetaData(),
                        sa.Column("id", sa.Integer),
                        sa.Column("label", sa.String(64)),
                        sa.Column("amount", sa.Float),
                        schema=loc.schema,
                    )
                    table.create(conn)
                    conn.execute(table.insert(), rows)
            _write_lake(lake, label, lake_keys, branch=label != "prod")
            client = exports.get_client()
            for i in range(5 if label != "pr7" else 30):
                client.put_object(
                    Bucket=exports.bucket_name,
                    Key=exports.key(f"daily/{i:03d}.csv"),
                    Body=f"{label},{i}\n".encode(),
                )
            if label == "pr7":
                client.create_multipart_upload(
                    Bucket=exports.bucket_name, Key=exports.key("big/unfinished.parquet")
                )
        finally:
            warehouse.close()
            lake.close()
            exports.close()


def _write_lake(lake: BranchS3Resource, label: str, n: int, *, branch: bool) -> None:
    client, bucket = lake.get_client(), lake.bucket_name
    lake.ensure_namespace()

    def put(i: int) -> None:
        client.put_object(
            Bucket=bucket, Key=lake.key(f"events/{i:05d}.json"), Body=f'{{"{label}": {i}}}'.encode()
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(n)))
    if branch:
        for i in range(0, min(n, 50), 5):  # a second version of some keys
            client.put_object(Bucket=bucket, Key=lake.key(f"events/{i:05d}.json"), Body=b"v2")
        for i in range(1, min(n, 30), 7):  # delete markers on others
            client.delete_object(Bucket=bucket, Key=lake.key(f"events/{i:05d}.json"))
        upload = client.create_multipart_upload(Bucket=bucket, Key=lake.key("big/part.bin"))
        client.upload_part(
            Bucket=bucket,
            Key=lake.key("big/part.bin"),
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"x" * 1024,  # S3's 5 MiB part minimum applies only when an upload completes
        )


# -- snapshots ----------------------------------------------------------------------------------


def snapshot(world: World) -> dict[str, Any]:
    """The whole platform: warehouse rows, SQLite file hashes, S3 contents."""
    return {
        "warehouse": warehouse_dump(world.warehouse_url),
        "files": sqlite_files(world.warehouse_url),
        "s3": s3_dump(world.admin(), removed=_of_pr_7),
    }


def _of_pr_7(text: str) -> bool:
    return "pr_7" in text or "pr-7" in text or "pr%5F7" in text


def outside_pr_7(snap: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot without anything of namespace ``pr_7`` (its ledger rows included)."""
    warehouse = {}
    for name, rows in snap["warehouse"].items():
        if _of_pr_7(name):
            continue
        warehouse[name] = [row for row in rows if not any(v == ("namespace", "pr_7") for v in row)]
    files = {
        name: digest
        for name, digest in snap["files"].items()
        if not _of_pr_7(name) and "dagster_branch" not in name
    }
    s3 = {
        bucket: {kind: [e for e in entries if not _of_pr_7(repr(e))] for kind, entries in c.items()}
        for bucket, c in snap["s3"].items()
        if not _of_pr_7(bucket)
    }
    return {"warehouse": warehouse, "files": files, "s3": s3}


def of_pr_7(snap: Mapping[str, Any]) -> list[str]:
    """Everything of ``pr_7`` still in the snapshot, except dropped ledger rows (audit)."""
    left = [name for name in snap["warehouse"] if _of_pr_7(name)]
    for _name, rows in snap["warehouse"].items():
        for row in rows[1:]:
            values = dict(row)
            if values.get("namespace") == "pr_7" and values.get("dropped_at") is None:
                left.append(f"live ledger row {values.get('kind')} {values.get('name')}")
    left += [name for name in snap["files"] if _of_pr_7(name)]
    for bucket, content in snap["s3"].items():
        if _of_pr_7(bucket):
            left.append(f"bucket {bucket}")
        left += [
            f"{bucket}: {e[:2]}" for kind in content for e in content[kind] if _of_pr_7(repr(e))
        ]
    return left
