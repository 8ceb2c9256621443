"""The same assets, run in production, two branch deployments and locally, on real warehouses."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import EnvVar, asset, materialize
from warehouse_support import Backend, materialize_assets

from dagster_branch.io_managers import BranchTableIOManager
from dagster_branch.ledger import Ledger
from dagster_branch.naming import Namespace
from dagster_branch.resources import BranchDatabaseResource
from tests.support.deployments import Deploy


def production_rows(built_by: str = "production") -> list[tuple[object, ...]]:
    return [(1, 10.5, built_by), (2, 20.0, built_by), (3, 7.25, built_by)]


def test_same_assets_land_in_four_places(backend: Backend, deploy: Deploy) -> None:
    warehouse = BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema)
    base = backend.base_schema

    deploy("production")
    materialize_assets(warehouse)
    before = backend.read(base, "orders")
    assert before == production_rows()

    for kind, pr in (("branch", 1), ("branch", 2), ("local", None)):
        deploy(kind, pr=pr)
        materialize_assets(warehouse)

    assert backend.read(base, "orders") == before  # production untouched by three other runs
    for key in ("pr_1", "pr_2", Namespace.for_developer("alice").key):
        assert backend.read(f"{base}__{key}", "orders") == production_rows(key)
        [(n, total, orders_from, built_by)] = backend.read(f"{base}__{key}", "order_totals")
        assert (n, total, orders_from, built_by) == (3, 37.75, key, key)


def test_read_table_falls_back_to_production(backend: Backend, deploy: Deploy) -> None:
    warehouse = BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema)
    deploy("production")
    materialize_assets(warehouse)

    deploy("branch", pr=7)
    materialize_assets(warehouse, selection=["order_totals"])  # the branch did not rebuild orders

    branch = f"{backend.base_schema}__pr_7"
    assert backend.tables(branch) == {"order_totals"}
    [(n, _total, orders_from, built_by)] = backend.read(branch, "order_totals")
    assert (n, orders_from, built_by) == (3, "production", "pr_7")

    probe = BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema)
    try:
        assert probe.read_table("orders").schema == backend.base_schema
        assert not probe.read_table("orders").is_branch
        assert probe.read_table("order_totals").schema == branch
        assert probe.read_table("order_totals").is_branch
    finally:
        probe.close()


def test_ledger_rows_and_schema_markers(backend: Backend, deploy: Deploy) -> None:
    warehouse = BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema)
    for pr in (1, 2):
        deploy("branch", pr=pr)
        materialize_assets(warehouse)
        materialize_assets(warehouse)  # a second run records nothing new

    ledger = Ledger.from_url(backend.url)
    try:
        entries = ledger.live_entries(store="warehouse")
    finally:
        ledger.close()
    assert [(e.namespace.key, e.kind.value, e.name) for e in entries] == [
        ("pr_1", "schema", f"{backend.base_schema}__pr_1"),
        ("pr_2", "schema", f"{backend.base_schema}__pr_2"),
    ]
    first = entries[0]
    assert (first.backend, first.pull_request_id, first.branch) == (
        backend.name,
        "1",
        "feature/pr-1",
    )
    assert (first.deployment_name, first.git_sha) == ("5f2c0a9e1b7d1", "a1b2c3d4e5f6")
    assert first.run_id and first.created_at is not None

    if backend.name == "postgresql":  # the only one of the three with COMMENT ON SCHEMA
        engine = sa.create_engine(backend.url)
        try:
            with engine.connect() as conn:
                comment = conn.execute(
                    sa.text(
                        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
                        "WHERE nspname = :name"
                    ),
                    {"name": "analytics__pr_1"},
                ).scalar_one()
        finally:
            engine.dispose()
        assert comment == (
            "dagster-branch namespace=pr_1 owner=default pull_request=1 branch=feature/pr-1 "
            "deployment=5f2c0a9e1b7d1 git_sha=a1b2c3d4e5f6"
        )


@pytest.mark.parametrize("shared", ["analytics_dev", "main"])
def test_table_prefix_strategy(backend: Backend, deploy: Deploy, shared: str) -> None:
    if backend.name == "sqlite" and shared == "main":
        shared = "dev"  # main is production on SQLite here
    if backend.name == "postgresql" and shared == "main":
        shared = "public"
    warehouse = BranchDatabaseResource(
        url=backend.url,
        base_schema=backend.base_schema,
        strategy="table_prefix",
        branch_schema=shared,
    )
    deploy("production")
    materialize_assets(warehouse)
    before = backend.read(backend.base_schema, "orders")

    deploy("branch", pr=1)
    materialize_assets(warehouse)
    deploy("branch", pr=2)
    materialize_assets(warehouse, selection=["order_totals"])

    assert backend.read(backend.base_schema, "orders") == before
    assert {"pr_1__orders", "pr_1__order_totals", "pr_2__order_totals"} <= backend.tables(shared)
    assert "pr_2__orders" not in backend.tables(shared)
    assert backend.read(shared, "pr_1__orders") == production_rows("pr_1")
    [(_, _, orders_from, built_by)] = backend.read(shared, "pr_2__order_totals")
    assert (orders_from, built_by) == ("production", "pr_2")  # read fell back to production

    ledger = Ledger.from_url(backend.url)
    try:
        recorded = {(e.kind.value, e.container, e.name) for e in ledger.live_entries()}
    finally:
        ledger.close()
    assert recorded == {
        ("table", shared, "pr_1__orders"),
        ("table", shared, "pr_1__order_totals"),
        ("table", shared, "pr_2__order_totals"),
    }


def test_second_ensure_namespace_adds_nothing(backend: Backend, deploy: Deploy) -> None:
    deploy("branch", pr=5)
    for _ in range(2):  # two runs: two resource instances
        warehouse = BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema)
        try:
            warehouse.ensure_namespace()
            warehouse.ensure_namespace()
        finally:
            warehouse.close()
    ledger = Ledger.from_url(backend.url)
    try:
        assert [e.name for e in ledger.live_entries(Namespace.parse("pr_5"))] == [
            f"{backend.base_schema}__pr_5"
        ]
    finally:
        ledger.close()


def test_branch_url_is_the_branch_role(postgres_url: str, deploy: Deploy) -> None:
    """Branch deployments connect with branch_url, so the branch role owns what it creates."""
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE ROLE branch_writer LOGIN"))
        database = sa.make_url(postgres_url).database
        conn.execute(sa.text(f'GRANT CREATE ON DATABASE "{database}" TO branch_writer'))
        conn.execute(sa.text("CREATE SCHEMA analytics"))
        conn.execute(sa.text("GRANT USAGE ON SCHEMA analytics TO branch_writer"))
    branch_url = sa.make_url(postgres_url).set(username="branch_writer", password="s3cret-branch")
    warehouse = BranchDatabaseResource(
        url=postgres_url,
        branch_url=branch_url.render_as_string(hide_password=False),
        base_schema="analytics",
    )
    try:
        deploy("production")
        materialize_assets(warehouse)
        with admin.begin() as conn:
            conn.execute(sa.text("GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO branch_writer"))
        deploy("branch", pr=3)
        materialize_assets(warehouse, selection=["order_totals"])
        with admin.connect() as conn:
            owners = dict(
                conn.execute(
                    sa.text(
                        "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
                        "WHERE nspname IN ('analytics__pr_3', 'dagster_branch')"
                    )
                ).all()
            )
        assert owners == {"analytics__pr_3": "branch_writer", "dagster_branch": "branch_writer"}
    finally:
        admin.dispose()


def test_url_from_envvar_with_a_different_value_per_deployment(
    tmp_path: Path, deploy: Deploy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster+ can give WAREHOUSE_URL another value in branch deployments; local_url wins
    locally."""
    production = Backend("duckdb", f"duckdb:///{tmp_path / 'prod.duckdb'}", "analytics")
    branches = Backend("duckdb", f"duckdb:///{tmp_path / 'branches.duckdb'}", "analytics")
    laptop = Backend("duckdb", f"duckdb:///{tmp_path / 'laptop.duckdb'}", "analytics")
    warehouse = BranchDatabaseResource(
        url=EnvVar("WAREHOUSE_URL"), local_url=laptop.url, base_schema="analytics"
    )
    deploy("production")
    monkeypatch.setenv("WAREHOUSE_URL", production.url)
    materialize_assets(warehouse)
    deploy("branch", pr=4)
    monkeypatch.setenv("WAREHOUSE_URL", branches.url)
    materialize_assets(warehouse)
    deploy("local")
    materialize_assets(warehouse)

    assert production.read("analytics", "orders") == production_rows()
    assert branches.tables("analytics__pr_4") == {"orders", "order_totals"}
    alice = f"analytics__{Namespace.for_developer('alice')}"
    assert laptop.tables(alice) == {"orders", "order_totals"}
    assert "analytics__pr_4" not in production.schemas()
    assert alice not in branches.schemas()


