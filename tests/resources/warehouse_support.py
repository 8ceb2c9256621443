"""Shared pieces of the warehouse resource tests: a real backend, and the asset code every test
runs unchanged in every deployment (no routing code at all)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from dagster import asset, materialize

from dagster_branch.context import DeploymentContext
from dagster_branch.dialects import attach_sqlite_schemas, list_schema_names
from dagster_branch.io_managers import BranchTableIOManager
from dagster_branch.resources import BranchDatabaseResource
from tests.support.sql import execute


@dataclass(frozen=True)
class Backend:
    """A real warehouse for one test: its URL and the production schema used there."""

    name: str
    url: str
    base_schema: str
    connect_args: dict[str, Any] = field(default_factory=dict)

    def engine(self) -> sa.Engine:
        """A plain engine (not the resource's) on this warehouse."""
        return sa.create_engine(self.url, connect_args=self.connect_args)

    def read(self, schema: str, table: str) -> list[tuple[Any, ...]]:
        """All rows of ``schema.table``, sorted, read with a plain engine (not the resource)."""
        engine = self.engine()
        try:
            if self.name == "sqlite":
                attach_sqlite_schemas(engine, {schema})
            with engine.connect() as conn:
                query = sa.select(sa.literal_column("*")).select_from(
                    sa.table(table, schema=schema)
                )
                return sorted(tuple(row) for row in conn.execute(query))
        finally:
            engine.dispose()

    def tables(self, schema: str) -> set[str]:
        engine = self.engine()
        try:
            if self.name == "sqlite":
                attach_sqlite_schemas(engine, {schema})
            with engine.connect() as conn:
                return set(sa.inspect(conn).get_table_names(schema=schema))
        finally:
            engine.dispose()

    def schemas(self) -> set[str]:
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return set(list_schema_names(conn))
        finally:
            engine.dispose()

    def execute(self, *statements: str) -> None:
        execute(self.url, *statements, connect_args=self.connect_args)


@asset
def orders() -> pd.DataFrame:
    """Three orders, stamped with the deployment that built them."""
    built_by = str(DeploymentContext.from_env().namespace or "production")
    return pd.DataFrame({"order_id": [1, 2, 3], "amount": [10.5, 20.0, 7.25], "built_by": built_by})


@asset
def order_totals(orders: pd.DataFrame) -> list[dict[str, Any]]:
    """A downstream asset returning plain rows."""
    built_by = str(DeploymentContext.from_env().namespace or "production")
    return [
        {
            "n": len(orders),
            "total": float(orders["amount"].sum()),
            "orders_from": str(orders["built_by"].iloc[0]),
            "built_by": built_by,
        }
    ]


ASSETS = [orders, order_totals]


def materialize_assets(
    warehouse: BranchDatabaseResource, selection: list[str] | None = None
) -> None:
    """Materialize :data:`ASSETS` (or ``selection``) through ``warehouse`` and its IO manager."""
    result = materialize(
        ASSETS,
        resources={"warehouse": warehouse, "io_manager": BranchTableIOManager(database=warehouse)},
        selection=selection,
    )
    assert result.success
