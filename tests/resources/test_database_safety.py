"""Branches cannot write to production, unusual names are quoted, secrets stay secret."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from dagster import asset, materialize
from warehouse_support import ASSETS, Backend

from dagster_branch.errors import (
    DagsterBranchConfigError,
    DagsterBranchError,
    NamespaceViolationError,
)
from dagster_branch.io_managers import BranchTableIOManager
from dagster_branch.resources import BranchDatabaseResource
from tests.support.deployments import Deploy

PASSWORD = "hunter2-Secret-Pw"


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it was raised from (Dagster wraps resource errors)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"protected_schemas": ["analytics__pr_1"]}, "listed in protected_schemas"),
        ({"protected_schemas": ["ANALYTICS__PR_1"]}, "listed in protected_schemas"),
        (
            {"strategy": "table_prefix", "branch_schema": "analytics"},
            "the production schema",
        ),
        (
            {"strategy": "table_prefix", "branch_schema": "dev", "protected_schemas": ["dev"]},
            "listed in protected_schemas",
        ),
        ({"strategy": "table_prefix"}, "branch_schema"),
        ({"control_schema": "analytics"}, "control_schema 'analytics' is the production schema"),
        (
            {"strategy": "table_prefix", "branch_schema": "dagster_branch"},
            "the ledger's control_schema",
        ),
    ],
)
def test_configurations_that_would_write_to_production_fail_at_setup(
    duckdb_url: str, deploy: Deploy, config: dict[str, object], message: str
) -> None:
    deploy("branch", pr=1)
    warehouse = BranchDatabaseResource(url=duckdb_url, base_schema="analytics", **config)
    with pytest.raises(Exception) as raised:
        materialize(
            ASSETS,
            resources={
                "warehouse": warehouse,
                "io_manager": BranchTableIOManager(database=warehouse),
            },
        )
    ours = [e for e in chain(raised.value) if isinstance(e, DagsterBranchConfigError)]
    assert ours, f"expected a DagsterBranchConfigError, got {raised.value!r}"
    assert message in str(ours[0])
    assert Backend("duckdb", duckdb_url, "analytics").schemas() <= {"main"}  # nothing created


def test_branch_refuses_to_write_outside_its_namespace(backend: Backend, deploy: Deploy) -> None:
    base = backend.base_schema
    deploy("branch", pr=1)
    warehouse = BranchDatabaseResource(url=backend.url, base_schema=base, protected_schemas=["x"])
    try:
        warehouse.guard_write(f"{base}__pr_1", "orders")  # its own schema: fine
        for schema, table in ((base, "orders"), (f"{base}__pr_2", "orders"), ("x", "t")):
            with pytest.raises(NamespaceViolationError, match="outside its namespace"):
                warehouse.guard_write(schema, table)
        with pytest.raises(NamespaceViolationError):
            warehouse.guard_write(base)  # creating or dropping the production schema
    finally:
        warehouse.close()


def test_table_prefix_branch_writes_only_its_prefixed_tables(
    duckdb_url: str, deploy: Deploy
) -> None:
    deploy("branch", pr=1)
    warehouse = BranchDatabaseResource(
        url=duckdb_url, base_schema="analytics", strategy="table_prefix", branch_schema="dev"
    )
    try:
        assert warehouse.table("orders").quoted == "dev.pr_1__orders"
        warehouse.guard_write("dev", "pr_1__orders")
        for table in ("orders", "pr_2__orders", "pr_1_orders"):
            with pytest.raises(NamespaceViolationError):
                warehouse.guard_write("dev", table)
        with pytest.raises(NamespaceViolationError):
            warehouse.guard_write("dev")  # the shared schema itself is not the branch's
    finally:
        warehouse.close()


def test_production_never_writes_to_a_branch_name(backend: Backend, deploy: Deploy) -> None:
    deploy("production")
    warehouse = BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema)
    try:
        assert warehouse.table("orders").schema == backend.base_schema
        with pytest.raises(NamespaceViolationError, match="production writes only"):
            warehouse.guard_write(f"{backend.base_schema}__pr_1", "orders")
    finally:
        warehouse.close()
    assert f"{backend.base_schema}__pr_1" not in backend.schemas()


HOSTILE_TABLES = [
    'order "items"; DROP TABLE canary; --',
    "select",
    "Ünïcode tåble 表",
    "with space",
    "x'); DELETE FROM canary; --",
]


@pytest.mark.parametrize("strategy", ["schema", "table_prefix"])
def test_unusual_names_are_quoted_never_spliced(
    backend: Backend, deploy: Deploy, strategy: str
) -> None:
    base = 'Sales "EU" ü' if backend.name != "sqlite" else "main"
    shared = 'dev "shared" ø' if strategy == "table_prefix" else None
    if backend.name != "sqlite":
        backend.execute('CREATE SCHEMA "Sales ""EU"" ü"')
    canary_schema = '"Sales ""EU"" ü"' if backend.name != "sqlite" else "main"
    backend.execute(
        f"CREATE TABLE {canary_schema}.canary (x INTEGER)",
        f"INSERT INTO {canary_schema}.canary VALUES (1)",
    )

    deploy("branch", pr=1)
    warehouse = BranchDatabaseResource(
        url=backend.url,
        base_schema=base,
        strategy=strategy,  # type: ignore[arg-type]
        branch_schema=shared,
    )
    try:
        written = set()
        for name in HOSTILE_TABLES:
            location = warehouse.table(name)
            table = sa.Table(
                location.name,
                sa.MetaData(),
                sa.Column("select", sa.Integer),
                sa.Column("from où", sa.Text),
                schema=location.schema,
            )
            with warehouse.get_connection() as conn:
                table.create(conn)
                conn.execute(table.insert().values({"select": 1, "from où": name}))
            written.add(location.name)
            assert warehouse.read_table(name) == location
        target = warehouse.target_schema
    finally:
        warehouse.close()

    expected = {("pr_1__" + n if strategy == "table_prefix" else n) for n in HOSTILE_TABLES}
    assert written == expected
    assert expected <= backend.tables(target)
    assert backend.read(base, "canary") == [(1,)]
    for name in expected:
        [(one, stored)] = backend.read(target, name)
        assert one == 1 and stored in HOSTILE_TABLES


def test_secrets_stay_out_of_repr_metadata_logs_and_errors(
    postgres_url: str,
    deploy: Deploy,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The test server trusts loopback, so a URL with a password still connects.
    url = sa.make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    unreachable = sa.make_url(url).set(port=1).render_as_string(hide_password=False)
    warehouse = BranchDatabaseResource(url=url, branch_url=url, base_schema="analytics")
    caplog.set_level(logging.DEBUG)

    deploy("branch", pr=9)
    result = materialize(
        ASSETS,
        resources={"warehouse": warehouse, "io_manager": BranchTableIOManager(database=warehouse)},
    )
    assert result.success
    metadata = [
        str(value.value)
        for event in result.get_asset_materialization_events()
        for value in event.materialization.metadata.values()
    ]
    assert "analytics__pr_9.orders" in metadata

    broken = BranchDatabaseResource(
        url=unreachable, branch_url=unreachable, base_schema="analytics"
    )
    with pytest.raises(DagsterBranchError) as raised:
        broken.ensure_namespace()
    assert "***" in broken.display_url

    @asset
    def uses_broken(warehouse: BranchDatabaseResource) -> None:
        warehouse.ensure_namespace()

    failed = materialize([uses_broken], resources={"warehouse": broken}, raise_on_error=False)
    assert not failed.success

    seen = "\n".join(
        [
            repr(warehouse),
            str(warehouse),
            repr(broken),
            warehouse.display_url,
            *metadata,
            *(str(e) for e in chain(raised.value)),
            caplog.text,
            capsys.readouterr().err,
            *(str(event) for event in failed.all_events),
        ]
    )
    assert "STEP_SUCCESS" in seen and "STEP_FAILURE" in seen  # the run logs were captured
    assert PASSWORD not in seen
    assert "connection" in seen.lower()  # the failure itself is reported
