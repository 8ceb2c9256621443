"""Snowflake through the real snowflake-connector-python and snowflake-sqlalchemy, served by the
fakesnow emulator (tests/conftest.py starts it once per run; each test has its own database).

What the emulator cannot show is not pretended: it accepts ``COMMENT ON SCHEMA`` but stores
nothing, so no test reads a schema marker back here; the ledger is the record.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from warehouse_support import materialize_assets

from dagster_branch.errors import DagsterBranchConfigError, DagsterBranchError
from dagster_branch.ledger import Ledger
from dagster_branch.resources import BranchDatabaseResource
from tests.support.deployments import Deploy
from tests.support.servers import SnowflakeDatabase


def warehouse_on(db: SnowflakeDatabase, **options: object) -> BranchDatabaseResource:
    return BranchDatabaseResource(
        url=db.url, connect_args=db.connect_args, base_schema="analytics", **options
    )


def rows(db: SnowflakeDatabase, schema: str, table: str) -> list[tuple[object, ...]]:
    engine = db.engine()
    try:
        with engine.connect() as conn:
            query = sa.select(sa.literal_column("*")).select_from(sa.table(table, schema=schema))
            return sorted(tuple(row) for row in conn.execute(query))
    finally:
        engine.dispose()


def tables(db: SnowflakeDatabase, schema: str) -> set[str]:
    engine = db.engine()
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names(schema=schema))
    finally:
        engine.dispose()


def test_branch_writes_its_schema_and_reads_production_where_it_built_nothing(
    snowflake_database: SnowflakeDatabase, deploy: Deploy
) -> None:
    db = snowflake_database
    deploy("production")
    materialize_assets(warehouse_on(db))
    production = rows(db, "analytics", "orders")
    assert [r[0] for r in production] == [1, 2, 3]

    deploy("branch", pr=7)
    materialize_assets(warehouse_on(db), selection=["order_totals"])  # PR 7 did not rebuild orders

    assert rows(db, "analytics", "orders") == production
    assert tables(db, "analytics__pr_7") == {"order_totals"}
    [(n, total, orders_from, built_by)] = rows(db, "analytics__pr_7", "order_totals")
    assert (n, total, orders_from, built_by) == (3, 37.75, "production", "pr_7")

    materialize_assets(warehouse_on(db))  # now PR 7 builds both, and reads its own orders
    [(_, _, orders_from, _)] = rows(db, "analytics__pr_7", "order_totals")
    assert orders_from == "pr_7"
    assert rows(db, "analytics", "orders") == production


def test_the_ledger_is_the_record_of_the_branch_schema(
    snowflake_database: SnowflakeDatabase, deploy: Deploy
) -> None:
    db = snowflake_database
    deploy("branch", pr=7)
    materialize_assets(warehouse_on(db))
    materialize_assets(warehouse_on(db))  # a second run records nothing new

    engine = db.engine()
    try:
        entries = Ledger(engine).live_entries(store="warehouse")
    finally:
        engine.dispose()
    assert [(e.namespace.key, e.kind.value, e.name, e.backend) for e in entries] == [
        ("pr_7", "schema", "analytics__pr_7", "snowflake")
    ]
    assert (entries[0].pull_request_id, entries[0].branch) == ("7", "feature/pr-7")


def test_production_may_not_write_a_branch_schema_on_snowflake(
    snowflake_database: SnowflakeDatabase, deploy: Deploy
) -> None:
    deploy("branch", pr=7)
    branch = warehouse_on(snowflake_database)
    assert branch.table("orders").schema == "analytics__pr_7"
    branch.close()
    deploy("production")
    production = warehouse_on(snowflake_database)
    try:
        assert production.table("orders").quoted == "analytics.orders"
        with pytest.raises(Exception, match="production writes only to base_schema"):
            production.guard_write("analytics__pr_7", "orders")
    finally:
        production.close()


def test_an_engine_that_cannot_be_created_says_the_drivers_reason(
    snowflake_database: SnowflakeDatabase, deploy: Deploy
) -> None:
    """snowflake-sqlalchemy refuses a host in the URL; the message says so, password hidden."""
    deploy("production")
    port = snowflake_database.connect_args["port"]
    url = f"snowflake://fake:Pw-5ecret-in-url@fakesnow/db?host=127.0.0.1&port={port}"
    warehouse = BranchDatabaseResource(url=url, base_schema="analytics")
    with pytest.raises(DagsterBranchConfigError) as caught:
        warehouse.get_engine()
    message = str(caught.value)
    assert "'host' cannot be set via the URL query string" in message
    assert "connect_args" in message
    assert "Pw-5ecret-in-url" not in message and "***" in message


def test_connect_args_secrets_never_surface(
    snowflake_database: SnowflakeDatabase, deploy: Deploy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret given in connect_args (as EnvVar) reaches the driver but not repr, errors or
    the URL shown; an unset variable is named, never guessed."""
    from dagster import EnvVar

    deploy("production")
    secret = "Sf-Pr1vate-Key-Passphrase"
    monkeypatch.setenv("SNOWFLAKE_KEY_PASSPHRASE", secret)
    bad_port = {**snowflake_database.connect_args, "port": 1, "login_timeout": 2}
    warehouse = BranchDatabaseResource(
        url=snowflake_database.url,
        base_schema="analytics",
        connect_args={**bad_port, "private_key_file_pwd": EnvVar("SNOWFLAKE_KEY_PASSPHRASE")},
    )
    assert warehouse.resolved_connect_args()["private_key_file_pwd"] == secret
    assert secret not in repr(warehouse) and secret not in warehouse.display_url
    assert warehouse.redact(f"driver said: bad passphrase {secret}") == (
        "driver said: bad passphrase ***"
    )
    with pytest.raises(DagsterBranchError, match="Could not create schema") as caught:
        warehouse.ensure_namespace()  # nothing listens on port 1: the driver's error
    assert secret not in str(caught.value)

    monkeypatch.delenv("SNOWFLAKE_KEY_PASSPHRASE")
    with pytest.raises(DagsterBranchConfigError, match="SNOWFLAKE_KEY_PASSPHRASE, which is not"):
        warehouse.resolved_connect_args()
