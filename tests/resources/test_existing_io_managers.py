"""branch_io_manager: the IO managers teams already have (dagster-duckdb-pandas,
dagster-snowflake-pandas, dagster-gcp-pandas), routed per deployment and recorded in the ledger.

DuckDBPandasIOManager runs end to end on a DuckDB file. SnowflakePandasIOManager reads through the
emulator; its writes cannot be served there (see docs/warehouses.md: write_pandas uploads through a
PUT to a stage, which fakesnow's server does not answer), so the write routing is proven on DuckDB,
through the same wrapper. BigQuery: configuration only (no server).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_gcp_pandas import BigQueryPandasIOManager
from dagster_snowflake_pandas import SnowflakePandasIOManager
from warehouse_support import Backend

from dagster_branch import BranchDatabaseResource, branch_io_manager
from dagster_branch.context import DeploymentContext
from dagster_branch.errors import DagsterBranchConfigError
from dagster_branch.ledger import Ledger
from dagster_branch.naming import Namespace
from tests.support.deployments import Deploy
from tests.support.servers import SnowflakeDatabase

LOG = logging.getLogger("test.existing_io_managers")
PR_7 = Namespace.parse("pr_7")


def built_by() -> str:
    return str(DeploymentContext.from_env().namespace or "production")


@dg.asset
def orders() -> pd.DataFrame:
    return pd.DataFrame(
        {"order_id": [1, 2, 3], "amount": [10.5, 20.0, 7.25], "built_by": built_by()}
    )


@dg.asset
def order_totals(orders: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"n": [len(orders)], "orders_from": [orders["built_by"].iloc[0]], "built_by": [built_by()]}
    )


@dg.asset(metadata={"schema": "analytics"})
def pinned() -> pd.DataFrame:
    return pd.DataFrame({"x": [1]})


def duckdb_io(path: Path) -> DuckDBPandasIOManager:
    warehouse = BranchDatabaseResource(url=f"duckdb:///{path}", base_schema="analytics")
    return branch_io_manager(
        DuckDBPandasIOManager(database=str(path), schema="analytics"), warehouse=warehouse
    )


def test_duckdb_pandas_io_manager_writes_each_deployment_to_its_schema_and_cleans_up(
    tmp_path: Path, deploy: Deploy
) -> None:
    path = tmp_path / "warehouse.duckdb"
    backend = Backend("duckdb", f"duckdb:///{path}", "analytics")
    deploy("production")
    assert dg.materialize([orders, order_totals], resources={"io_manager": duckdb_io(path)}).success
    production = {t: backend.read("analytics", t) for t in ("orders", "order_totals")}
    assert {row[2] for row in production["orders"]} == {"production"}

    deploy("branch", pr=7)
    result = dg.materialize(
        [orders, order_totals],
        resources={"io_manager": duckdb_io(path)},
        selection=["order_totals"],
    )
    assert result.success
    assert backend.tables("analytics__pr_7") == {"order_totals"}
    assert backend.read("analytics__pr_7", "order_totals") == [(3, "production", "pr_7")]
    [materialization] = result.asset_materializations_for_node("order_totals")
    table_name = materialization.metadata["dagster/table_name"].value
    assert str(table_name).endswith("warehouse.duckdb.analytics__pr_7.order_totals")
    assert materialization.metadata["dagster_branch/namespace"].value == "pr_7"

    # PR 7 now builds orders too, and reads its own.
    assert dg.materialize([orders, order_totals], resources={"io_manager": duckdb_io(path)}).success
    assert backend.read("analytics__pr_7", "order_totals") == [(3, "pr_7", "pr_7")]
    assert {t: backend.read("analytics", t) for t in production} == production

    ledger = Ledger.from_url(backend.url)
    try:
        recorded = [(e.kind.value, e.name) for e in ledger.live_entries(PR_7)]
    finally:
        ledger.close()
    assert recorded == [("schema", "analytics__pr_7")]

    deploy("production")
    janitor = BranchDatabaseResource(url=backend.url, base_schema="analytics")
    try:
        [removed] = janitor.remove_objects(janitor.objects_of(PR_7), dry_run=False, log=LOG)
        assert removed.removed and removed.objects == 2
        assert janitor.objects_of(PR_7) == []
    finally:
        janitor.close()
    assert "analytics__pr_7" not in backend.schemas()
    assert {t: backend.read("analytics", t) for t in production} == production


def test_schema_metadata_that_would_bypass_the_routing_is_refused(
    tmp_path: Path, deploy: Deploy
) -> None:
    deploy("branch", pr=7)
    result = dg.materialize(
        [pinned], resources={"io_manager": duckdb_io(tmp_path / "w.duckdb")}, raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "would send it around the branch routing" in str(failure.step_failure_data.error)


def test_a_wrapped_schema_other_than_production_is_refused(tmp_path: Path) -> None:
    warehouse = BranchDatabaseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}", base_schema="a")
    io = branch_io_manager(
        DuckDBPandasIOManager(database=str(tmp_path / "w.duckdb"), schema="b"), warehouse=warehouse
    )
    with pytest.raises(DagsterBranchConfigError, match="set both to the production schema"):
        io.create_io_manager(dg.build_init_resource_context())


def test_table_prefix_strategy_is_refused_with_the_alternative(tmp_path: Path) -> None:
    warehouse = BranchDatabaseResource(
        url=f"duckdb:///{tmp_path / 'w.duckdb'}",
        base_schema="analytics",
        strategy="table_prefix",
        branch_schema="development",
    )
    with pytest.raises(DagsterBranchConfigError, match="Use BranchTableIOManager"):
        branch_io_manager(DuckDBPandasIOManager(database="w.duckdb"), warehouse=warehouse)


# -- Snowflake: reads through the emulator ------------------------------------------------------


def read_orders_from(db: SnowflakeDatabase, database_name: str) -> dict[str, Any]:
    """Run an asset that reads ``orders`` through SnowflakePandasIOManager; what it read."""
    seen: dict[str, Any] = {}

    @dg.asset(deps=[])
    def report(orders: pd.DataFrame) -> dg.MaterializeResult:
        seen["built_by"] = set(orders["built_by"])  # the IO manager lowercases columns
        seen["rows"] = len(orders)
        return dg.MaterializeResult()

    warehouse = BranchDatabaseResource(
        url=db.url, connect_args=db.connect_args, base_schema="analytics"
    )
    io = SnowflakePandasIOManager(
        account="fakesnow",
        user="fake",
        password="snow",
        database=database_name,
        schema="analytics",
        additional_snowflake_connection_args=dict(db.connect_args),
    )
    result = dg.materialize(
        [orders, report],
        resources={"io_manager": branch_io_manager(io, warehouse=warehouse)},
        selection=["report"],
    )
    assert result.success
    return seen


# dagster-snowflake-pandas hands pandas the connector's DBAPI connection, which pandas warns about
# in every run (it has no SQLAlchemy option); the warning is theirs, not a failure of ours.
@pytest.mark.filterwarnings("ignore:pandas only supports SQLAlchemy connectable:UserWarning")
def test_snowflake_pandas_io_manager_reads_production_until_the_branch_builds_its_own(
    snowflake_database: SnowflakeDatabase, deploy: Deploy
) -> None:
    db = snowflake_database
    name = sa.make_url(db.url).database.split("/")[0]  # type: ignore[union-attr]
    engine = db.engine()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE SCHEMA analytics"))
            conn.execute(sa.text("CREATE TABLE analytics.orders (id INT, built_by VARCHAR)"))
            conn.execute(sa.text("INSERT INTO analytics.orders VALUES (1, 'production')"))
    finally:
        engine.dispose()

    deploy("branch", pr=7)
    assert read_orders_from(db, name) == {"built_by": {"production"}, "rows": 1}

    warehouse = BranchDatabaseResource(
        url=db.url, connect_args=db.connect_args, base_schema="analytics"
    )
    try:
        loc = warehouse.table("orders")  # the branch builds its own orders
        with warehouse.get_connection() as conn:
            conn.execute(sa.text(f"CREATE TABLE {loc} (id INT, built_by VARCHAR)"))
            conn.execute(sa.text(f"INSERT INTO {loc} VALUES (1, 'pr_7'), (2, 'pr_7')"))
    finally:
        warehouse.close()
    assert read_orders_from(db, name) == {"built_by": {"pr_7"}, "rows": 2}

    deploy("production")
    assert read_orders_from(db, name) == {"built_by": {"production"}, "rows": 1}


# -- BigQuery: configuration --------------------------------------------------------------------


def test_bigquery_pandas_io_manager_keeps_its_configuration_and_gains_the_warehouse(
    deploy: Deploy,
) -> None:
    deploy("branch", pr=7)
    warehouse = BranchDatabaseResource(url="bigquery://acme-analytics", base_schema="analytics")
    io = branch_io_manager(
        BigQueryPandasIOManager(project="acme-analytics", dataset="analytics", location="EU"),
        warehouse=warehouse,
    )
    assert isinstance(io, BigQueryPandasIOManager)
    assert type(io).__name__ == "BranchBigQueryPandasIOManager"
    assert (io.project, io.dataset, io.location) == ("acme-analytics", "analytics", "EU")
    assert warehouse.target_schema == "analytics__pr_7"
    assert io.create_io_manager(dg.build_init_resource_context()) is not None
