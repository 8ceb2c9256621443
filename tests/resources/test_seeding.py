"""seed_tables: a branch starts with copies of production tables (CLONE on Snowflake, a data copy
on PostgreSQL, DuckDB and SQLite), never copied over once the branch has them, reported in the
run's log and the materialization metadata, removed by the cleanup, production only read."""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg
import pytest
from warehouse_support import ASSETS, Backend

from dagster_branch.dialects import capabilities_for
from dagster_branch.io_managers import BranchTableIOManager
from dagster_branch.ledger import Ledger
from dagster_branch.naming import Namespace
from dagster_branch.resources import BranchDatabaseResource
from tests.faults.world import run_log_messages
from tests.support.deployments import Deploy
from tests.support.servers import SnowflakeDatabase

LOG = logging.getLogger("test.seeding")


@pytest.fixture
def snowflake(snowflake_database: SnowflakeDatabase) -> Backend:
    db = snowflake_database
    return Backend("snowflake", db.url, "analytics", connect_args=db.connect_args)


def warehouse(backend: Backend, **options: Any) -> BranchDatabaseResource:
    return BranchDatabaseResource(
        url=backend.url,
        connect_args=backend.connect_args,
        base_schema=backend.base_schema,
        **options,
    )


def run(
    backend: Backend, selection: list[str] | None = None, **options: Any
) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    resource = warehouse(backend, **options)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            ASSETS,
            resources={
                "warehouse": resource,
                "io_manager": BranchTableIOManager(database=resource),
            },
            selection=selection,
            instance=instance,
        )
        assert result.success
        return result, run_log_messages(instance, result)


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in materialization.metadata.items()}


def snapshot(backend: Backend, schema: str) -> dict[str, list[tuple[object, ...]]]:
    return {table: backend.read(schema, table) for table in sorted(backend.tables(schema))}


def check_seeding(backend: Backend, deploy: Deploy) -> None:
    base, branch = backend.base_schema, f"{backend.base_schema}__pr_7"
    method = "clone" if capabilities_for(backend.name).clone_tables else "copy"
    deploy("production")
    run(backend)
    production = snapshot(backend, base)

    # PR 7 rebuilds order_totals only; its first write seeds orders from production.
    deploy("branch", pr=7)
    result, log = run(backend, ["order_totals"], seed_tables=["orders", "not_in_production"])
    assert backend.tables(branch) == {"orders", "order_totals"}
    assert backend.read(branch, "orders") == production["orders"]
    seeded = metadata_of(result, "order_totals")
    [orders, missing] = [record.data for record in seeded["dagster_branch/seeded"].records]
    assert (orders["table"], orders["source"], orders["method"], orders["rows"]) == (
        f"{branch}.orders",
        f"{base}.orders",
        method,
        3,
    )
    assert missing["method"] == "missing"
    assert seeded["dagster_branch/seeded_rows"] == 3
    assert seeded["dagster_branch/seed_seconds"] >= 0
    assert any(
        line.startswith(f"Seeded {branch}.orders from {base}.orders by {method}: 3 rows in ")
        for line in log
    ), log

    # Production moves on; the branch keeps its copy (never refreshed over) and reads it.
    backend.execute(f"INSERT INTO {base}.orders VALUES (4, 1.0, 'production')")
    result, _ = run(backend, ["order_totals"], seed_tables=["orders"])
    [kept] = metadata_of(result, "order_totals")["dagster_branch/seeded"].records
    assert kept.data["method"] == "kept"
    assert backend.read(branch, "orders") == production["orders"]
    [(n, _total, _from, _by)] = backend.read(branch, "order_totals")
    assert n == 3

    # What the branch wrote itself is never copied over either.
    run(backend, ["orders"], seed_tables=["orders"])
    run(backend, ["orders"], seed_tables=["orders"])
    assert {row[2] for row in backend.read(branch, "orders")} == {"pr_7"}
    assert backend.tables(base) == set(production)  # production only read
    assert backend.read(base, "order_totals") == production["order_totals"]

    # Seeded tables go with the namespace.
    deploy("production")
    janitor = warehouse(backend)
    try:
        objects = janitor.objects_of(Namespace.parse("pr_7"))
        assert [(o.kind.value, o.name) for o in objects] == [("schema", branch)]
        [removed] = janitor.remove_objects(objects, dry_run=False, log=LOG)
        assert removed.removed and removed.objects == 2
        assert janitor.objects_of(Namespace.parse("pr_7")) == []
    finally:
        janitor.close()
    assert branch not in backend.schemas()


def test_seeding_on_each_live_backend(backend: Backend, deploy: Deploy) -> None:
    check_seeding(backend, deploy)


def test_seeding_clones_on_snowflake(snowflake: Backend, deploy: Deploy) -> None:
    check_seeding(snowflake, deploy)


def test_production_seeds_nothing(duckdb_url: str, deploy: Deploy) -> None:
    backend = Backend("duckdb", duckdb_url, "analytics")
    deploy("production")
    result, log = run(backend, seed_tables=["orders"])
    assert "dagster_branch/seeded" not in metadata_of(result, "orders")
    assert not any(line.startswith("Seeded") for line in log)


def test_table_prefix_seeds_prefixed_tables_and_records_them(
    duckdb_url: str, deploy: Deploy
) -> None:
    backend = Backend("duckdb", duckdb_url, "analytics")
    options = {"strategy": "table_prefix", "branch_schema": "development"}
    deploy("production")
    run(backend, **options)
    deploy("branch", pr=7)
    run(backend, ["order_totals"], seed_tables=["orders"], **options)
    assert backend.tables("development") == {"pr_7__orders", "pr_7__order_totals"}
    assert backend.read("development", "pr_7__orders") == backend.read("analytics", "orders")
    ledger = Ledger.from_url(duckdb_url)
    try:
        recorded = {e.name for e in ledger.live_entries(Namespace.parse("pr_7"))}
    finally:
        ledger.close()
    assert recorded == {"pr_7__orders", "pr_7__order_totals"}
