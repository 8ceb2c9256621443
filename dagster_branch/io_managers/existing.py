"""``branch_io_manager``: the IO manager a team already has, routed per deployment.

Dagster's database IO managers (``DuckDBPandasIOManager``, ``SnowflakePandasIOManager``,
``BigQueryPandasIOManager`` and their PySpark and Polars siblings) all build a ``DbIOManager``
that puts an asset in the schema its ``schema`` (``dataset``) setting names. The wrapper keeps the
team's IO manager, its configuration, type handlers and SQL, and decides the schema per call:

- an output goes to the deployment's schema (``analytics`` in production, ``analytics__pr_42`` in
  PR 42's branch deployment), created, recorded in the ledger and seeded through
  :meth:`BranchDatabaseResource.table`, so the cleanup removes it;
- an input comes from the branch's own table when the branch built it
  (:meth:`BranchDatabaseResource.read_table`), else from production's.

The wrapped IO manager and the ``BranchDatabaseResource`` must reach the same database (the same
DuckDB file, Snowflake database, BigQuery project). Only ``strategy="schema"`` is supported:
``DbIOManager`` names a table after its asset key, so a table prefix cannot be added.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any, TypeVar

from dagster import (
    ConfigurableIOManagerFactory,
    InitResourceContext,
    InputContext,
    IOManager,
    OutputContext,
)
from pydantic import Field

from dagster_branch.errors import DagsterBranchConfigError, NamespaceViolationError
from dagster_branch.resources.database import BranchDatabaseResource

__all__ = ["branch_io_manager"]

F = TypeVar("F", bound=ConfigurableIOManagerFactory)  # type: ignore[type-arg]

# The per-call schema of Dagster's DbIOManager: its constructor's `schema`, kept in `_schema`,
# which wins over asset key prefixes (not over a `schema` definition metadata entry).
_SCHEMA_ATTRIBUTE = "_schema"


def branch_io_manager(io_manager: F, *, warehouse: BranchDatabaseResource) -> F:
    """The same IO manager, writing to the deployment's schema and recording what it creates.

    Args:
        io_manager: a configured ``DbIOManager``-based IO manager, e.g.
            ``DuckDBPandasIOManager(database="warehouse.duckdb", schema="analytics")``. Its
            ``schema`` (``dataset``), when set, must be the warehouse's ``base_schema``.
        warehouse: the branch-aware resource on the same database; it decides the schema,
            guards the namespace and keeps the ledger.

    Returns:
        An instance of a subclass of ``type(io_manager)`` with the same configuration, so the
        IO manager's own connection code still finds its settings.

    Example::

        from dagster_duckdb_pandas import DuckDBPandasIOManager

        warehouse = BranchDatabaseResource(url="duckdb:///warehouse.duckdb",
                                           base_schema="analytics")
        defs = Definitions(
            assets=[orders, order_totals],
            resources={"io_manager": branch_io_manager(
                DuckDBPandasIOManager(database="warehouse.duckdb", schema="analytics"),
                warehouse=warehouse,
            )},
        )
    """
    if warehouse.strategy != "schema":
        raise DagsterBranchConfigError(
            f"branch_io_manager needs strategy='schema' on the warehouse (it is "
            f"{warehouse.strategy!r}): {type(io_manager).__name__} names each table after its "
            "asset key, so it cannot add a table prefix. Use BranchTableIOManager instead."
        )
    routed = _routed_class(type(io_manager))
    values = {
        field.alias or name: getattr(io_manager, name)
        for name, field in type(io_manager).model_fields.items()
    }
    wrapped: F = routed(**values, branch_warehouse=warehouse)
    return wrapped


@functools.cache
def _routed_class(base: type[F]) -> type[F]:
    """``Branch<Base>``: ``base`` plus the warehouse, and a routing ``create_io_manager``."""

    class Routed(base):  # type: ignore[valid-type,misc]
        branch_warehouse: BranchDatabaseResource = Field(
            description="The branch-aware warehouse that decides where each asset is written "
            "and read, and records what the branch creates."
        )

        def create_io_manager(self, context: InitResourceContext) -> IOManager:
            return RoutedIOManager(super().create_io_manager(context), self.branch_warehouse)

    Routed.__name__ = Routed.__qualname__ = f"Branch{base.__name__}"
    Routed.__doc__ = f"``{base.__name__}`` routed by dagster-branch (see ``branch_io_manager``)."
    return Routed


class RoutedIOManager(IOManager):
    """Sends each call to the wrapped ``DbIOManager`` with the schema the warehouse decides."""

    def __init__(self, inner: IOManager, warehouse: BranchDatabaseResource) -> None:
        if not hasattr(inner, _SCHEMA_ATTRIBUTE):
            raise DagsterBranchConfigError(
                f"branch_io_manager cannot route {type(inner).__name__}: it is not one of "
                "Dagster's database IO managers (DbIOManager). Use BranchTableIOManager."
            )
        configured = getattr(inner, _SCHEMA_ATTRIBUTE)
        production = warehouse.production_schema
        if configured and configured.casefold() != production.casefold():
            raise DagsterBranchConfigError(
                f"The wrapped IO manager writes schema {configured!r}, the warehouse's "
                f"base_schema is {production!r}: set both to the production schema."
            )
        self.warehouse = warehouse
        self._production = _with_schema(inner, production)
        self._by_schema: dict[str, IOManager] = {production: self._production}
        self._inner = inner

    def _manager_for(self, schema: str) -> IOManager:
        if schema not in self._by_schema:
            self._by_schema[schema] = _with_schema(self._inner, schema)
        return self._by_schema[schema]

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Write through the wrapped IO manager into this deployment's schema."""
        _refuse_schema_metadata(context.definition_metadata, self.warehouse)
        location = self.warehouse.table(_table_name(context, context))  # guard, create, record
        self._release_file_lock()
        self._manager_for(location.schema).handle_output(context, obj)
        namespace = self.warehouse.namespace
        context.add_output_metadata(
            {
                "dagster_branch/namespace": str(namespace) if namespace else "production",
                **self.warehouse.take_seed_metadata(),
            }
        )

    def load_input(self, context: InputContext) -> Any:
        """Read the branch's table if it built one, else production's."""
        upstream = context.upstream_output
        _refuse_schema_metadata(upstream.definition_metadata if upstream else None, self.warehouse)
        name = _table_name(context, upstream if upstream is not None else context)
        location = self.warehouse.read_table(name)
        self._release_file_lock()
        return self._manager_for(location.schema).load_input(context)

    def _release_file_lock(self) -> None:
        """DuckDB refuses a second connection to a file with another configuration, and
        duckdb_engine's user agent differs from dagster-duckdb's: close the warehouse's pooled
        connections before the wrapped IO manager opens its own."""
        if self.warehouse.routing().caps.name == "duckdb":
            self.warehouse.get_engine().dispose()


