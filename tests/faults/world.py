"""A small world for the reliability tests: a lake, a warehouse, and snapshots.

Deployments are switched with the ``deploy`` fixture of ``tests.support.deployments``; the
branch-aware resources are the real ones, talking to the real test servers (possibly through a
fault proxy). Snapshots capture everything outside a namespace so that a test can assert it is
byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import dagster as dg
import sqlalchemy as sa

from dagster_branch import BranchDatabaseResource, Namespace
from dagster_branch.cleanup.job import build_branch_cleanup_job
from dagster_branch.dialects import list_schema_names
from dagster_branch.ledger import Ledger
from dagster_branch.resources.s3 import BranchS3Resource

BUCKET = "acme-data"


# -- S3 -----------------------------------------------------------------------------------------


def lake(endpoint: str, ledger_url: str | None, **options: Any) -> BranchS3Resource:
    """The branch-aware S3 resource; botocore retries whole requests (4 retries, standard
    mode), the library re-sends the keys a DeleteObjects answer reports as throttled."""
    settings: dict[str, Any] = {
        "bucket": BUCKET,
        "prefix": "lake",
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "ledger_url": ledger_url,
        "max_attempts": 4,
        "retry_base_delay_seconds": 0.01,
        **options,
    }
    return BranchS3Resource(**settings)


def write_files(resource: BranchS3Resource, files: Mapping[str, bytes]) -> None:
    """What an asset of the current deployment does: put files where the resource routes."""
    client = resource.get_client()
    try:
        for path, body in files.items():
            client.put_object(Bucket=resource.bucket_name, Key=resource.key(path), Body=body)
    finally:
        resource.close()


def seed_keys(endpoint: str, bucket: str, keys: Iterable[str]) -> None:
    """Put many small objects fast, straight to the server (bulk data of a branch)."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, keys))


def s3_snapshot(endpoint: str, bucket: str = BUCKET, prefix: str = "") -> dict[str, str]:
    """Every key under ``prefix`` with its ETag (content hash)."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"]
    return found


def outside(snapshot: Mapping[str, str], namespace: str) -> dict[str, str]:
    """The part of an S3 snapshot that does not belong to ``namespace``."""
    return {k: v for k, v in snapshot.items() if not k.startswith(f"_branches/{namespace}/")}


# -- warehouse ----------------------------------------------------------------------------------


def warehouse(url: str, **options: Any) -> BranchDatabaseResource:
    return BranchDatabaseResource(**{"url": url, "base_schema": "analytics", **options})


def write_tables(url: str, tables: Iterable[str] = ("orders",), **options: Any) -> None:
    """What an asset of the current deployment does: create tables where the resource routes."""
    resource = warehouse(url, **options)
    try:
        with resource.get_connection() as conn:
            for name in tables:
                conn.execute(
                    sa.text(f"CREATE TABLE {resource.table(name)} AS SELECT 1 AS id, 'x' AS v")
                )
    finally:
        resource.close()


def database_snapshot(url: str) -> dict[str, str]:
    """Each analytics* schema with a digest of its tables' names and rows."""
    engine = sa.create_engine(url)
    found: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            for schema in list_schema_names(conn):
                if not schema.startswith("analytics"):
                    continue
                digest = hashlib.sha256()
                for table in sorted(sa.inspect(conn).get_table_names(schema=schema)):
                    quoted = sa.table(table, schema=schema)
                    rows = conn.execute(sa.select(sa.text("*")).select_from(quoted)).all()
                    digest.update(repr((table, sorted(map(tuple, rows)))).encode())
                found[schema] = digest.hexdigest()
    finally:
        engine.dispose()
    return found


def live_ledger(url: str, namespace: str | None = None, store: str | None = None) -> set[str]:
    """Qualified names of the live (not dropped) ledger rows."""
    ledger = Ledger.from_url(url)
    try:
        ns = Namespace.parse(namespace) if namespace else None
        return {
            f"{e.store}:{e.container + '/' if e.container else ''}{e.name}"
            for e in ledger.live_entries(ns, store=store)
        }
    finally:
        ledger.close()


# -- the cleanup job ----------------------------------------------------------------------------


def run_cleanup(
    stores: Mapping[str, Any],
    namespace: str,
    *,
    source: Any | None = None,
    instance: dg.DagsterInstance | None = None,
    **options: Any,
) -> dg.ExecuteInProcessResult:
    """Run the real cleanup job in process on ``stores``; never raises on a failed run."""
    job = build_branch_cleanup_job(
        store_keys=tuple(stores), source_key="pull_requests" if source is not None else None
    )
    resources = dict(stores)
    if source is not None:
        resources["pull_requests"] = source
    else:
        options.setdefault("require_closed", False)
    defs = dg.Definitions(jobs=[job], resources=resources)
    config = {"ops": {"plan": {"config": {"namespace": namespace, **options}}}}
    resolved = defs.resolve_job_def("branch_cleanup")
    if instance is not None:
        return resolved.execute_in_process(
            run_config=config, instance=instance, raise_on_error=False
        )
    with dg.DagsterInstance.ephemeral() as fresh:
        return resolved.execute_in_process(run_config=config, instance=fresh, raise_on_error=False)


def run_log_messages(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    """Every log line of a run as stored in the instance's event log (what the UI shows)."""
    return [entry.user_message for entry in instance.all_logs(result.run_id)]
