"""What each SQL dialect can do, in one table, and the DDL built from it.

SQLAlchemy happily compiles ``DROP SCHEMA … CASCADE`` for dialects that reject it, so the
decisions live here, keyed by the dialect name SQLAlchemy reports (``engine.dialect.name``),
instead of ``if dialect == …`` branches across the code. Unknown dialects get a conservative
default: native schemas, but no ``IF [NOT] EXISTS`` trust, no cascade and no comments.

SQLite has no schemas: a "schema" is a sibling database file ``ATTACH``-ed under that name, and
an ATTACH lasts one connection, so :func:`attach_sqlite_schemas` re-attaches on every connection.

Example::

    >>> capabilities_for("postgresql").drop_schema_cascade
    True
    >>> capabilities_for("sqlite").has_schemas
    False
    >>> capabilities_for("some_new_dialect").max_identifier_bytes
    63
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateSchema, DropSchema, DropTable, ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from dagster_branch.errors import DagsterBranchConfigError, DagsterBranchNamingError

__all__ = [
    "DialectCapabilities",
    "SchemaComment",
    "attach_sqlite_schemas",
    "capabilities_for",
    "check_identifier",
    "check_identifier_limit",
    "copy_table_ddl",
    "create_schema_ddl",
    "detach_sqlite_schema",
    "drop_schema_ddl",
    "drop_table_ddl",
    "drop_view_ddl",
    "is_write_conflict",
    "list_schema_names",
    "locks_file",
    "server_identifier_limit",
    "sqlite_schema_files",
    "sqlite_schema_path",
]


@dataclass(frozen=True)
class DialectCapabilities:
    """The DDL features one dialect supports, as far as dagster-branch relies on them."""

    name: str
    has_schemas: bool = True
    """``CREATE SCHEMA`` exists (SQLite: no, schemas are emulated with ``ATTACH``)."""
    create_schema_if_not_exists: bool = False
    drop_schema_if_exists: bool = False
    drop_schema_cascade: bool = False
    """One ``DROP SCHEMA … CASCADE`` removes a schema and its tables."""
    schema_comments: bool = False
    """``COMMENT ON SCHEMA … IS '…'`` marks a schema with its namespace."""
    max_identifier_bytes: int = 63
    unquotable_chars: str = ""
    """Characters the dialect's preparer cannot escape; names holding them are refused."""
    clone_tables: bool = False
    """``CREATE TABLE … CLONE …`` copies a table as metadata only (zero-copy: Snowflake,
    BigQuery); elsewhere seeding copies the data with ``CREATE TABLE … AS SELECT``."""
    schema_names_sql: str | None = None
    """A fixed query listing the schemas of the current database, where the inspector's
    answer is not plain names (duckdb-engine returns ``db."schema"``)."""
    identifier_limit_sql: str | None = None
    """A fixed query answering the server's own identifier limit in bytes, where the server
    truncates longer names silently (PostgreSQL: ``NAMEDATALEN - 1``, fixed when it is built).
    Elsewhere ``max_identifier_bytes`` is the documented limit."""
    dependency_catalog: str | None = None
    """Where the server records what depends on what (``"pg_depend"``, ``"duckdb"``), read
    before a drop to refuse one that would reach outside the namespace; ``None``: none read."""
    drop_restrict: bool = False
    """Schemas are emptied object by object in dependency order, then dropped without
    ``CASCADE``, so the server itself refuses a drop that something else still depends on."""
    known: bool = True
    """The limits above are the dialect's documented ones (false for the conservative default
    of a dialect dagster-branch does not know)."""

    @property
    def attaches_schemas(self) -> bool:
        """Schemas are sibling database files attached per connection (SQLite)."""
        return self.name == "sqlite"


_GENEROUS = 1024

