"""Concurrent cleanups of one namespace on one DuckDB file.

DuckDB takes an exclusive lock on its file per process, so two processes cannot open it at once;
these tests run the two cleanups in two threads of one process, each with its own resource and
its own SQLAlchemy engine (so their own connections and transactions), which is how two runs of
the in-process executor meet. DuckDB's optimistic concurrency then makes the loser of a race fail
with "Catalog write-write conflict" (a DROP) or "Conflict on update" (the ledger update): the
warehouse cleanup retries those with backoff, so both cleanups end without an error.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from dagster_branch import BranchDatabaseResource
from dagster_branch.dialects import is_write_conflict
from dagster_branch.inventory import RemovalResult
from dagster_branch.ledger import Ledger, retry_write_conflicts
from dagster_branch.naming import Namespace
from tests.cleanup.world import PRODUCTION, branch_env, deployment
from tests.support.snapshots import warehouse_dump

PR_7 = Namespace.parse("pr_7")
TABLES = 12
ROUNDS = 3


def _resource(url: str, strategy: str) -> BranchDatabaseResource:
    return BranchDatabaseResource(
        url=url,
        base_schema="analytics",
        strategy=strategy,  # type: ignore[arg-type]
        branch_schema="development" if strategy == "table_prefix" else None,
    )


def _write(url: str, strategy: str, env: dict[str, str]) -> None:
    with deployment(env):
        resource = _resource(url, strategy)
        try:
            locations = [resource.table(f"t{i}") for i in range(TABLES)]
            with resource.get_connection() as conn:
                for loc in locations:
                    conn.execute(sa.text(f"CREATE TABLE {loc} AS SELECT 1 AS id"))
        finally:
            resource.close()


def _two_cleanups_at_once(url: str, strategy: str) -> list[list[RemovalResult]]:
    with deployment(PRODUCTION):
        resources = [_resource(url, strategy) for _ in range(2)]
        plans = [r.objects_of(PR_7) for r in resources]
        results: dict[int, list[RemovalResult]] = {}
        start = threading.Barrier(2)

        def clean(i: int) -> None:
            start.wait()
            results[i] = resources[i].remove_objects(
                plans[i], dry_run=False, log=logging.getLogger(f"cleanup-{i}")
            )

        threads = [threading.Thread(target=clean, args=(i,)) for i in range(2)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
        finally:
            for resource in resources:
                resource.close()
    return [results[0], results[1]]


@pytest.mark.parametrize("strategy", ["schema", "table_prefix"])
def test_two_cleanups_of_one_namespace_on_one_duckdb_file_end_clean_without_errors(
    duckdb_url: str, strategy: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _round in range(ROUNDS):  # the race is not deterministic: meet it several times
        _write(duckdb_url, strategy, PRODUCTION)
        _write(duckdb_url, strategy, branch_env(8))
        _write(duckdb_url, strategy, branch_env(7))
        before = warehouse_dump(duckdb_url)

        first, second = _two_cleanups_at_once(duckdb_url, strategy)

        for results in (first, second):
            assert results, "each cleanup planned the namespace's objects"
            assert [r.error for r in results if r.error] == []
            assert all(r.removed for r in results)
        after = warehouse_dump(duckdb_url)
        assert [name for name in after if "pr_7" in name] == []
        kept = {k: v for k, v in before.items() if "pr_7" not in k and "dagster_branch" not in k}
        assert {k: v for k, v in after.items() if "dagster_branch" not in k} == kept
        ledger = Ledger.from_url(duckdb_url)
        try:
            assert ledger.live_entries(PR_7) == []
            assert ledger.live_entries(Namespace.parse("pr_8"))
        finally:
            ledger.close()
        # Production is rebuilt next round: start from an empty file.
        with deployment(PRODUCTION):
            _drop_everything(duckdb_url)
    conflicts = [m for m in caplog.messages if "met a concurrent change" in m]
    print(f"{strategy}: {len(conflicts)} write-write conflict(s) retried in {ROUNDS} rounds")


def _drop_everything(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for schema in ("analytics", "analytics__pr_8", "development", "dagster_branch"):
                conn.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
    finally:
        engine.dispose()


def test_a_real_write_write_conflict_is_retried_until_the_rival_commits(duckdb_url: str) -> None:
    """Deterministic: the rival holds an uncommitted DROP of the same table; it commits while
    the cleanup waits to retry, and the retried ``DROP TABLE IF EXISTS`` then succeeds."""
    engine = sa.create_engine(duckdb_url)
    rival_engine = sa.create_engine(duckdb_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE orders AS SELECT 1 AS id")
        rival = rival_engine.connect()
        rival_tx = rival.begin()
        rival.exec_driver_sql("DROP TABLE orders")
        retries: list[str] = []

        def drop() -> None:
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS orders")

        def rival_commits(exc: BaseException, delay: float) -> None:
            retries.append(str(exc))
            assert is_write_conflict(exc)
            if rival_tx.is_active:
                rival_tx.commit()

        retry_write_conflicts(drop, on_retry=rival_commits, pause=0.01)
        rival.close()

        assert len(retries) == 1 and "conflict" in retries[0].lower()
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("orders")
    finally:
        engine.dispose()
        rival_engine.dispose()


def test_errors_that_are_not_conflicts_are_raised_at_once(duckdb_url: str) -> None:
    engine = sa.create_engine(duckdb_url)
    calls: list[Any] = []

    def broken() -> None:
        calls.append(1)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE missing_table")  # no IF EXISTS: a catalog error

    try:
        with pytest.raises(sa.exc.SQLAlchemyError) as raised:
            retry_write_conflicts(broken, pause=0.01)
    finally:
        engine.dispose()
    assert calls == [1]
    assert not is_write_conflict(raised.value)
