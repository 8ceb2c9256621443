"""PostgreSQL under faults: a TCP fault proxy between the cleanup job and the real server.

``pr_7`` owns two schemas, one per warehouse store (``analytics__pr_7`` and ``marts__pr_7``), so
one cleanup sends two ``DROP SCHEMA`` statements. The proxy cuts the connection right before the
second one reaches the server, or takes the server away altogether. Whatever happens: production
and ``pr_8`` are untouched, the run says what was not removed, the ledger keeps exactly the rows
of what still exists, and a rerun completes.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import sqlalchemy as sa

from tests.cleanup.helpers import failure_text
from tests.support.deployments import Deploy
from tests.support.snapshots import database_snapshot, live_ledger

from .proxy import TcpFaultProxy
from .world import run_cleanup, run_log_messages, warehouse, write_tables

BASES = ("analytics", "marts")


def _build_world(url: str, deploy: Deploy) -> None:
    for base in BASES:
        deploy("production")
        write_tables(url, ("orders", "users"), base_schema=base, store_key=base)
        for pr in (7, 8):
            deploy("branch", pr=pr)
            write_tables(url, ("orders",), base_schema=base, store_key=base)
    deploy("production")


def _stores(url: str) -> dict[str, Any]:
    return {base: warehouse(url, base_schema=base, store_key=base) for base in BASES}


def _without(snapshot: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in snapshot.items() if k not in names}


def test_connection_dropped_between_two_schema_drops_is_retried_within_the_run(
    postgres_url: str, postgres_proxy: tuple[TcpFaultProxy, str], deploy: Deploy
) -> None:
    proxy, proxied_url = postgres_proxy
    _build_world(postgres_url, deploy)
    before = database_snapshot(postgres_url)
    assert live_ledger(postgres_url, "pr_7") == {"analytics:analytics__pr_7", "marts:marts__pr_7"}
    proxy.drop_before(b"DROP SCHEMA", occurrence=2)

    with dg.DagsterInstance.ephemeral() as instance:
        result = run_cleanup(_stores(proxied_url), "pr_7", instance=instance)
        messages = run_log_messages(instance, result)

    assert proxy.fired == 1
    assert result.success, failure_text(result)
    assert any("marts__pr_7" in m and "server closed the connection" in m for m in messages)
    assert database_snapshot(postgres_url) == _without(before, "analytics__pr_7", "marts__pr_7")
    assert live_ledger(postgres_url, "pr_7") == set()
    assert live_ledger(postgres_url, "pr_8") == {"analytics:analytics__pr_8", "marts:marts__pr_8"}


def test_connection_dropped_again_on_the_retry_fails_the_run_and_a_rerun_completes(
    postgres_url: str, postgres_proxy: tuple[TcpFaultProxy, str], deploy: Deploy
) -> None:
    proxy, proxied_url = postgres_proxy
    _build_world(postgres_url, deploy)
    before = database_snapshot(postgres_url)
    proxy.drop_before(b"DROP SCHEMA", occurrence=2)
    proxy.drop_before(b"DROP SCHEMA", occurrence=3)  # the retry within the run, cut too

    first = run_cleanup(_stores(proxied_url), "pr_7")

    assert proxy.fired == 2
    assert not first.success
    message = failure_text(first)
    assert "marts__pr_7" in message and "run the cleanup again" in message
    assert "analytics__pr_7" not in message.split("retry only these")[-1]
    assert database_snapshot(postgres_url) == _without(before, "analytics__pr_7")
    assert live_ledger(postgres_url, "pr_7") == {"marts:marts__pr_7"}  # exactly what is left

    second = run_cleanup(_stores(proxied_url), "pr_7")

    assert second.success, failure_text(second)
    assert database_snapshot(postgres_url) == _without(before, "analytics__pr_7", "marts__pr_7")
    assert live_ledger(postgres_url, "pr_7") == set()
    assert live_ledger(postgres_url, "pr_8") == {"analytics:analytics__pr_8", "marts:marts__pr_8"}


def test_server_gone_midway_then_unreachable_then_back(
    postgres_url: str, postgres_proxy: tuple[TcpFaultProxy, str], deploy: Deploy
) -> None:
    proxy, proxied_url = postgres_proxy
    _build_world(postgres_url, deploy)
    before = database_snapshot(postgres_url)
    proxy.drop_before(b"DROP SCHEMA", occurrence=2, then_refuse=True)

    first = run_cleanup(_stores(proxied_url), "pr_7")

    assert not first.success and "marts__pr_7" in failure_text(first)
    assert database_snapshot(postgres_url) == _without(before, "analytics__pr_7")
    assert live_ledger(postgres_url, "pr_7") == {"marts:marts__pr_7"}

    # While the server is unreachable, a run cannot even plan: it fails and removes nothing.
    stalled = run_cleanup(_stores(proxied_url), "pr_7")

    assert not stalled.success
    assert "plan" in {e.step_key for e in stalled.all_events if e.is_step_failure}
    assert database_snapshot(postgres_url) == _without(before, "analytics__pr_7")

    proxy.refuse(False)
    last = run_cleanup(_stores(proxied_url), "pr_7")

    assert last.success, failure_text(last)
    assert database_snapshot(postgres_url) == _without(before, "analytics__pr_7", "marts__pr_7")
    assert live_ledger(postgres_url) == {"analytics:analytics__pr_8", "marts:marts__pr_8"}


def _ledger_rows(url: str, namespace: str) -> dict[str, bool]:
    """Every ledger row of ``namespace`` (dropped ones too): name -> dropped_at is set."""
    engine = sa.create_engine(url)
    table = sa.table(
        "dagster_branch_objects",
        sa.column("namespace"),
        sa.column("name"),
        sa.column("dropped_at"),
        schema="dagster_branch",
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.name, table.c.dropped_at).where(table.c.namespace == namespace)
            ).all()
    finally:
        engine.dispose()
    return {name: dropped_at is not None for name, dropped_at in rows}


def test_a_ledger_update_lost_once_is_retried_within_the_run(
    postgres_url: str, postgres_proxy: tuple[TcpFaultProxy, str], deploy: Deploy
) -> None:
    proxy, proxied_url = postgres_proxy
    _build_world(postgres_url, deploy)
    before = database_snapshot(postgres_url)
    proxy.drop_before(b"UPDATE dagster_branch.dagster_branch_objects", occurrence=1)

    result = run_cleanup({"analytics": _stores(proxied_url)["analytics"]}, "pr_7")

    assert proxy.fired == 1
    assert result.success, failure_text(result)
    assert database_snapshot(postgres_url) == _without(before, "analytics__pr_7")
    assert _ledger_rows(postgres_url, "pr_7") == {"analytics__pr_7": True, "marts__pr_7": False}


def test_a_ledger_update_lost_after_the_drop_fails_the_run_and_a_rerun_marks_it(
    postgres_url: str, postgres_proxy: tuple[TcpFaultProxy, str], deploy: Deploy
) -> None:
    proxy, proxied_url = postgres_proxy
    _build_world(postgres_url, deploy)
    before = database_snapshot(postgres_url)
    # The schema drop reaches the server; the UPDATE that marks it dropped does not, twice (the
    # run's own retry is cut too).
    proxy.drop_before(b"UPDATE dagster_branch.dagster_branch_objects", occurrence=1)
    proxy.drop_before(b"UPDATE dagster_branch.dagster_branch_objects", occurrence=2)

    first = run_cleanup({"analytics": _stores(proxied_url)["analytics"]}, "pr_7")

    assert proxy.fired == 2
    assert not first.success  # never reported as a success while the ledger says live
    message = failure_text(first)
    assert "analytics__pr_7: the object is gone, but the ledger could not be updated" in message
    assert "run the cleanup again" in message
    assert database_snapshot(postgres_url) == _without(before, "analytics__pr_7")
    assert _ledger_rows(postgres_url, "pr_7") == {"analytics__pr_7": False, "marts__pr_7": False}

    second = run_cleanup({"analytics": _stores(proxied_url)["analytics"]}, "pr_7")

    assert second.success, failure_text(second)  # DROP SCHEMA IF EXISTS: nothing left to drop
    assert _ledger_rows(postgres_url, "pr_7") == {"analytics__pr_7": True, "marts__pr_7": False}
    assert live_ledger(postgres_url, "pr_8") == {"analytics:analytics__pr_8", "marts:marts__pr_8"}
    assert database_snapshot(postgres_url) == _without(before, "analytics__pr_7")