CAPABILITIES: dict[str, DialectCapabilities] = {
    "postgresql": DialectCapabilities(
        name="postgresql",
        create_schema_if_not_exists=True,
        drop_schema_if_exists=True,
        drop_schema_cascade=True,
        schema_comments=True,
        max_identifier_bytes=63,
        identifier_limit_sql="SHOW max_identifier_length",
        dependency_catalog="pg_depend",
        drop_restrict=True,
    ),
    "redshift": DialectCapabilities(
        name="redshift",
        create_schema_if_not_exists=True,
        drop_schema_if_exists=True,
        drop_schema_cascade=True,
        schema_comments=False,  # Redshift's COMMENT covers tables, columns, databases, views
        max_identifier_bytes=127,
    ),
    "snowflake": DialectCapabilities(
        name="snowflake",
        create_schema_if_not_exists=True,
        drop_schema_if_exists=True,
        drop_schema_cascade=True,
        schema_comments=True,
        clone_tables=True,
        max_identifier_bytes=255,
    ),
    "bigquery": DialectCapabilities(
        name="bigquery",
        create_schema_if_not_exists=True,
        drop_schema_if_exists=True,
        drop_schema_cascade=True,
        schema_comments=False,  # datasets take OPTIONS(description=…), not COMMENT ON
        clone_tables=True,
        max_identifier_bytes=1024,
        unquotable_chars="`",  # sqlalchemy-bigquery does not escape backticks inside `…`
    ),
    "duckdb": DialectCapabilities(
        name="duckdb",
        create_schema_if_not_exists=True,
        drop_schema_if_exists=True,
        drop_schema_cascade=True,
        schema_comments=False,  # "Adding comments to schemas is not implemented" (DuckDB 1.x)
        max_identifier_bytes=_GENEROUS,
        schema_names_sql=(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database()"
        ),
        dependency_catalog="duckdb",
    ),
    "sqlite": DialectCapabilities(
        name="sqlite",
        has_schemas=False,
        max_identifier_bytes=_GENEROUS,
    ),
}

DEFAULT_CAPABILITIES = DialectCapabilities(name="default", known=False)


def capabilities_for(dialect: str | sa.engine.Dialect) -> DialectCapabilities:
    """The capabilities of ``dialect`` (a name or a SQLAlchemy dialect); conservative if unknown."""
    name = dialect if isinstance(dialect, str) else dialect.name
    return CAPABILITIES.get(name, DEFAULT_CAPABILITIES)


# -- DDL ----------------------------------------------------------------------------------------


class SchemaComment(ExecutableDDLElement):
    """``COMMENT ON SCHEMA <quoted name> IS '<literal>'``: both parts rendered by the dialect.

    The comment is rendered as a SQL string literal by the dialect's own literal processor (bind
    parameters are not allowed in utility statements on PostgreSQL), never spliced.
    """

    def __init__(self, schema_name: str, comment: str) -> None:
        self.schema_name = schema_name
        self.comment = comment


@compiles(SchemaComment)
def _compile_schema_comment(element: SchemaComment, compiler: DDLCompiler, **kw: Any) -> str:
    literal = compiler.sql_compiler.render_literal_value(element.comment, sa.String())
    schema = compiler.preparer.quote_schema(element.schema_name)
    return f"COMMENT ON SCHEMA {schema} IS {literal}"


def list_schema_names(conn: sa.Connection) -> list[str]:
    """The schema names of the connected database, in one statement."""
    caps = capabilities_for(conn.dialect)
    if caps.schema_names_sql is not None:
        return list(conn.execute(sa.text(caps.schema_names_sql)).scalars())
    return list(sa.inspect(conn).get_schema_names())


# SQLSTATEs of "a concurrent transaction won; try again": serialization failure, deadlock.
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})


def locks_file(engine: sa.Engine) -> bool:
    """Whether ``engine``'s database is a file one process at a time may open (DuckDB): its
    pooled connections must be closed after use so that another process (dbt) can open it."""
    return engine.dialect.name == "duckdb"


