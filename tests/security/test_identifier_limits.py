"""Identifier truncation (issue class 4): a name longer than the server's limit must never be
cut short into production's or another branch's name.

PostgreSQL truncates identifiers longer than ``max_identifier_length`` (63 bytes) silently. A
configured ``max_identifier_bytes`` above it made a long branch schema name truncate into the
production schema: the branch wrote production, and its cleanup dropped it.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from dagster_branch import BranchTableIOManager, DagsterBranchConfigError, Namespace
from dagster_branch.dialects import capabilities_for, server_identifier_limit
from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import Ledger, LedgerEntry
from dagster_branch.naming import schema_name
from tests.faults.world import run_cleanup, warehouse
from tests.support.deployments import Deploy
from tests.support.snapshots import database_snapshot

# 63 bytes, PostgreSQL's limit: "<base>__pr_7" is 69 bytes, and truncates back to "<base>".
PR_7 = Namespace.parse("pr_7")
LONG_BASE = "analytics_" + "x" * 53


def _orders(built_by: str) -> dg.AssetsDefinition:
    @dg.asset(name="orders")
    def orders() -> pd.DataFrame:
        return pd.DataFrame({"order_id": [1, 2], "built_by": [built_by, built_by]})

    return orders


def _materialize(
    url: str, built_by: str, *, raise_on_error: bool = False, **options: object
) -> dg.ExecuteInProcessResult:
    resource = warehouse(url, base_schema=LONG_BASE, **options)
    try:
        return dg.materialize(
            [_orders(built_by)],
            resources={"io_manager": BranchTableIOManager(database=resource)},
            raise_on_error=raise_on_error,
        )
    finally:
        resource.close()


def test_the_server_limit_is_read_from_postgresql(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            limit = server_identifier_limit(
                capabilities_for(engine.dialect), conn.connection.dbapi_connection
            )
    finally:
        engine.dispose()
    assert limit == 63


def test_a_limit_above_postgresqls_is_refused_and_production_is_never_written(
    postgres_url: str, deploy: Deploy
) -> None:
    deploy("production")
    assert _materialize(postgres_url, "production").success
    production = database_snapshot(postgres_url)
    assert list(production) == [LONG_BASE]
    # Without the check, this name reached the server and came back as the production schema.
    assert len(schema_name(LONG_BASE, PR_7, max_length=100).encode()) == 69

    deploy("branch", pr=7)
    with pytest.raises(dg.DagsterResourceFunctionError) as raised:  # the IO manager's way
        _materialize(postgres_url, "pr_7", raise_on_error=True, max_identifier_bytes=100)
    assert isinstance(raised.value.__cause__, DagsterBranchConfigError)
    assert "max_identifier_bytes=100 is above the postgresql limit of 63 bytes" in str(
        raised.value.__cause__
    )
    branch = warehouse(postgres_url, base_schema=LONG_BASE, max_identifier_bytes=100)
    with (  # the documented raw-SQL way
        pytest.raises(DagsterBranchConfigError, match="above the postgresql limit"),
        branch.get_connection() as conn,
    ):
        conn.execute(sa.text(f"CREATE TABLE {branch.table('refunds')} AS SELECT 1 AS id"))
    branch.close()

    assert database_snapshot(postgres_url) == production  # production's rows, no new table


def test_the_cleanup_refuses_a_limit_above_the_servers_too(
    postgres_url: str, deploy: Deploy
) -> None:
    deploy("production")
    assert _materialize(postgres_url, "production").success
    production = database_snapshot(postgres_url)
    # The row a branch wrote with that setting before it was refused: a name the server cuts
    # back to the production schema's.
    ledger = Ledger.from_url(postgres_url)
    truncating = schema_name(LONG_BASE, PR_7, max_length=100)
    ledger.record(LedgerEntry(PR_7, "warehouse", "postgresql", ObjectKind.SCHEMA, truncating))
    ledger.close()

    janitor = warehouse(postgres_url, base_schema=LONG_BASE, max_identifier_bytes=100)
    result = run_cleanup({"warehouse": janitor}, "pr_7")

    assert not result.success
    [init_failure] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    error = init_failure.event_specific_data.error  # type: ignore[union-attr]
    assert "max_identifier_bytes=100 is above the postgresql limit" in error.message
    assert database_snapshot(postgres_url) == production  # not dropped


def test_a_default_limit_keeps_long_names_distinct_and_out_of_production(
    postgres_url: str, deploy: Deploy
) -> None:
    deploy("production")
    assert _materialize(postgres_url, "production").success
    for pr in (7, 8):
        deploy("branch", pr=pr)
        assert _materialize(postgres_url, f"pr_{pr}").success

    schemas = set(database_snapshot(postgres_url))
    expected = {schema_name(LONG_BASE, Namespace.parse(f"pr_{pr}"), max_length=63) for pr in (7, 8)}
    assert schemas == {LONG_BASE, *expected} and len(expected) == 2
    assert all(len(name.encode()) <= 63 for name in schemas)


def test_a_configured_limit_within_the_servers_is_accepted(
    postgres_url: str, deploy: Deploy
) -> None:
    deploy("branch", pr=7)
    assert _materialize(postgres_url, "pr_7", max_identifier_bytes=40).success
    [schema] = set(database_snapshot(postgres_url))
    assert len(schema.encode()) <= 40


@pytest.mark.parametrize("dialect", ["duckdb", "snowflake", "bigquery"])
def test_a_limit_above_another_dialects_documented_one_is_refused(
    dialect: str, duckdb_url: str
) -> None:
    from dagster_branch.dialects import check_identifier_limit

    caps = capabilities_for(dialect)
    assert check_identifier_limit(caps, caps.max_identifier_bytes) == caps.max_identifier_bytes
    with pytest.raises(DagsterBranchConfigError, match=f"above the {dialect} limit"):
        check_identifier_limit(caps, caps.max_identifier_bytes + 1)
    # A dialect dagster-branch does not know keeps the value the user gives.
    assert check_identifier_limit(capabilities_for("mssql"), 128) == 128