def _with_schema(inner: IOManager, schema: str) -> IOManager:
    routed = copy.copy(inner)  # shares handlers and client; only the schema differs
    setattr(routed, _SCHEMA_ATTRIBUTE, schema)
    return routed


def _table_name(context: InputContext | OutputContext, output: InputContext | OutputContext) -> str:
    """The table ``DbIOManager`` uses: the asset key's last part, else the ``table``
    definition metadata, else the output's name."""
    if context.has_asset_key:
        return context.asset_key.path[-1]
    metadata: Mapping[str, Any] = output.definition_metadata or {}
    table = metadata.get("table")
    return table if isinstance(table, str) and table else output.name


def _refuse_schema_metadata(
    metadata: Mapping[str, Any] | None, warehouse: BranchDatabaseResource
) -> None:
    """DbIOManager lets a ``schema`` metadata entry win over the schema it is given, so in a
    branch (or any schema but production's) it would write or read around the routing."""
    schema = (metadata or {}).get("schema")
    if not schema:
        return
    elsewhere = str(schema).casefold() != warehouse.production_schema.casefold()
    if elsewhere or warehouse.namespace is not None:
        raise NamespaceViolationError(
            f"The asset's 'schema' metadata ({schema!r}) would send it around the branch "
            "routing: branch_io_manager puts each asset in the deployment's schema. Remove the "
            "metadata (the warehouse's base_schema is production's schema)."
        )