def test_two_runs_of_one_branch_racing_to_create_its_schema(
    backend: Backend, deploy: Deploy
) -> None:
    deploy("branch", pr=6)
    resources = [
        BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema) for _ in range(4)
    ]
    barrier = threading.Barrier(len(resources))
    errors: list[BaseException] = []

    def start(resource: BranchDatabaseResource) -> None:
        barrier.wait()
        try:
            resource.ensure_namespace()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(r,)) for r in resources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for resource in resources:
        resource.close()
    assert errors == []
    assert f"{backend.base_schema}__pr_6" in backend.schemas() or backend.name == "sqlite"
    ledger = Ledger.from_url(backend.url)
    try:
        assert len(ledger.live_entries(Namespace.parse("pr_6"))) == 1
    finally:
        ledger.close()


def test_io_manager_names_tables_from_metadata_and_loads_rows(
    duckdb_url: str, deploy: Deploy
) -> None:
    @asset(metadata={"dagster_branch/table": "Daily Orders"})
    def daily() -> list[dict[str, object]]:
        return [{"day": "2024-08-28", "orders": 3, "late": False}, {"day": "2024-08-29"}]

    @asset
    def days(daily: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{"n": len(daily), "first": daily[0]["day"], "missing": daily[1]["orders"]}]

    deploy("branch", pr=8)
    warehouse = BranchDatabaseResource(url=duckdb_url, base_schema="analytics")
    result = materialize(
        [daily, days], resources={"io_manager": BranchTableIOManager(database=warehouse)}
    )
    assert result.success
    [event] = result.asset_materializations_for_node("daily")
    assert event.metadata["dagster/table_name"].value == "analytics__pr_8.Daily Orders"
    backend = Backend("duckdb", duckdb_url, "analytics")
    assert backend.tables("analytics__pr_8") == {"Daily Orders", "days"}
    assert backend.read("analytics__pr_8", "days") == [(2, "2024-08-28", None)]
