"""``BranchTableIOManager``: asset outputs as tables in the deployment's own schema.

Assets return a pandas ``DataFrame`` (or a list of dicts) and take upstream tables as inputs; the
IO manager writes to :meth:`BranchDatabaseResource.table` and reads through
:meth:`BranchDatabaseResource.read_table`, so the same asset code writes to ``analytics`` in
production, ``analytics__pr_42`` in PR 42's branch deployment, and reads production's tables that
the branch did not rebuild. Assets need no routing code at all.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from dagster import AssetKey, ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from dagster_branch.dialects import drop_table_ddl, locks_file
from dagster_branch.errors import DagsterBranchError
from dagster_branch.ledger import db_error_text
from dagster_branch.resources.database import BranchDatabaseResource, TableLocation

__all__ = ["BranchTableIOManager"]

TABLE_METADATA_KEY = "dagster_branch/table"
"""Asset definition metadata naming the table, when the last asset key part is not wanted."""


class BranchTableIOManager(ConfigurableIOManager):
    """Stores DataFrames (or lists of dicts) as tables where this deployment writes.

    Each output replaces its table (``DROP TABLE IF EXISTS`` then create, in one transaction
    where the dialect's DDL is transactional). The table is the last part of the asset key, or
    the ``dagster_branch/table`` definition metadata. Inputs come back as a DataFrame unless
    annotated as ``list``, then as a list of dicts.

    Example::

        from dagster import Definitions, EnvVar, asset
        import pandas as pd

        @asset
        def orders() -> pd.DataFrame:
            return pd.DataFrame({"id": [1, 2]})

        @asset
        def order_count(orders: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame({"n": [len(orders)]})

        warehouse = BranchDatabaseResource(url=EnvVar("WAREHOUSE_URL"), base_schema="analytics")
        defs = Definitions(
            assets=[orders, order_count],
            resources={"warehouse": warehouse,
                       "io_manager": BranchTableIOManager(database=warehouse)},
        )
    """

    database: BranchDatabaseResource = Field(
        description="The branch-aware warehouse the tables are written to and read from."
    )

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Write ``obj`` to this deployment's table for the output."""
        if obj is None:
            return
        name = _table_for(context.asset_key if context.has_asset_key else None, context)
        location = self.database.table(name)  # guards the namespace, creates it, records it
        engine = self.database.get_engine()
        try:
            with engine.begin() as conn:
                conn.execute(
                    drop_table_ddl(self.database.routing().caps, location.name, location.schema)
                )
                rows = _write(conn, location, obj)
                _require_exact_table(conn, location)
        except sa.exc.SQLAlchemyError as exc:
            raise DagsterBranchError(
                f"Could not write table {location}: {self.database.redact(db_error_text(exc))}"
            ) from exc
        finally:
            self._release(engine)
        namespace = self.database.namespace
        context.add_output_metadata(
            {
                "dagster/table_name": f"{location.schema}.{location.name}",
                "dagster/row_count": rows,
                "dagster_branch/namespace": str(namespace) if namespace else "production",
                "dagster_branch/deployment": self.database.deployment.kind.value,
                **self.database.take_seed_metadata(),
            }
        )

    def load_input(self, context: InputContext) -> Any:
        """Read the upstream table: the branch's own if it built one, else production's."""
        upstream = context.upstream_output
        key = context.asset_key if context.has_asset_key else None
        name = _table_for(key, upstream if upstream is not None else context)
        location = self.database.read_table(name)
        query: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(location.clause())
        try:
            with self.database.get_connection() as conn:
                if _wants_rows(context):
                    return [dict(row) for row in conn.execute(query).mappings()]
                import pandas as pd  # type: ignore[import-untyped]

                return pd.read_sql_query(query, conn)
        finally:
            self._release(self.database.get_engine())

    def _release(self, engine: sa.Engine) -> None:
        """Close a DuckDB file between steps, so that another process (dbt) can open it."""
        if locks_file(engine):
            self.database.close()


def _table_for(key: AssetKey | None, context: InputContext | OutputContext) -> str:
    metadata: Mapping[str, Any] = context.definition_metadata or {}
    explicit = metadata.get(TABLE_METADATA_KEY)
    if isinstance(explicit, str) and explicit:
        return explicit
    if key is not None:
        return key.path[-1]
    return context.name


def _wants_rows(context: InputContext) -> bool:
    typing_type = context.dagster_type.typing_type
    return typing_type is list or getattr(typing_type, "__origin__", None) is list


def _require_exact_table(conn: sa.Connection, location: TableLocation) -> None:
    """Raise (rolling the write back) unless the table exists under exactly its name: a server
    that shortened it wrote somewhere else. One catalog query, the name a bound parameter."""
    if not sa.inspect(conn).has_table(location.name, schema=location.schema):
        raise DagsterBranchError(
            f"Table {location} does not exist under that exact name after it was written: the "
            "server changed the name (truncation?), so the write was rolled back. Set the "
            "warehouse's max_identifier_bytes to the server's limit."
        )


def _write(conn: sa.Connection, location: TableLocation, obj: Any) -> int:
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return _write_rows(conn, location, list(obj))
    to_sql = getattr(obj, "to_sql", None)
    if to_sql is None:
        raise DagsterBranchError(
            f"BranchTableIOManager cannot store a {type(obj).__name__} in {location}: return a "
            "pandas DataFrame or a list of dicts."
        )
    to_sql(location.name, conn, schema=location.schema, index=False)
    return len(obj)


_TYPES: list[tuple[type, sa.types.TypeEngine[Any]]] = [
    (bool, sa.Boolean()),
    (int, sa.BigInteger()),
    (float, sa.Float()),
    (decimal.Decimal, sa.Numeric()),
    (dt.datetime, sa.DateTime(timezone=True)),
    (dt.date, sa.Date()),
    (str, sa.Text()),
    (bytes, sa.LargeBinary()),
]


def _column_type(values: list[Any]) -> sa.types.TypeEngine[Any]:
    kinds = {type(v) for v in values if v is not None}
    for python_type, sql_type in _TYPES:  # order matters: bool before int, datetime before date
        if kinds and all(issubclass(k, python_type) for k in kinds):
            return sql_type
    if kinds <= {int, float}:
        return sa.Float()
    return sa.Text()


def _write_rows(conn: sa.Connection, location: TableLocation, rows: list[Any]) -> int:
    if not rows or not all(isinstance(r, Mapping) for r in rows):
        raise DagsterBranchError(
            f"BranchTableIOManager needs a non-empty list of dicts for {location}."
        )
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    table = sa.Table(
        location.name,
        sa.MetaData(),
        *(sa.Column(c, _column_type([r.get(c) for r in rows])) for c in columns),
        schema=location.schema,
    )
    table.create(conn)
    conn.execute(table.insert(), [{c: r.get(c) for c in columns} for r in rows])
    return len(rows)
