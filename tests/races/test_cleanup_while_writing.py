"""A cleanup while the branch deployment is still writing.

The branch deployment of ``pr_7`` runs in its own process (its own environment, as in Dagster+)
and keeps materializing: each "run" is a fresh pair of resources writing one table and one file.
Meanwhile production runs the cleanup. Whatever interleaving happens, afterwards:

- nothing outside ``pr_7`` was touched;
- nothing of ``pr_7`` is hidden: every object that still exists is in the inventory (ledger or
  discovery), so the sensor and the ``orphans`` command still see the namespace;
- once the writer has stopped, one more cleanup leaves nothing of ``pr_7`` and no live ledger row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from dagster_branch import Namespace
from tests.cleanup.helpers import failure_text
from tests.faults.world import BUCKET, lake, run_cleanup, warehouse, write_files, write_tables
from tests.support.deployments import Deploy
from tests.support.snapshots import database_snapshot, live_ledger, outside, s3_snapshot

WRITER = """
import json, sys, time
import sqlalchemy as sa
from dagster_branch import BranchDatabaseResource
from dagster_branch.resources.s3 import BranchS3Resource

url, endpoint, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
ok = failed = 0
deadline = time.monotonic() + seconds
n = 0
while time.monotonic() < deadline or n < 6:  # on a loaded machine: time, and runs enough
    n += 1
    warehouse = BranchDatabaseResource(url=url, base_schema="analytics")
    lake = BranchS3Resource(bucket="acme-data", prefix="lake", endpoint_url=endpoint,
                            region_name="us-east-1", ledger_url=url)
    try:
        with warehouse.get_connection() as conn:
            conn.execute(sa.text(f"CREATE TABLE {warehouse.table(f't{n}')} AS SELECT {n} AS n"))
        lake.get_client().put_object(Bucket=lake.bucket_name, Key=lake.key(f"f{n}"), Body=b"x")
        ok += 1
    except Exception as exc:  # the namespace vanished under us: the next run starts afresh
        failed += 1
    finally:
        warehouse.close()
        lake.close()
    if n == 3:
        print("ready", flush=True)
print(json.dumps({"ok": ok, "failed": failed}), flush=True)
"""


def _pr7_objects(url: str, endpoint: str) -> tuple[set[str], set[str]]:
    schemas = {s for s in database_snapshot(url) if s == "analytics__pr_7"}
    keys = set(s3_snapshot(endpoint, prefix="_branches/pr_7/"))
    return schemas, keys


@pytest.mark.timeout(600)  # two cleanups and a writer process: over 300 s on a loaded machine
def test_cleanup_while_the_branch_deployment_is_still_writing(
    postgres_url: str, s3_endpoint: str, deploy: Deploy, tmp_path: Path
) -> None:
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    for who in ("production", 8):
        deploy("production") if who == "production" else deploy("branch", pr=int(who))
        write_tables(postgres_url)
        write_files(lake(s3_endpoint, postgres_url), {"orders.csv": b"x"})
    deploy("production")
    tables_before, keys_before = database_snapshot(postgres_url), s3_snapshot(s3_endpoint)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {
        **os.environ,
        "DAGSTER_CLOUD_DEPLOYMENT_NAME": "5f2c0a9e1b7d",
        "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "1",
        "DAGSTER_CLOUD_PULL_REQUEST_ID": "7",
    }
    writer = subprocess.Popen(
        [sys.executable, str(script), postgres_url, s3_endpoint, "6"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        stores = {"warehouse": warehouse(postgres_url), "lake": lake(s3_endpoint, postgres_url)}

        during = run_cleanup(stores, "pr_7")

        # Whatever the interleaving, the run either removed everything it planned or says
        # precisely what it could not remove.
        assert during.success or "run the cleanup again" in failure_text(during)
        assert {
            k: v for k, v in database_snapshot(postgres_url).items() if k != "analytics__pr_7"
        } == {k: v for k, v in tables_before.items() if k != "analytics__pr_7"}
        assert outside(s3_snapshot(s3_endpoint), "pr_7") == outside(keys_before, "pr_7")
        report = json.loads(writer.communicate(timeout=240)[0].strip().splitlines()[-1])
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert report["ok"] >= 3

    # Nothing of pr_7 is hidden from the inventory.
    time.sleep(0.1)
    schemas, keys = _pr7_objects(postgres_url, s3_endpoint)
    pr_7 = Namespace.parse("pr_7")
    for key, store in {
        "warehouse": warehouse(postgres_url),
        "lake": lake(s3_endpoint, postgres_url),  # where the writer records, as it writes
    }.items():
        found = {o.qualified_name for o in store.objects_of(pr_7)}
        if key == "warehouse" and schemas:
            assert found == {"analytics__pr_7"}
            assert pr_7 in store.list_namespaces()
        if key == "lake" and keys:
            assert found == {"acme-data/_branches/pr_7/"}
            assert pr_7 in store.list_namespaces()

    # With the writer gone, one more cleanup converges: nothing left, the ledger agrees.
    after = run_cleanup(
        {"warehouse": warehouse(postgres_url), "lake": lake(s3_endpoint, postgres_url)}, "pr_7"
    )
    assert after.success, failure_text(after)
    assert _pr7_objects(postgres_url, s3_endpoint) == (set(), set())
    assert live_ledger(postgres_url, "pr_7") == set()
    assert database_snapshot(postgres_url) == {
        k: v for k, v in tables_before.items() if k != "analytics__pr_7"
    }
    assert s3_snapshot(s3_endpoint) == outside(keys_before, "pr_7")
    assert live_ledger(postgres_url, "pr_8") == {
        "warehouse:analytics__pr_8",
        "lake:acme-data/_branches/pr_8/",
    }
