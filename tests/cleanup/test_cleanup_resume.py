"""A cleanup that is interrupted, or meets failures and throttling, is finished by the next run.

Failures are collected per object, the run fails listing every one of them, the ledger keeps
what was not removed, and the next run plans and retries exactly that. The faults are real: a
TCP proxy that cuts the PostgreSQL connection before a ``DROP``, an HTTP proxy that answers
``503 SlowDown`` or holds a ``DeleteObjects`` batch, and a cleanup process killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from dagster_branch.naming import Namespace
from dagster_branch.sources.github import GitHubPullRequests
from tests.cleanup.conftest import RunCleanup
from tests.cleanup.helpers import failed_steps, failure_text, outcome_of
from tests.cleanup.world import PRODUCTION, World, deployment, of_pr_7, outside_pr_7, snapshot
from tests.faults.proxy import Drop, HttpFaultProxy, Rule, TcpFaultProxy, slow_down
from tests.sources.stand_ins import GitHubStandIn

PR_7 = Namespace.parse("pr_7")
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def test_a_connection_lost_between_two_drops_is_finished_by_the_next_run(
    postgres_url: str, s3_endpoint: str, run_cleanup: RunCleanup
) -> None:
    # Table-prefix strategy: PR 7 owns two tables in the shared schema, dropped one by one.
    world = World(warehouse_url=postgres_url, s3_endpoint=s3_endpoint, strategy="table_prefix")
    world.build()
    before = snapshot(world)
    url = sa.make_url(postgres_url)
    assert url.host and url.port

    with TcpFaultProxy(url.host, url.port) as proxy:
        # The link dies before the second drop, and again when the job retries that drop.
        proxy.drop_before(b"DROP TABLE", occurrence=3)
        proxy.drop_before(b"DROP TABLE", occurrence=2)
        through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
        first = run_cleanup(world, stores=world.stores(warehouse=world.warehouse(through_proxy)))
        assert proxy.fired == 2

    assert not first.success
    assert failed_steps(first) == {"record"}  # every store attempted everything first
    text = failure_text(first)
    assert "1 object(s) could not be removed" in text
    assert "warehouse: table development.pr_7__" in text
    middle = snapshot(world)
    left = of_pr_7(middle)
    assert len(left) == 2  # the one table, and its live ledger row
    assert all("pr_7__" in item for item in left)

    with deployment(PRODUCTION):  # the ledger kept only what was not removed
        remaining = world.warehouse().objects_of(PR_7)
    assert len(remaining) == 1

    second = run_cleanup(world)

    assert [r.obj for r in outcome_of(second).results()] == remaining  # retried only that
    after = snapshot(world)
    assert of_pr_7(after) == []
    assert outside_pr_7(after) == outside_pr_7(before)


def test_a_connection_lost_once_is_retried_within_the_same_run(
    postgres_url: str, s3_endpoint: str, run_cleanup: RunCleanup
) -> None:
    world = World(warehouse_url=postgres_url, s3_endpoint=s3_endpoint, strategy="table_prefix")
    world.build()
    before = snapshot(world)
    url = sa.make_url(postgres_url)
    assert url.host and url.port

    with TcpFaultProxy(url.host, url.port) as proxy:
        proxy.drop_before(b"DROP TABLE", occurrence=2)  # once: the retry goes through
        through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
        result = run_cleanup(world, stores=world.stores(warehouse=world.warehouse(through_proxy)))
        assert proxy.fired == 1

    assert outcome_of(result).results()
    after = snapshot(world)
    assert of_pr_7(after) == []
    assert outside_pr_7(after) == outside_pr_7(before)


def test_throttled_delete_batches_still_end_with_everything_removed(
    pg_world: World, run_cleanup: RunCleanup
) -> None:
    world = pg_world
    before = snapshot(world)
    with HttpFaultProxy(world.s3_endpoint) as proxy:
        proxy.add(Rule(method="POST", query="delete", on={1, 2, 4}, action=slow_down()))
        stores = world.stores(
            lake=world.lake(endpoint=proxy.url), exports=world.exports(endpoint=proxy.url)
        )
        result = run_cleanup(world, stores=stores)
        throttled = proxy.count(method="POST", query="delete", outcome="slow-down")

    assert outcome_of(result).results()
    assert throttled == 3
    after = snapshot(world)
    assert of_pr_7(after) == []
    assert outside_pr_7(after) == outside_pr_7(before)


def test_a_cleanup_killed_midway_through_2100_keys_is_completed_by_the_next_run(
    big_world: World,
    github: GitHubStandIn,
    pull_requests: GitHubPullRequests,
    run_cleanup: RunCleanup,
    tmp_path: Path,
) -> None:
    before = snapshot(big_world)
    versions = [e for e in before["s3"]["acme-branches"]["objects"] if "pr_7" in e[1]]
    assert len(versions) > 2_000  # three DeleteObjects batches

    with HttpFaultProxy(big_world.s3_endpoint) as proxy:
        # The first batch goes through; from the second on, the connection drops: the process
        # is retrying the second batch when it is killed.
        held = proxy.add(
            Rule(
                method="POST",
                path="acme-branches",
                query="delete",
                on=range(2, 1000),
                action=Drop(),
            )
        )
        spec = {
            "warehouse_url": big_world.warehouse_url,
            "s3_endpoint": big_world.s3_endpoint,
            "lake_endpoint": proxy.url,
            "github_api_url": github.api_url,
            "github_token": pull_requests.token,
            "namespace": "pr_7",
        }
        log = tmp_path / "cleanup-process.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.cleanup.cleanup_process", json.dumps(spec)],
                cwd=REPOSITORY_ROOT,
                env={**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 180
                while held.seen < 2 and process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert held.seen >= 2, log.read_text()[-3000:]
            finally:
                process.kill()
                process.wait(timeout=30)
    assert process.returncode == -9

    middle = [e for e in snapshot(big_world)["s3"]["acme-branches"]["objects"] if "pr_7" in e[1]]
    assert 0 < len(middle) <= len(versions) - 1_000  # killed between two batches

    result = run_cleanup(big_world)

    assert outcome_of(result).results()
    after = snapshot(big_world)
    assert of_pr_7(after) == []
    assert outside_pr_7(after) == outside_pr_7(before)
