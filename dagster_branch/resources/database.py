"""``BranchDatabaseResource``: a SQLAlchemy warehouse that routes each deployment to its own place.

Routing, decided from the :class:`~dagster_branch.DeploymentContext` when the resource is set up:

=============  ======================================  =======================================
deployment     ``strategy="schema"``                   ``strategy="table_prefix"``
=============  ======================================  =======================================
production     ``analytics.orders``                    ``analytics.orders``
PR 42          ``analytics__pr_42.orders``             ``<branch_schema>.pr_42__orders``
local (alice)  ``analytics__dev_alice_<hash>.orders``  ``<branch_schema>.dev_alice_<hash>__orders``
=============  ======================================  =======================================

Reads fall back to production (:meth:`BranchDatabaseResource.read_table`); writes, creates and drops
outside the deployment's own namespace raise :class:`~dagster_branch.NamespaceViolationError`.
Inventory and removal (the :class:`~dagster_branch.BranchStore` protocol) are the warehouse store's
(:mod:`dagster_branch.stores.warehouse`), which :meth:`BranchDatabaseResource.as_store` hands out.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from dagster import ConfigurableResource, InitResourceContext, MetadataValue, get_dagster_logger
from pydantic import Field, PrivateAttr

from dagster_branch.context import DeploymentContext, DeploymentKind
from dagster_branch.dialects import (
    SQLITE_BUILTIN_SCHEMAS,
    DialectCapabilities,
    SchemaComment,
    attach_sqlite_schemas,
    capabilities_for,
    check_identifier,
    check_identifier_limit,
    create_schema_ddl,
    server_identifier_limit,
    sqlite_schema_path,
)
from dagster_branch.errors import (
    DagsterBranchConfigError,
    DagsterBranchError,
    DagsterBranchNamingError,
    NamespaceViolationError,
)
from dagster_branch.inventory import ObjectKind, OwnedObject, RemovalResult, Survey
from dagster_branch.ledger import Ledger, LedgerEntry, db_error_text, retry_on_conflict
from dagster_branch.naming import Namespace, schema_name, table_name
from dagster_branch.ownership import OWNER_FIELD_DESCRIPTION, Owner
from dagster_branch.seeding import SeededTable, SeedRequest, seed_metadata, seed_tables
from dagster_branch.stores.warehouse import WarehouseSettings, WarehouseStore, same_schema

__all__ = ["BranchDatabaseResource", "TableLocation"]


@dataclass(frozen=True)
class TableLocation:
    """Where a table lives: the physical schema and table names, already routed.

    Use ``schema`` and ``name`` with pandas (``df.to_sql(loc.name, conn, schema=loc.schema)``),
    :meth:`clause` with SQLAlchemy Core, and ``quoted`` (or ``str(loc)``) in text SQL: it is
    quoted by the dialect's own identifier preparer, never spliced.

    Example::

        loc = warehouse.read_table("orders")
        rows = conn.execute(sa.select(sa.literal_column("*")).select_from(loc.clause()))
    """

    schema: str
    name: str
    quoted: str
    is_branch: bool

    def clause(self) -> sa.TableClause:
        """A column-less ``TableClause`` for ``select_from`` and friends."""
        return sa.table(self.name, schema=self.schema)

    def __str__(self) -> str:
        return self.quoted


@dataclass(frozen=True)
class Routing:
    """Everything the resource decided for this deployment (pure data, no I/O)."""

    deployment: DeploymentContext
    caps: DialectCapabilities
    namespace: Namespace | None
    production_schema: str
    target_schema: str
    prefix: str
    max_identifier_bytes: int
    # Every production schema this deployment writes (base_schema, then extra_schemas) -> the
    # schema it writes instead: itself in production, the namespace's version in a branch.
    schemas: dict[str, str]


class BranchDatabaseResource(ConfigurableResource):  # type: ignore[type-arg]
    """A SQLAlchemy warehouse that writes each branch deployment into its own namespace.

    The deployment is read from the environment (``DAGSTER_CLOUD_*``) when the resource is set
    up. Production writes to ``base_schema``; a branch deployment for PR 42 writes to
    ``analytics__pr_42`` (or to tables ``pr_42__…`` in ``branch_schema`` with
    ``strategy="table_prefix"``), reads production where it has not built a table, and records
    what it creates in the ledger so that the cleanup can remove exactly that.

    Credentials: ``branch_url`` (when set) is used by branch deployments and by the cleanup (in
    PostgreSQL only a schema's owner may drop it); ``local_url`` when running locally; ``url``
    otherwise. URLs are secrets: shown only through :attr:`display_url`, with the password hidden.

    Example::

        from dagster import Definitions, EnvVar, asset

        @asset
        def orders(warehouse: BranchDatabaseResource) -> None:
            with warehouse.get_connection() as conn:
                loc = warehouse.table("orders")  # analytics.orders or analytics__pr_42.orders
                conn.execute(sa.text(f"CREATE TABLE {loc} AS SELECT 1 AS id"))

        defs = Definitions(
            assets=[orders],
            resources={"warehouse": BranchDatabaseResource(
                url=EnvVar("WAREHOUSE_URL"), base_schema="analytics")},
        )
    """

    url: str = Field(
        description="SQLAlchemy URL for production and any deployment without an override. "
        "Pass it as EnvVar: it holds a password.",
        repr=False,
    )
    branch_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL used by branch deployments and by the cleanup, when set "
        "(a role that may create and drop branch schemas but not touch production).",
        repr=False,
    )
    local_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL used when running locally (no Dagster+ deployment), when set.",
        repr=False,
    )
    connect_args: dict[str, Any] = Field(
        default={},
        description="Keyword arguments for the driver's connect(), passed to SQLAlchemy's "
        "create_engine(connect_args=...): e.g. Snowflake's role, warehouse, authenticator or "
        "private_key_file. Treated as secret: never logged or shown; give secret values as EnvVar.",
        repr=False,
    )
    base_schema: str = Field(
        description="The production schema (dataset), e.g. 'analytics'. On SQLite it may be "
        "'main' or a name emulated by an attached file.",
    )
    strategy: Literal["schema", "table_prefix"] = Field(
        default="schema",
        description="'schema': branches write to '<base_schema>__<namespace>'. 'table_prefix': "
        "branches write tables '<namespace>__<table>' inside branch_schema.",
    )
    branch_schema: str | None = Field(
        default=None,
        description="The shared development schema for strategy='table_prefix' (required there).",
    )
    seed_tables: list[str] = Field(
        default=[],
        description="Production tables (names in base_schema) copied into a branch's namespace "
        "the first time the branch deployment uses it: zero-copy CREATE TABLE … CLONE on "
        "Snowflake and BigQuery, CREATE TABLE … AS SELECT elsewhere. A table the branch already "
        "has is never copied over; production is only read.",
    )
    extra_schemas: list[str] = Field(
        default=[],
        description="More production schemas that branches mirror with strategy='schema', such "
        "as dbt's custom schemas ('analytics_marts'): a branch writes each as "
        "'<schema>__<namespace>', never the schema itself, and the cleanup removes those.",
    )
    protected_schemas: list[str] = Field(
        default=[],
        description="Schemas that are never written or dropped by branches, besides "
        "base_schema and control_schema.",
    )
    control_schema: str | None = Field(
        default="dagster_branch",
        description="Schema of the ownership ledger table dagster_branch_objects; None disables "
        "the ledger (inventory then relies on discovery alone).",
    )
    store_key: str = Field(
        default="warehouse",
        description="The resource key this resource is bound to, recorded in the ledger.",
    )
    owner: str | None = Field(default=None, description=OWNER_FIELD_DESCRIPTION)
    max_identifier_bytes: int | None = Field(
        default=None,
        ge=16,
        description="Longest identifier allowed; default: the dialect's limit (PostgreSQL 63). "
        "A value above the dialect's limit, or above the limit the server reports (PostgreSQL's "
        "max_identifier_length), is refused.",
    )

    _deployment: DeploymentContext | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)
    _engine: sa.Engine | None = PrivateAttr(default=None)
    _cleanup_engine: sa.Engine | None = PrivateAttr(default=None)
    _ensured: bool = PrivateAttr(default=False)
    _ledgers: dict[int, Ledger] = PrivateAttr(default_factory=dict)
    _seeded: list[SeededTable] = PrivateAttr(default_factory=list)
    _store: WarehouseStore | None = PrivateAttr(default=None)

    # -- lifecycle ------------------------------------------------------------------------------

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Resolve the deployment and check the configuration before any step runs."""
        self._deployment = DeploymentContext.from_env()
        self._run_id = context.run.run_id if context.run is not None else None
        self.routing()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Dispose the engines created during the run."""
        self.close()

    def close(self) -> None:
        """Close every pooled connection; the resource creates new ones if used again."""
        for engine in (self._engine, self._cleanup_engine):
            if engine is not None:
                engine.dispose()
        self._engine = self._cleanup_engine = self._store = None
        self._ledgers.clear()

    # -- routing --------------------------------------------------------------------------------

    @property
    def deployment(self) -> DeploymentContext:
        """The deployment this resource routes for (read from the environment once)."""
        if self._deployment is None:
            self._deployment = DeploymentContext.from_env()
        return self._deployment

    def _active_url(self) -> str:
        kind = self.deployment.kind
        if kind is DeploymentKind.BRANCH and self.branch_url:
            return self.branch_url
        if kind is DeploymentKind.LOCAL and self.local_url:
            return self.local_url
        return self.url

    @property
    def display_url(self) -> str:
        """The URL this deployment connects with, password hidden."""
        return _hide_password(self._active_url())

    def routing(self) -> Routing:
        """Decide where this deployment reads and writes; raise on a configuration that would
        let a branch write to production."""
        deployment = self.deployment
        caps = capabilities_for(_dialect_name(self._active_url()))
        limit = check_identifier_limit(caps, self.max_identifier_bytes)
        base = _required(self.base_schema, "base_schema")
        if self.control_schema is not None and same_schema(self.control_schema, base):
            raise DagsterBranchConfigError(
                f"control_schema {self.control_schema!r} is the production schema: give the "
                "ledger its own schema (default 'dagster_branch')."
            )
        productions = self._production_schemas()
        namespace = deployment.namespace
        if namespace is None:
            return Routing(
                deployment, caps, None, base, base, "", limit, {p: p for p in productions}
            )
        if self.strategy == "table_prefix":
            target = _required(self.branch_schema, "branch_schema (strategy='table_prefix')")
            prefix = namespace.key + "__"
            schemas = {base: target}
        else:
            schemas = {
                p: _naming(functools.partial(schema_name, p, namespace, max_length=limit))
                for p in productions
            }
            target, prefix = schemas[base], ""
        for production, branch in schemas.items():
            if protected := self.protection_of(branch):
                field = "branch_schema" if self.strategy == "table_prefix" else "the branch schema"
                raise DagsterBranchConfigError(
                    f"{field} {branch!r} (of {production!r}) of namespace {namespace} is "
                    f"{protected}: a branch would write there. Choose a development schema of "
                    "its own."
                )
        return Routing(deployment, caps, namespace, base, target, prefix, limit, schemas)

    def _production_schemas(self) -> list[str]:
        """``base_schema`` then ``extra_schemas``, checked: distinct, and not the ledger's."""
        base = _required(self.base_schema, "base_schema")
        extras = [_required(e, "an entry of extra_schemas") for e in self.extra_schemas]
        if extras and self.strategy == "table_prefix":
            raise DagsterBranchConfigError(
                "extra_schemas needs strategy='schema': with 'table_prefix' every branch writes "
                "to branch_schema. Remove extra_schemas or use strategy='schema'."
            )
        seen = {base.casefold()}
        for extra in extras:
            if extra.casefold() in seen:
                raise DagsterBranchConfigError(
                    f"extra_schemas lists {extra!r} twice (or it is base_schema): list each "
                    "other production schema once."
                )
            if self.control_schema is not None and same_schema(extra, self.control_schema):
                raise DagsterBranchConfigError(
                    f"extra_schemas lists the ledger's control_schema {extra!r}: remove it."
                )
            seen.add(extra.casefold())
        return [base, *extras]

    def branch_schema_of(self, production_schema: str) -> str:
        """Where this deployment writes what production keeps in ``production_schema``.

        ``analytics`` -> ``analytics__pr_7`` in PR 7's branch deployment (``analytics`` in
        production), for ``base_schema`` and each of ``extra_schemas``.

        Raises:
            DagsterBranchConfigError: ``production_schema`` is neither; the message says to add
                it to ``extra_schemas``.
        """
        schemas = self.routing().schemas
        for production, routed in schemas.items():
            if same_schema(production, production_schema):
                return routed
        raise DagsterBranchConfigError(
            f"Schema {production_schema!r} is not routed by the {self.store_key!r} resource "
            f"(it routes {', '.join(map(repr, schemas))}): add it to extra_schemas so that "
            "branches write their own version of it and the cleanup can find that."
        )

    def namespace_of_branch_schema(
        self, name: str, *, max_length: int | None = None
    ) -> Namespace | None:
        """The namespace whose version of ``base_schema`` or of an ``extra_schemas`` entry is
        ``name`` (``analytics_marts__pr_7`` -> ``pr_7``), else ``None``. No I/O; ``max_length``
        defaults to the URL's dialect limit."""
        limit = (
            max_length
            or self.max_identifier_bytes
            or capabilities_for(_dialect_name(self.branch_url or self.url)).max_identifier_bytes
        )
        return self.store_settings().namespace_of_branch_schema(name, max_length=limit)

    def protection_of(self, schema: str) -> str | None:
        """Why ``schema`` is off limits to branch writes and to drops, or ``None``."""
        return self.store_settings().protection_of(schema)

    @property
    def namespace(self) -> Namespace | None:
        """This deployment's namespace; ``None`` in production."""
        return self.deployment.namespace

    @property
    def target_schema(self) -> str:
        """Where this deployment writes: ``base_schema`` in production, else its branch schema
        (or ``branch_schema`` with ``strategy='table_prefix'``)."""
        return self.routing().target_schema

    @property
    def production_schema(self) -> str:
        """Where production data lives, for reads."""
        return self.base_schema

    def _location(self, schema: str, name: str, *, is_branch: bool) -> TableLocation:
        caps = self.routing().caps
        check_identifier(caps, schema)
        check_identifier(caps, _required(name, "table name"))
        preparer = self.get_engine().dialect.identifier_preparer
        quoted = f"{preparer.quote_schema(schema)}.{preparer.quote(name)}"
        return TableLocation(schema=schema, name=name, quoted=quoted, is_branch=is_branch)

    def _branch_location(self, name: str) -> TableLocation:
        r = self.routing()
        _required(name, "table name")
        namespace = r.namespace
        if r.prefix and namespace is not None:
            physical = _naming(
                lambda: table_name(name, namespace, max_length=r.max_identifier_bytes)
            )
        else:
            physical = name
        if len(physical.encode()) > r.max_identifier_bytes:
            raise DagsterBranchNamingError(
                f"Table name {name[:40]!r} is longer than {r.max_identifier_bytes} bytes, the "
                f"{r.caps.name} limit: shorten it."
            )
        return self._location(r.target_schema, physical, is_branch=r.namespace is not None)

    def table(self, name: str) -> TableLocation:
        """The physical, quoted place where this deployment writes table ``name``.

        Creates the namespace first (:meth:`ensure_namespace`) and, with the table-prefix
        strategy, records the table in the ledger: calling this means "I am about to write".
        Every call records again (one ``SELECT`` when the row is live): a cleanup that dropped
        the namespace meanwhile and marked its rows dropped is followed by a new live row, never
        by an object the ledger says is gone.
        """
        location = self._branch_location(name)
        self.guard_write(location.schema, location.name)
        self.ensure_namespace()
        r = self.routing()
        if r.prefix and r.namespace is not None:
            self._record(ObjectKind.TABLE, location.name, container=location.schema)
        return location

    def read_table(self, name: str) -> TableLocation:
        """Where to read table ``name``: the branch's own table if it built one, else production's.

        One catalog query in branch and local deployments; none in production.
        """
        r = self.routing()
        if r.namespace is None:
            return self._location(r.production_schema, name, is_branch=False)
        branch = self._branch_location(name)
        with self.get_engine().connect() as conn:
            built = sa.inspect(conn).has_table(branch.name, schema=branch.schema)
        return branch if built else self._location(r.production_schema, name, is_branch=False)

    def guard_write(self, schema: str, table: str | None = None) -> None:
        """Raise :class:`NamespaceViolationError` unless this deployment may write there.

        Production may write only to ``base_schema``; a branch only to its own schema (or, with
        table prefixes, to its own prefixed tables in ``branch_schema``).
        """
        r = self.routing()
        what = f"{schema}.{table}" if table is not None else f"schema {schema}"
        if r.namespace is None:
            if not any(same_schema(schema, p) for p in r.schemas):
                raise NamespaceViolationError(
                    f"The production deployment refused to write {what}: production writes only "
                    f"to base_schema {r.production_schema!r} (and extra_schemas), never to a "
                    "branch's schema."
                )
            return
        if r.prefix:
            allowed = schema == r.target_schema and table is not None and table.startswith(r.prefix)
        else:
            allowed = schema in r.schemas.values()
        if not allowed or self.protection_of(schema):
            where = (
                f"tables '{r.prefix}…' in schema {r.target_schema!r}"
                if r.prefix
                else "schema " + " or ".join(map(repr, r.schemas.values()))
            )
            raise NamespaceViolationError(
                f"Deployment namespace {r.namespace} refused to create, change or drop {what}: "
                f"it is outside its namespace ({where}). Write through table(name) instead."
            )

    def record_created(self, kind: ObjectKind, name: str, *, container: str | None = None) -> None:
        """Record in the ledger an object this deployment created by other means than
        :meth:`table` (dbt's relations and schemas: :mod:`dagster_branch.dbt`).

        Production records nothing. In a branch the object must be in the namespace's own
        schemas (:meth:`guard_write`); each object is written to the ledger once per run.

        Raises:
            NamespaceViolationError: the object is outside this deployment's namespace.
        """
        if kind not in (ObjectKind.SCHEMA, ObjectKind.TABLE, ObjectKind.VIEW):
            raise DagsterBranchConfigError(
                f"A warehouse records schemas, tables and views, not {kind.value} {name!r}."
            )
        if kind is ObjectKind.SCHEMA:
            self.guard_write(name)
        else:
            self.guard_write(_required(container, f"the schema of {kind.value} {name!r}"), name)
        if self.routing().namespace is None:
            return
        # Every call records (one SELECT while the row is live): no cache may hide a row a
        # cleanup marked dropped meanwhile.
        self._record(kind, name, container=container)

    # -- connections ----------------------------------------------------------------------------

    def _create_engine(self, url: str, attach: set[str]) -> sa.Engine:
        try:
            engine = sa.create_engine(url, connect_args=self.resolved_connect_args())
        except (sa.exc.ArgumentError, ImportError, TypeError) as exc:
            # The driver's own reason (e.g. "Connection parameter 'host' cannot be set via the
            # URL query string"), with any password of ours replaced.
            reason = self.redact(db_error_text(exc))
            raise DagsterBranchConfigError(
                f"Cannot create an engine for {_hide_password(url)}: {reason}. Check the URL's "
                "dialect, that its driver is installed, and connect_args."
            ) from None
        caps = capabilities_for(engine.dialect)
        limit = check_identifier_limit(caps, self.max_identifier_bytes)
        # Once per engine, on its first connection: the server's own limit, one statement.
        sa.event.listen(
            engine,
            "first_connect",
            lambda dbapi_conn, _record: _check_server_limit(caps, limit, url, dbapi_conn),
        )
        if caps.attaches_schemas:
            attach_sqlite_schemas(engine, attach)
        return engine

    def get_engine(self) -> sa.Engine:
        """The engine of this deployment's URL, created once and disposed when the run ends."""
        if self._engine is None:
            r = self.routing()
            attach = {r.target_schema}
            if self.control_schema:
                attach.add(self.control_schema)
            if r.namespace is not None:
                # Attach production only if it exists: a branch must not create its file.
                url = sa.make_url(self._active_url())
                if self._sqlite_schema_exists(url, r.production_schema):
                    attach.add(r.production_schema)
            self._engine = self._create_engine(self._active_url(), attach)
        return self._engine

    def _sqlite_schema_exists(self, url: sa.URL, name: str) -> bool:
        if url.get_backend_name() != "sqlite" or name in SQLITE_BUILTIN_SCHEMAS:
            return False
        probe = sa.create_engine(url)
        try:
            return sqlite_schema_path(probe, name).exists()
        finally:
            probe.dispose()

    def get_cleanup_engine(self) -> sa.Engine:
        """The engine inventory and cleanup use: ``branch_url`` when set, else ``url``.

        Branch schemas are owned by the branch role, and in PostgreSQL only a schema's owner (or a
        member of the owning role) may drop it, so the cleanup connects as that role.
        """
        if self._cleanup_engine is None:
            attach = {s for s in (self.control_schema, self.branch_schema) if s}
            if self.strategy == "schema":
                attach.discard(self.branch_schema or "")
            self._cleanup_engine = self._create_engine(self.branch_url or self.url, attach)
        return self._cleanup_engine

    def resolved_connect_args(self) -> dict[str, Any]:
        """``connect_args`` with each ``EnvVar`` replaced by its variable's value.

        Dagster does not resolve an ``EnvVar`` nested in a mapping (it arrives as
        ``{"env": "NAME"}``), so the resource does, when it creates an engine.
        """
        return {key: _resolve_env(value, key) for key, value in self.connect_args.items()}

    @contextlib.contextmanager
    def get_connection(self) -> Iterator[sa.Connection]:
        """A connection inside a transaction: committed on success, rolled back on error."""
        conn = self.get_engine().connect()
        try:
            with conn.begin():
                yield conn
        finally:
            conn.close()

    # -- namespace and ledger -------------------------------------------------------------------

    def ledger(self, engine: sa.Engine | None = None) -> Ledger | None:
        """The ownership ledger on ``engine`` (default: this deployment's), or ``None``."""
        if self.control_schema is None:
            return None
        engine = engine or self.get_engine()
        # One Ledger per engine: it remembers that its table exists, saving catalog queries.
        ledger = self._ledgers.get(id(engine))
        if ledger is None or ledger.engine is not engine:
            ledger = self._ledgers[id(engine)] = Ledger(
                engine, control_schema=self.control_schema, owner=self.resolved_owner()
            )
        return ledger

    def resolved_owner(self) -> Owner:
        """Who this resource's records belong to: ``owner``, else the code location."""
        return Owner.resolve(self.owner, self.deployment)

    def _record(self, kind: ObjectKind, name: str, *, container: str | None = None) -> bool:
        """Record an object of this deployment's namespace; ``True`` if a new live row was
        written (the first time, or after a cleanup marked the last one dropped)."""
        r = self.routing()
        ledger = self.ledger()
        if ledger is not None and r.namespace is not None:
            return ledger.record(
                LedgerEntry(
                    namespace=r.namespace,
                    store=self.store_key,
                    backend=r.caps.name,
                    kind=kind,
                    name=name,
                    container=container,
                    pull_request_id=r.deployment.pull_request_id,
                    branch=r.deployment.git_branch,
                    deployment_name=r.deployment.deployment_name,
                    run_id=self._run_id,
                    git_sha=r.deployment.git_sha,
                )
            )
        return False

    def marker(self) -> str:
        """The comment that marks a branch schema, so a lost ledger can be rebuilt."""
        d = self.deployment
        parts = [f"dagster-branch namespace={d.namespace}"]
        for label, value in (
            ("owner", self.resolved_owner().name),
            ("repository", d.git_repo),
            ("pull_request", d.pull_request_id),
            ("branch", d.git_branch),
            ("deployment", d.deployment_name),
            ("git_sha", d.git_sha),
        ):
            if value:
                parts.append(f"{label}={value}")
        return " ".join(parts)

    def ensure_namespace(self) -> None:
        """Create this deployment's schema if missing and record it; idempotent.

        Production: makes sure ``base_schema`` exists. Branch (schema strategy): a ledger row
        first (which refuses a schema another owner recorded), then ``CREATE SCHEMA IF NOT
        EXISTS`` and a ``COMMENT ON SCHEMA`` marker where the dialect has one. Table-prefix
        strategy: the shared ``branch_schema`` is created only if missing; tables are recorded
        one by one by :meth:`table`. The schema is created once per run; the ledger row is
        checked on every call (one ``SELECT``), and a row a cleanup marked dropped meanwhile is
        recorded again and the schema re-created.
        """
        r = self.routing()
        branch_schema = r.namespace is not None and not r.prefix
        # Recorded first: never an unrecorded schema, nor one of another owner.
        if branch_schema and self._record(ObjectKind.SCHEMA, r.target_schema):
            self._ensured = False  # a new row: the first write, or the schema was cleaned
        if self._ensured:
            return
        try:  # two runs of one branch may race on CREATE SCHEMA
            retry_on_conflict(lambda: self._create_target_schema(r, mark=branch_schema))
        except sa.exc.SQLAlchemyError as exc:
            raise DagsterBranchError(
                f"Could not create schema {r.target_schema!r} on {self.display_url}: "
                f"{self.redact(db_error_text(exc))}. Give this deployment's role CREATE "
                "on the database, or create the schema beforehand."
            ) from exc
        self._ensured = True
        if r.namespace is not None and self.seed_tables:
            self._seed(r)

    def _seed(self, r: Routing) -> None:
        """Copy ``seed_tables`` from production into the namespace (see :mod:`~dagster_branch.
        seeding`); each target goes through :meth:`table`, so it is guarded and recorded."""
        requests = [
            SeedRequest(
                source=(r.production_schema, check_identifier(r.caps, name)),
                target=(location.schema, location.name),
            )
            for name in dict.fromkeys(self.seed_tables)
            for location in [self.table(name)]
        ]
        self._seeded += seed_tables(
            self.get_engine(), r.caps, requests, log=get_dagster_logger(), redact=self.redact
        )

    def take_seed_metadata(self) -> dict[str, MetadataValue]:
        """Materialization metadata of the seeding this run did (tables, method, rows,
        seconds), once: the first output after the seeding reports it, later ones get ``{}``."""
        seeded, self._seeded = self._seeded, []
        return seed_metadata(seeded)

    def _create_target_schema(self, r: Routing, *, mark: bool) -> None:
        with self.get_engine().begin() as conn:
            if r.caps.has_schemas and not sa.inspect(conn).has_schema(r.target_schema):
                if mark:
                    self.guard_write(r.target_schema)
                conn.execute(create_schema_ddl(r.caps, r.target_schema))
                # The catalog compares the exact name (a bound parameter, never truncated): a
                # server that shortened the name created or reused another schema. Raising here
                # rolls the CREATE back (transactional DDL) before any marker is written.
                if not sa.inspect(conn).has_schema(r.target_schema):
                    raise DagsterBranchNamingError(
                        f"Schema {r.target_schema!r} does not exist under that exact name after "
                        f"CREATE SCHEMA on {self.display_url}: the server changed the name "
                        "(truncation?). Set max_identifier_bytes to the server's limit."
                    )
            if mark and r.caps.schema_comments:
                conn.execute(SchemaComment(r.target_schema, self.marker()))

    def redact(self, text: str) -> str:
        """``text`` with any password of this resource's URLs, and every text value of
        ``connect_args``, replaced by ``***``."""
        secrets = [_url_password(url) for url in (self.url, self.branch_url, self.local_url)]
        try:
            secrets += _text_values(self.resolved_connect_args())
        except DagsterBranchConfigError:  # an unset variable: hide what is set
            secrets += _text_values(self.connect_args)
        # Longest first, so that a secret containing another is hidden whole.
        for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    # -- BranchStore ----------------------------------------------------------------------------

    def store_settings(self) -> WarehouseSettings:
        """What the warehouse store needs of this configuration (no I/O)."""
        return WarehouseSettings(
            store_key=self.store_key,
            base_schema=self.base_schema,
            strategy=self.strategy,
            branch_schema=self.branch_schema,
            extra_schemas=tuple(self.extra_schemas),
            protected_schemas=tuple(self.protected_schemas),
            control_schema=self.control_schema,
            max_identifier_bytes=self.max_identifier_bytes,
        )

    def as_store(self) -> WarehouseStore:
        """The warehouse store (inventory and removal), on :meth:`get_cleanup_engine` and this
        resource's ledger there; made once, until :meth:`close`."""
        if self._store is None:
            engine = self.get_cleanup_engine()
            self._store = WarehouseStore(
                engine,
                self.store_settings(),
                self.ledger(engine),
                redact=self.redact,
                display_url=self.display_url,
            )
        return self._store

    def list_namespaces(self) -> set[Namespace]:
        """Every namespace this resource's owner recorded here (live ledger rows)."""
        return self.as_store().list_namespaces()

    def claim_unowned_records(self) -> int:
        """Make this resource's owner the owner of its store's live ledger rows that have none
        (written before owners were recorded); returns how many (``dagster-branch claim``)."""
        ledger = self.ledger(self.get_cleanup_engine())
        return ledger.claim_unowned(store=self.store_key) if ledger is not None else 0

    def unrecorded_objects(self) -> list[OwnedObject]:
        """Objects shaped like a namespace's that no record of this owner names (found by name
        only, or recorded before owners were kept): what ``dagster-branch orphans`` reports."""
        return self.as_store().unrecorded_objects()

    def objects_of(self, namespace: Namespace) -> list[OwnedObject]:
        """The objects ``namespace`` owns here (ledger and discovery, deduplicated)."""
        return self.as_store().objects_of(namespace)

    def last_activity_of(self, namespace: Namespace) -> datetime | None:
        """When a run last wrote ``namespace`` here: the ledger's last activity among its live
        rows (one query), or ``None`` without rows or without a ledger.

        The sensor's ``stale_after`` uses it for namespaces without a pull request. Each run's
        ``ensure_namespace`` (and each table it routes) refreshes it, to within the ledger's
        ``touch_every`` (an hour).
        """
        return self.as_store().last_activity_of(namespace)

    def ownership_problem(self, obj: OwnedObject) -> str | None:
        """Why ``obj`` must not be removed by a cleanup of ``obj.namespace``, else ``None``."""
        return self.as_store().ownership_problem(obj)

    def survey(self, objects: Sequence[OwnedObject], *, limit: int) -> dict[OwnedObject, Survey]:
        """For the plan: what removing each object would delete (itself, and a schema's
        relations) and which objects outside the namespace depend on it."""
        return self.as_store().survey(objects, limit=limit)

    def remove_objects(
        self,
        objects: Sequence[OwnedObject],
        *,
        dry_run: bool,
        log: logging.Logger,
        surveys: Mapping[OwnedObject, Survey] | None = None,
    ) -> list[RemovalResult]:
        """Drop ``objects`` one by one (``IF EXISTS``; on PostgreSQL without ``CASCADE``), and
        refuse those that objects outside the namespace depend on (read again now, whatever
        ``surveys`` said); never raises per object. Connects with :meth:`get_cleanup_engine`."""
        return self.as_store().remove_objects(objects, dry_run=dry_run, log=log, surveys=surveys)


def _check_server_limit(
    caps: DialectCapabilities, limit: int, url: str, dbapi_conn: object
) -> None:
    server = server_identifier_limit(caps, dbapi_conn)
    if server is not None and limit > server:
        raise DagsterBranchConfigError(
            f"The server at {_hide_password(url)} truncates identifiers to {server} bytes "
            f"(max_identifier_length), but names are built up to {limit} bytes: a truncated "
            "branch schema can be production's or another branch's. Set max_identifier_bytes "
            f"to {server} or less."
        )


def _hide_password(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable URL>"


def _url_password(url: str | None) -> str | None:
    try:
        password = sa.make_url(url).password if url else None
    except sa.exc.ArgumentError:
        return None
    return str(password) if password else None


# connect_args values shorter than this (ports, "http", booleans) are not worth hiding and
# would turn every digit of an error message into ***.
_MIN_SECRET_LENGTH = 6


def _text_values(value: Any) -> list[str]:
    """Every text value nested in ``value`` (a ``connect_args`` mapping), long enough to hide."""
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _text_values(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _text_values(v)]
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return [value] if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH else []


def _resolve_env(value: Any, key: str) -> Any:
    """``value`` with EnvVars (as given in Python, or as Dagster passes them on) read."""
    name = getattr(value, "env_var_name", None)  # dagster.EnvVar, outside a run
    if name is None and isinstance(value, Mapping) and set(value) == {"env"}:
        name = value["env"]  # the same EnvVar, as Dagster hands nested config to a run
    if isinstance(name, str):
        resolved = os.environ.get(name)
        if resolved is None:
            raise DagsterBranchConfigError(
                f"connect_args[{key!r}] reads environment variable {name}, which is not set: "
                "set it in the deployment's environment."
            )
        return resolved
    if isinstance(value, Mapping):
        return {k: _resolve_env(v, f"{key}.{k}") for k, v in value.items()}
    return value


def _dialect_name(url: str) -> str:
    try:
        return sa.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        raise DagsterBranchConfigError(
            "The warehouse URL is not a SQLAlchemy URL: expected e.g. "
            "'postgresql+psycopg://user:password@host/db'."
        ) from None


def _required(value: str | None, field: str) -> str:
    if value is None or not value.strip():
        raise DagsterBranchConfigError(f"{field} is empty: set it to a schema or table name.")
    return value


def _naming(build: Callable[[], str]) -> str:
    try:
        return build()
    except DagsterBranchNamingError as exc:
        raise DagsterBranchConfigError(str(exc)) from None