def is_write_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` says a concurrent transaction touched the same object first.

    Such errors clear on a retry with fresh state: DuckDB's optimistic concurrency raises
    ``TransactionException`` ("Catalog write-write conflict", "Conflict on update") when two
    connections drop or update the same object; PostgreSQL reports serialization failures and
    deadlocks by SQLSTATE. Connection errors are not conflicts (the caller decides about those).
    """
    orig = getattr(exc, "orig", None) or exc
    if type(orig).__name__ == "TransactionException" and "conflict" in str(orig).lower():
        return True
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return sqlstate in _CONFLICT_SQLSTATES


def check_identifier_limit(caps: DialectCapabilities, configured: int | None) -> int:
    """The identifier limit names are built with: ``configured`` when set, else the dialect's.

    A configured limit above the dialect's documented one is refused: the server would cut the
    longer names short silently, and a cut name can land on production's or another branch's.

    Raises:
        DagsterBranchConfigError: ``configured`` exceeds the limit of a known dialect.
    """
    if configured is None:
        return caps.max_identifier_bytes
    if caps.known and configured > caps.max_identifier_bytes:
        raise DagsterBranchConfigError(
            f"max_identifier_bytes={configured} is above the {caps.name} limit of "
            f"{caps.max_identifier_bytes} bytes: the server would truncate longer names, and a "
            "truncated branch schema can be production's or another branch's. Set "
            f"max_identifier_bytes to {caps.max_identifier_bytes} or less, or leave it unset."
        )
    return configured


def server_identifier_limit(caps: DialectCapabilities, dbapi_conn: Any) -> int | None:
    """The server's own identifier limit in bytes, asked on a raw DBAPI connection (one
    statement), or ``None`` where the dialect has no such setting."""
    if caps.identifier_limit_sql is None:
        return None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(caps.identifier_limit_sql)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return int(row[0]) if row is not None else None


def check_identifier(caps: DialectCapabilities, name: str) -> str:
    """Return ``name`` if the dialect can quote it safely, else raise saying why."""
    bad = sorted({c for c in name if c in caps.unquotable_chars or c == "\x00"})
    if bad or not name:
        raise DagsterBranchNamingError(
            f"Identifier {name[:60]!r} cannot be quoted safely for {caps.name}"
            + (f" (it contains {', '.join(map(repr, bad))})" if bad else " (it is empty)")
            + ": rename it."
        )
    return name


def create_schema_ddl(caps: DialectCapabilities, name: str) -> ExecutableDDLElement:
    """``CREATE SCHEMA [IF NOT EXISTS] <name>`` for a dialect with native schemas."""
    _require_schemas(caps, name)
    return CreateSchema(name, if_not_exists=caps.create_schema_if_not_exists)


def drop_schema_ddl(caps: DialectCapabilities, name: str) -> ExecutableDDLElement:
    """``DROP SCHEMA IF EXISTS <name> CASCADE``; only for dialects that support all of it."""
    _require_schemas(caps, name)
    if not (caps.drop_schema_cascade and caps.drop_schema_if_exists):
        raise DagsterBranchConfigError(
            f"The {caps.name} dialect cannot drop schema {name!r} with IF EXISTS … CASCADE: "
            "drop its tables one by one instead."
        )
    return DropSchema(name, cascade=True, if_exists=True)


def drop_table_ddl(caps: DialectCapabilities, table: str, schema: str | None) -> DropTable:
    """``DROP TABLE [IF EXISTS] <schema>.<table>``, quoted by the dialect."""
    check_identifier(caps, table)
    if schema is not None:
        check_identifier(caps, schema)
    return DropTable(sa.Table(table, sa.MetaData(), schema=schema), if_exists=True)


class DropViewIfExists(ExecutableDDLElement):
    """``DROP VIEW IF EXISTS <schema>.<view>``, quoted by the dialect (SQLAlchemy 2.0 has no
    public DROP VIEW construct; its private one has no ``IF EXISTS``)."""

    def __init__(self, view: sa.Table) -> None:
        self.view = view


@compiles(DropViewIfExists)
def _compile_drop_view(element: DropViewIfExists, compiler: DDLCompiler, **kw: Any) -> str:
    return f"DROP VIEW IF EXISTS {compiler.preparer.format_table(element.view)}"


def drop_view_ddl(caps: DialectCapabilities, view: str, schema: str | None) -> DropViewIfExists:
    """``DROP VIEW IF EXISTS <schema>.<view>``, quoted by the dialect."""
    check_identifier(caps, view)
    if schema is not None:
        check_identifier(caps, schema)
    return DropViewIfExists(sa.Table(view, sa.MetaData(), schema=schema))


class CopyTable(ExecutableDDLElement):
    """``CREATE TABLE <target> CLONE <source>`` (``clone=True``) or ``CREATE TABLE <target> AS
    SELECT * FROM <source>``, both names quoted by the dialect."""

    def __init__(self, new_table: sa.Table, source: sa.Table, *, clone: bool) -> None:
        self.new_table = new_table  # not "target": DDLElement has one of its own
        self.source = source
        self.clone = clone


@compiles(CopyTable)
def _compile_copy_table(element: CopyTable, compiler: DDLCompiler, **kw: Any) -> str:
    target = compiler.preparer.format_table(element.new_table)
    source = compiler.preparer.format_table(element.source)
    if element.clone:
        return f"CREATE TABLE {target} CLONE {source}"
    return f"CREATE TABLE {target} AS SELECT * FROM {source}"


def copy_table_ddl(
    caps: DialectCapabilities, target: tuple[str, str], source: tuple[str, str]
) -> CopyTable:
    """Create table ``target`` (schema, name) as a copy of ``source``: a zero-copy ``CLONE``
    where the dialect has one (:attr:`DialectCapabilities.clone_tables`), else
    ``CREATE TABLE … AS SELECT *`` (data copied; no indexes, constraints or grants)."""
    for part in (*target, *source):
        check_identifier(caps, part)
    return CopyTable(
        sa.Table(target[1], sa.MetaData(), schema=target[0]),
        sa.Table(source[1], sa.MetaData(), schema=source[0]),
        clone=caps.clone_tables,
    )


def _require_schemas(caps: DialectCapabilities, name: str) -> None:
    check_identifier(caps, name)
    if not caps.has_schemas:
        raise DagsterBranchConfigError(
            f"The {caps.name} dialect has no CREATE/DROP SCHEMA (schema {name!r}); "
            "dagster-branch emulates schemas there by attaching database files."
        )


# -- SQLite: schemas as attached sibling files --------------------------------------------------

SQLITE_BUILTIN_SCHEMAS = frozenset({"main", "temp"})
_SQLITE_SUFFIX = ".sqlite"


def _sqlite_main_path(engine: sa.Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise DagsterBranchConfigError(
            "SQLite schemas are emulated with sibling database files, which needs a file "
            "database: use a URL such as 'sqlite:////path/to/warehouse.sqlite', or set "
            "strategy='table_prefix' and control_schema=None for an in-memory database."
        )
    return Path(database).resolve()


def sqlite_schema_path(engine: sa.Engine, schema_name: str) -> Path:
    """The file that holds SQLite "schema" ``schema_name``: ``<main file>.<name>.sqlite``.

    The name is percent-encoded so that quotes, slashes or unicode stay file-system safe.
    """
    main = _sqlite_main_path(engine)
    return main.with_name(f"{main.name}.{quote(schema_name, safe='')}{_SQLITE_SUFFIX}")


def sqlite_schema_files(engine: sa.Engine) -> dict[str, Path]:
    """Every emulated schema next to the main SQLite file, by schema name (no statement sent)."""
    main = _sqlite_main_path(engine)
    head = main.name + "."
    found: dict[str, Path] = {}
    for path in main.parent.glob(f"{main.name}.*{_SQLITE_SUFFIX}"):
        encoded = path.name[len(head) : -len(_SQLITE_SUFFIX)]
        if encoded:
            found[unquote(encoded)] = path
    return found


class _AttachRegistry:
    """The schemas to attach on every connection of one SQLite engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.names: dict[str, Path] = {}
        self.lock = threading.Lock()


_REGISTRIES: weakref.WeakKeyDictionary[sa.Engine, _AttachRegistry] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()
_ATTACHED_KEY = "dagster_branch_attached"


def _attach_missing(registry: _AttachRegistry, dbapi_conn: Any, record: Any) -> None:
    attached: set[str] = record.info.setdefault(_ATTACHED_KEY, set())
    with registry.lock:
        wanted = dict(registry.names)
    preparer = registry.engine.dialect.identifier_preparer
    for name, path in wanted.items():
        if name in attached:
            continue
        cursor = dbapi_conn.cursor()
        try:
            # The file name is a bound parameter; the schema name is quoted by the dialect.
            cursor.execute(f"ATTACH DATABASE ? AS {preparer.quote(name)}", (str(path),))
        finally:
            cursor.close()
        attached.add(name)


def _registry(engine: sa.Engine) -> _AttachRegistry:
    with _REGISTRIES_LOCK:
        registry = _REGISTRIES.get(engine)
        if registry is None:
            registry = _REGISTRIES[engine] = _AttachRegistry(engine)
            # "connect" covers every new connection; "checkout" catches schemas registered after
            # a pooled connection was opened.
            sa.event.listen(
                engine, "connect", lambda conn, rec: _attach_missing(registry, conn, rec)
            )
            sa.event.listen(
                engine, "checkout", lambda conn, rec, _proxy: _attach_missing(registry, conn, rec)
            )
        return registry


def attach_sqlite_schemas(engine: sa.Engine, names: list[str] | set[str]) -> None:
    """Make SQLite schemas ``names`` available on every connection of ``engine``.

    Each schema is the file :func:`sqlite_schema_path` names; SQLite creates it when first
    attached. ``main`` and ``temp`` always exist and are skipped.
    """
    wanted = {n: sqlite_schema_path(engine, n) for n in names if n not in SQLITE_BUILTIN_SCHEMAS}
    if not wanted:
        return
    registry = _registry(engine)
    with registry.lock:
        registry.names.update(wanted)


def detach_sqlite_schema(engine: sa.Engine, name: str) -> None:
    """Stop attaching ``name`` and close pooled connections so no connection still holds it."""
    registry = _REGISTRIES.get(engine)
    if registry is not None:
        with registry.lock:
            registry.names.pop(name, None)
    engine.dispose()
