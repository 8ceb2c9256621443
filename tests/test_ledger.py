"""The ownership ledger on a real PostgreSQL server, a DuckDB file and a SQLite file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import LEDGER_TABLE, Ledger, LedgerEntry
from dagster_branch.naming import Namespace
from tests.resources.test_database_cleanup import StatementCounter

PR_7 = Namespace.parse("pr_7")
PR_8 = Namespace.parse("pr_8")


@pytest.fixture(params=["postgres_url", "duckdb_url", "sqlite_url"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    ledger = Ledger.from_url(url)
    try:
        yield ledger
    finally:
        ledger.close()


def schema_entry(namespace: Namespace, name: str, **extra: object) -> LedgerEntry:
    return LedgerEntry(
        namespace=namespace,
        store="warehouse",
        backend="test",
        kind=ObjectKind.SCHEMA,
        name=name,
        **extra,  # type: ignore[arg-type]
    )


def test_ensure_creates_the_table_in_the_control_schema_and_is_idempotent(
    ledger: Ledger, url: str
) -> None:
    ledger.ensure()
    ledger.ensure()
    fresh = Ledger.from_url(url)  # a second process starting later
    try:
        fresh.ensure()
        with fresh.engine.connect() as conn:
            assert sa.inspect(conn).has_table(LEDGER_TABLE, schema="dagster_branch")
    finally:
        fresh.close()


def test_reading_a_missing_ledger_creates_nothing(ledger: Ledger) -> None:
    assert ledger.live_entries() == []
    assert ledger.namespaces() == set()
    assert ledger.mark_dropped([schema_entry(PR_7, "analytics__pr_7")]) == 0
    with ledger.engine.connect() as conn:
        assert not sa.inspect(conn).has_table(LEDGER_TABLE, schema="dagster_branch")


def test_record_is_idempotent_and_keeps_provenance(ledger: Ledger) -> None:
    created = datetime(2024, 8, 28, 19, 5, 41, tzinfo=timezone.utc)
    entry = schema_entry(
        PR_7,
        "analytics__pr_7",
        branch="feature/orders",
        created_at=created,
        deployment_name="5f2c0a9e1b7d",
        run_id="run-1",
        git_sha="a1b2c3d4",
    )
    assert ledger.record(entry) is True
    assert ledger.record(entry) is False
    assert ledger.record(schema_entry(PR_7, "analytics__pr_7")) is False  # provenance differs

    [stored] = ledger.live_entries(PR_7)
    assert stored.name == "analytics__pr_7"
    assert stored.pull_request_id == "7"  # filled from the namespace
    assert stored.branch == "feature/orders"
    assert stored.created_at == created
    assert (stored.deployment_name, stored.run_id, stored.git_sha) == (
        "5f2c0a9e1b7d",
        "run-1",
        "a1b2c3d4",
    )
    assert stored.to_owned().found_in == frozenset({"ledger"})


def test_entries_filter_by_namespace_and_store(ledger: Ledger) -> None:
    ledger.record(schema_entry(PR_7, "analytics__pr_7"))
    ledger.record(schema_entry(PR_8, "analytics__pr_8"))
    table = LedgerEntry(
        namespace=PR_7,
        store="lake",
        backend="s3",
        kind=ObjectKind.PREFIX,
        name="_branches/pr_7/",
        container="bucket",
    )
    ledger.record(table)

    assert ledger.namespaces() == {PR_7, PR_8}
    assert ledger.namespaces(store="lake") == {PR_7}
    assert [e.name for e in ledger.live_entries(PR_7)] == ["analytics__pr_7", "_branches/pr_7/"]
    assert [e.container for e in ledger.live_entries(PR_7, store="lake")] == ["bucket"]
    assert [e.name for e in ledger.live_entries(store="warehouse")] == [
        "analytics__pr_7",
        "analytics__pr_8",
    ]


def test_same_name_in_another_container_is_another_object(ledger: Ledger) -> None:
    def prefix(bucket: str) -> LedgerEntry:
        return LedgerEntry(PR_7, "lake", "s3", ObjectKind.PREFIX, "_branches/pr_7/", bucket)

    assert ledger.record(prefix("a")) is True
    assert ledger.record(prefix("b")) is True
    assert len(ledger.live_entries(PR_7)) == 2


def test_mark_dropped_then_recreate(ledger: Ledger) -> None:
    entry = schema_entry(PR_7, "analytics__pr_7")
    other = schema_entry(PR_8, "analytics__pr_8")
    ledger.record(entry)
    ledger.record(other)

    assert ledger.mark_dropped([entry]) == 1
    assert ledger.mark_dropped([entry]) == 0  # already dropped
    assert ledger.live_entries(PR_7) == []
    assert ledger.namespaces() == {PR_8}

    assert ledger.record(entry) is True  # the branch deployed again
    assert [e.name for e in ledger.live_entries(PR_7)] == ["analytics__pr_7"]
    with ledger.engine.connect() as conn:
        history = conn.execute(
            sa.select(ledger.table.c.dropped_at).where(ledger.table.c.namespace == "pr_7")
        ).all()
    assert sorted(row.dropped_at is None for row in history) == [False, True]


def test_concurrent_recorders_leave_one_live_row(url: str) -> None:
    barrier = threading.Barrier(4)
    results: list[bool] = []
    ledgers = [Ledger.from_url(url) for _ in range(4)]
    ledgers[0].ensure()
    entry = schema_entry(PR_7, "analytics__pr_7")

    def work(ledger: Ledger) -> None:
        barrier.wait()
        results.append(ledger.record(entry))

    threads = [threading.Thread(target=work, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert any(results)
        assert len(ledgers[0].live_entries(PR_7)) == 1
    finally:
        for ledger in ledgers:
            ledger.close()


def test_sqlite_control_schema_is_a_sibling_file(sqlite_url: str, tmp_path: Path) -> None:
    ledger = Ledger.from_url(sqlite_url)
    try:
        ledger.record(schema_entry(PR_7, "main__pr_7"))
    finally:
        ledger.close()
    assert (tmp_path / "warehouse.sqlite.dagster_branch.sqlite").exists()
    reopened = Ledger.from_url(sqlite_url)
    try:
        assert reopened.namespaces() == {PR_7}
    finally:
        reopened.close()


def test_without_control_schema_the_table_lives_in_the_default_schema(url: str) -> None:
    ledger = Ledger.from_url(url, control_schema=None)
    try:
        ledger.record(schema_entry(PR_7, "analytics__pr_7"))
        with ledger.engine.connect() as conn:
            assert sa.inspect(conn).has_table(LEDGER_TABLE)
        assert ledger.namespaces() == {PR_7}
    finally:
        ledger.close()


def test_a_run_writing_again_refreshes_last_activity_at_most_once_per_touch_every(
    ledger: Ledger,
) -> None:
    """``stale_after`` must see a namespace that is still written to, not only when it began."""
    month_ago = datetime.now(timezone.utc) - timedelta(days=30)
    entry = schema_entry(PR_7, "analytics__pr_7", created_at=month_ago)
    assert ledger.record(entry) is True
    assert ledger.last_activity(PR_7) == month_ago

    before = datetime.now(timezone.utc)
    assert ledger.record(schema_entry(PR_7, "analytics__pr_7")) is False  # a later run
    touched = ledger.last_activity(PR_7)
    assert touched is not None and before <= touched <= datetime.now(timezone.utc)
    [stored] = ledger.live_entries(PR_7)
    assert stored.created_at == month_ago  # provenance kept

    statements = StatementCounter(ledger.engine)
    assert ledger.record(schema_entry(PR_7, "analytics__pr_7")) is False  # same hour: no UPDATE
    assert ledger.last_activity(PR_7) == touched
    assert statements.statements, "the counter sees the ledger's engine"
    assert not [s for s in statements.statements if s.lstrip().upper().startswith("UPDATE")]
    assert ledger.last_activity(PR_8) is None
