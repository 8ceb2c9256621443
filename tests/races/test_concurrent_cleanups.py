"""Two cleanups of the same namespace at once, as two separate production processes.

Both run ``dagster-branch cleanup --yes`` on the same Definitions (PostgreSQL warehouse and S3
lake, ledger in PostgreSQL). Fault proxies slow the servers down so that the two runs overlap
inside their removal steps, not one after the other. Both must finish without error, ``pr_7``
must be gone from both stores, production and ``pr_8`` unchanged, and the ledger must hold
exactly one dropped row per object and no live row of ``pr_7``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from tests.faults.proxy import Forward, HttpFaultProxy, Rule, TcpFaultProxy
from tests.faults.world import BUCKET, lake, write_files, write_tables
from tests.support.deployments import Deploy
from tests.support.snapshots import database_snapshot, live_ledger, outside, s3_snapshot
from tests.support.sql import query

DEFS = """
import dagster as dg
from dagster_branch import BranchDatabaseResource
from dagster_branch.cleanup.job import build_branch_cleanup_job
from dagster_branch.resources.s3 import BranchS3Resource

defs = dg.Definitions(
    jobs=[build_branch_cleanup_job(source_key=None)],
    resources={{
        "warehouse": BranchDatabaseResource(url={url!r}, base_schema="analytics"),
        "lake": BranchS3Resource(
            bucket="acme-data", prefix="lake", endpoint_url={endpoint!r},
            region_name="us-east-1", ledger_url={url!r}, max_attempts=1,
        ),
    }},
)
"""


@pytest.fixture
def proxies(postgres_url: str, s3_endpoint: str) -> Iterator[tuple[str, str, TcpFaultProxy]]:
    url = sa.make_url(postgres_url)
    assert url.host and url.port
    with TcpFaultProxy(url.host, url.port) as pg, HttpFaultProxy(s3_endpoint) as s3:
        s3.add(Rule(method="POST", query="delete", action=Forward(delay=0.4)))
        s3.add(Rule(method="GET", query="list-type", action=Forward(delay=0.2)))
        proxied = url.set(port=pg.port).render_as_string(hide_password=False)
        yield proxied, s3.url, pg


def _ledger_rows(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT namespace, name, dropped_at IS NOT NULL "
        "FROM dagster_branch.dagster_branch_objects ORDER BY namespace, name",
    )


def test_two_cleanup_processes_at_once_end_in_one_consistent_state(
    postgres_url: str,
    s3_endpoint: str,
    proxies: tuple[str, str, TcpFaultProxy],
    deploy: Deploy,
    tmp_path: Path,
) -> None:
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    for who in ("production", 7, 8):
        deploy("production") if who == "production" else deploy("branch", pr=int(who))
        write_tables(postgres_url, ("orders", "users"))
        write_files(lake(s3_endpoint, postgres_url), {f"part-{n}.csv": b"x" for n in range(30)})
    deploy("production")
    tables_before, keys_before = database_snapshot(postgres_url), s3_snapshot(s3_endpoint)
    proxied_url, proxied_s3, pg = proxies
    pg.delay = 0.01  # every statement a little slower: the two runs overlap
    defs = tmp_path / "defs.py"
    defs.write_text(DEFS.format(url=proxied_url, endpoint=proxied_s3))
    env = {**os.environ, "DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod"}
    command = [sys.executable, "-m", "dagster_branch.cli", "cleanup", "-f", str(defs)]
    command += ["--namespace", "pr_7", "--yes", "--no-pr-check"]

    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=240)[0].decode() for run in runs]

    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
        assert "Cleaned pr_7" in output, output
        assert "2 object(s)" in output, "the runs did not overlap: " + output
    assert database_snapshot(postgres_url) == {
        k: v for k, v in tables_before.items() if k != "analytics__pr_7"
    }
    assert s3_snapshot(s3_endpoint) == outside(keys_before, "pr_7")
    assert live_ledger(postgres_url, "pr_7") == set()
    rows = _ledger_rows(postgres_url)
    assert rows == [
        ("pr_7", "_branches/pr_7/", True),
        ("pr_7", "analytics__pr_7", True),
        ("pr_8", "_branches/pr_8/", False),
        ("pr_8", "analytics__pr_8", False),
    ]
