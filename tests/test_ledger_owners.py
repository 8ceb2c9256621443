"""Owners in the ledger (issue 13, class 2), on a real PostgreSQL server, DuckDB and SQLite files.

Two code locations sharing one ledger each see, touch and drop only their own rows; one cannot
record an object the other recorded; a ledger made before owners existed is migrated in place and
its rows belong to no one until claimed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dagster_branch.errors import OwnershipConflictError
from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import LEDGER_TABLE, UNOWNED_SOURCE, Ledger, LedgerEntry
from dagster_branch.naming import Namespace
from dagster_branch.ownership import Owner

PR_7 = Namespace.parse("pr_7")
ETL = Owner("etl", "acme/etl")
ML = Owner("ml", "acme/ml")


@pytest.fixture(params=["postgres_url", "duckdb_url", "sqlite_url"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture
def ledgers(url: str) -> Iterator[tuple[Ledger, Ledger]]:
    etl, ml = Ledger.from_url(url, owner=ETL), Ledger.from_url(url, owner=ML)
    try:
        yield etl, ml
    finally:
        etl.close()
        ml.close()


def entry(name: str, namespace: Namespace = PR_7) -> LedgerEntry:
    return LedgerEntry(namespace, "warehouse", "test", ObjectKind.SCHEMA, name)


def test_two_locations_sharing_a_ledger_see_and_drop_only_their_own_rows(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    etl, ml = ledgers
    etl.record(entry("analytics__pr_7"))
    ml.record(entry("marts__pr_7"))

    assert [(e.name, e.owner, e.repository) for e in etl.live_entries(PR_7)] == [
        ("analytics__pr_7", "etl", "acme/etl")
    ]
    assert [e.name for e in ml.live_entries(PR_7)] == ["marts__pr_7"]
    assert etl.namespaces() == ml.namespaces() == {PR_7}

    # etl's cleanup marks what it removed; ml's row with the same namespace stays live.
    assert etl.mark_dropped([entry("analytics__pr_7"), entry("marts__pr_7")]) == 1
    assert etl.live_entries(PR_7) == [] and etl.namespaces() == set()
    assert etl.last_activity(PR_7) is None
    assert [e.name for e in ml.live_entries(PR_7)] == ["marts__pr_7"]
    assert ml.last_activity(PR_7) is not None


def test_recording_an_object_another_owner_recorded_fails_naming_both(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    etl, ml = ledgers
    etl.record(entry("analytics__pr_7"))

    with pytest.raises(OwnershipConflictError) as raised:
        ml.record(entry("analytics__pr_7"))
    message = str(raised.value)
    assert "owner 'etl' (repository acme/etl)" in message
    assert "owner 'ml' (repository acme/ml)" in message
    assert "base_schema" in message and "branch_root" in message
    assert ml.live_entries() == []
    # Once etl's row is dropped, the name is free again.
    etl.mark_dropped([entry("analytics__pr_7")])
    assert ml.record(entry("analytics__pr_7"))


def test_one_location_from_two_repositories_conflicts_but_not_with_an_unknown_one(
    url: str,
) -> None:
    first = Ledger.from_url(url, owner=Owner("etl", "acme/etl"))
    other_repo = Ledger.from_url(url, owner=Owner("etl", "acme/other"))
    production = Ledger.from_url(url, owner=Owner("etl", None))  # no DAGSTER_CLOUD_GIT_REPO
    try:
        first.record(entry("analytics__pr_7"))
        with pytest.raises(OwnershipConflictError, match="acme/other"):
            other_repo.record(entry("analytics__pr_7"))
        assert [e.name for e in production.live_entries()] == ["analytics__pr_7"]
        assert not production.record(entry("analytics__pr_7"))  # the same owner's live row
    finally:
        for ledger in (first, other_repo, production):
            ledger.close()


def _old_ledger(url: str) -> None:
    """The ledger table as the release before owners created it, with one live row."""
    engine = sa.create_engine(url)
    old = Ledger(engine, owner=ETL)
    columns = [c for c in old.table.columns if c.name not in {"owner", "repository"}]
    table = sa.Table(LEDGER_TABLE, sa.MetaData(), *(c.copy() for c in columns), schema=None)
    try:
        old.ensure()  # creates the schema (and on SQLite attaches its file) ...
        with engine.begin() as conn:  # ... then the table is replaced by the old shape
            conn.execute(sa.text(f"DROP TABLE {old._where()}"))
            table.schema = "dagster_branch"
            table.create(conn)
            conn.execute(
                table.insert().values(
                    id="old1",
                    namespace="pr_7",
                    store="warehouse",
                    backend="test",
                    kind="schema",
                    name="analytics__pr_7",
                    created_at=sa.func.now(),
                )
            )
    finally:
        engine.dispose()


def test_a_ledger_made_before_owners_is_migrated_and_its_rows_belong_to_no_one_until_claimed(
    url: str,
) -> None:
    _old_ledger(url)
    etl = Ledger.from_url(url, owner=ETL)
    ml = Ledger.from_url(url, owner=ML)
    try:
        # Reading adds the two columns; the old row is nobody's: not listed, not cleaned ...
        assert etl.live_entries() == [] and etl.namespaces() == set()
        unowned = etl.live_entries(include_unowned=True)
        assert [(e.name, e.owner) for e in unowned] == [("analytics__pr_7", None)]
        assert unowned[0].to_owned().found_in == {UNOWNED_SOURCE}
        # ... and it does not block anyone from writing.
        assert ml.record(entry("marts__pr_7"))
        # Claimed by etl, it is etl's record: listed and removable by etl only.
        assert etl.claim_unowned(store="warehouse") == 1
        assert [e.name for e in etl.live_entries()] == ["analytics__pr_7"]
        assert [e.name for e in ml.live_entries()] == ["marts__pr_7"]
        assert etl.claim_unowned() == 0
    finally:
        etl.close()
        ml.close()
