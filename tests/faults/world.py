"""A small world for the reliability tests: a lake, a warehouse, and the cleanup job.

Deployments are switched with the ``deploy`` fixture (``tests.support.deployments``); the
branch-aware resources are the real ones, talking to the real test servers (possibly through a
fault proxy). ``tests.support.snapshots`` captures everything outside a namespace so that a test
can assert it is byte-for-byte unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import dagster as dg
import sqlalchemy as sa

from dagster_branch import BranchDatabaseResource
from dagster_branch.cleanup.job import build_branch_cleanup_job
from dagster_branch.resources.s3 import BranchS3Resource
from tests.support.snapshots import BUCKET

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


__all__ = [
    "BUCKET",
    "lake",
    "run_cleanup",
    "run_log_messages",
    "seed_keys",
    "warehouse",
    "write_files",
    "write_tables",
]
