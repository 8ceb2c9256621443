"""The warehouse store: inventory and removal of a namespace's warehouse objects, the
:class:`~dagster_branch.BranchStore` that :class:`~dagster_branch.BranchDatabaseResource` hands out
(``as_store()``), built from the cleanup engine, :class:`WarehouseSettings` and the ledger.

Inventory = this owner's ledger rows plus discovery; an object found by discovery alone is
*unrecorded* (reported, removed only with ``include_unrecorded``), and one another owner recorded
is left out. Discovery is one catalog query per store whatever the number of schemas
(``get_schema_names``, or with table prefixes ``get_table_names`` and ``get_view_names`` of the
shared schema); on SQLite it lists the sibling schema files and sends
nothing.

Removal handles each object separately and never raises for one object: ``DROP SCHEMA IF EXISTS …
CASCADE`` where the dialect supports it (tables and views counted first so the result says what
went), otherwise and for the table-prefix strategy ``DROP VIEW IF EXISTS`` then ``DROP TABLE IF
EXISTS`` one object at a time (views first: they depend on tables), and on SQLite the views and
tables of the attached file, then the file itself. A write conflict with a concurrent cleanup
(DuckDB's optimistic concurrency) is retried with backoff. Only removed objects are marked dropped
in the ledger, so a rerun retries exactly what failed; a lost ledger update is reported as a
failure (the objects are gone, the rows still live) so that the rerun marks them.

All of it connects with ``branch_url`` when set, else ``url``: in PostgreSQL only the owner of a
schema (the branch role that created it) may drop it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from dagster_branch.dialects import (
    DialectCapabilities,
    capabilities_for,
    check_identifier_limit,
    detach_sqlite_schema,
    drop_schema_ddl,
    drop_table_ddl,
    drop_view_ddl,
    list_schema_names,
    sqlite_schema_files,
    sqlite_schema_path,
)
from dagster_branch.errors import DagsterBranchError, DagsterBranchNamingError
from dagster_branch.inventory import (
    ObjectKind,
    OwnedObject,
    RemovalResult,
    Survey,
    ledger_not_updated,
    merge_sources,
    refused_for_dependents,
)
from dagster_branch.ledger import (
    Ledger,
    LedgerEntry,
    LedgerInventory,
    db_error_text,
    mark_removed,
    retry_write_conflicts,
)
from dagster_branch.naming import Namespace, namespace_of_schema, namespace_of_table, schema_name
from dagster_branch.stores.dependents import outside_dependents
from dagster_branch.stores.drop_order import drop_schema_in_order, schema_contents

__all__ = [
    "RECREATED",
    "SYSTEM_SCHEMAS",
    "WarehouseSettings",
    "WarehouseStore",
    "dependents_of",
    "same_schema",
]

PROGRESS_EVERY_SECONDS = 5.0
_DISCOVERY = frozenset({"discovery"})
_RELATIONS = (ObjectKind.SCHEMA, ObjectKind.TABLE, ObjectKind.VIEW)

# Schemas no cleanup may ever drop, whatever the configuration says.
SYSTEM_SCHEMAS = frozenset(
    {"public", "main", "temp", "information_schema", "pg_catalog", "pg_toast", "dagster_branch"}
)


def same_schema(left: str, right: str) -> bool:
    """Schema names compared case-insensitively: refusing too much is the safe side."""
    return left.casefold() == right.casefold()


@dataclass(frozen=True)
class WarehouseSettings:
    """What the warehouse store needs to know of its resource's configuration (see the fields of
    :class:`~dagster_branch.BranchDatabaseResource`, which builds it with ``store_settings()``).

    Example::

        settings = WarehouseSettings(store_key="warehouse", base_schema="analytics")
        settings.namespace_of_branch_schema("analytics__pr_7", max_length=63)  # pr_7
    """

    store_key: str
    base_schema: str
    strategy: Literal["schema", "table_prefix"] = "schema"
    branch_schema: str | None = None
    extra_schemas: tuple[str, ...] = ()
    protected_schemas: tuple[str, ...] = ()
    control_schema: str | None = None
    max_identifier_bytes: int | None = None

    def protection_of(self, schema: str) -> str | None:
        """Why ``schema`` is off limits to branch writes and to drops, or ``None``."""
        if same_schema(schema, self.base_schema):
            return "the production schema (base_schema)"
        if any(same_schema(schema, e) for e in self.extra_schemas):
            return "a production schema (listed in extra_schemas)"
        if self.control_schema is not None and same_schema(schema, self.control_schema):
            return "the ledger's control_schema"
        if any(same_schema(schema, p) for p in self.protected_schemas):
            return "listed in protected_schemas"
        return None

    def namespace_of_branch_schema(self, name: str, *, max_length: int) -> Namespace | None:
        """The namespace whose version of ``base_schema`` or of an ``extra_schemas`` entry is
        ``name`` (``analytics_marts__pr_7`` -> ``pr_7``), else ``None``. No I/O."""
        for production in (self.base_schema, *self.extra_schemas):
            owner = namespace_of_schema(name, production, max_length=max_length)
            if owner is not None:
                return owner
        return None


class WarehouseStore:
    """The :class:`~dagster_branch.BranchStore` of a SQL warehouse: what its branches own
    there, and their removal (see the module docstring).

    Built from the engine the cleanup connects with, the resource's :class:`WarehouseSettings`
    and its ledger (``None`` without one); ``redact`` hides the resource's secrets in errors.
    :meth:`~dagster_branch.BranchDatabaseResource.as_store` hands one out.

    Example::

        store = warehouse.as_store()
        for namespace in store.list_namespaces():
            print(namespace, [o.qualified_name for o in store.objects_of(namespace)])
    """

    def __init__(
        self,
        engine: sa.Engine,
        settings: WarehouseSettings,
        ledger: Ledger | None,
        *,
        redact: Callable[[str], str],
        display_url: str,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.ledger = ledger
        self.redact = redact
        self.display_url = display_url

    def _caps_and_limit(self) -> tuple[DialectCapabilities, int]:
        caps = capabilities_for(self.engine.dialect)
        return caps, check_identifier_limit(caps, self.settings.max_identifier_bytes)

    # -- inventory ------------------------------------------------------------------------------

    def discover(self) -> list[OwnedObject]:
        """Objects whose names parse back to a namespace: one catalog query for schemas (none on
        SQLite), two (tables, views) for table prefixes."""
        engine, settings = self.engine, self.settings
        caps, limit = self._caps_and_limit()
        found: list[OwnedObject] = []
        if settings.strategy == "table_prefix":
            container = settings.branch_schema
            with engine.connect() as conn:
                inspector = sa.inspect(conn)
                relations = [(ObjectKind.TABLE, t) for t in inspector.get_table_names(container)]
                relations += [(ObjectKind.VIEW, v) for v in inspector.get_view_names(container)]
            for kind, name in relations:
                namespace = namespace_of_table(name)
                if namespace is not None:
                    found.append(
                        OwnedObject(namespace, caps.name, kind, name, container, _DISCOVERY)
                    )
            return found
        if caps.attaches_schemas:
            names: Iterable[str] = sqlite_schema_files(engine)
        else:
            with engine.connect() as conn:
                names = list_schema_names(conn)
        for name in names:
            namespace = settings.namespace_of_branch_schema(name, max_length=limit)
            if namespace is not None:
                found.append(
                    OwnedObject(namespace, caps.name, ObjectKind.SCHEMA, name, None, _DISCOVERY)
                )
        return found

    def _inventory(self, namespace: Namespace | None) -> LedgerInventory:
        if self.ledger is None:
            return LedgerInventory()
        return self.ledger.inventory(namespace, store=self.settings.store_key)

    def list_namespaces(self) -> set[Namespace]:
        """Namespaces this owner recorded (live ledger rows): one statement. Objects found by
        name only are not listed here (the sensor never cleans them); :meth:`unrecorded_objects`
        has them."""
        if self.ledger is None:
            return set()
        return self.ledger.namespaces(store=self.settings.store_key)

    def objects_of(self, namespace: Namespace) -> list[OwnedObject]:
        """The namespace's objects from this owner's ledger rows (and rows without owner) and
        from discovery, merged by identity; objects another owner recorded are left out."""
        found = self._inventory(namespace)
        discovered = [
            obj
            for obj in self.discover()
            if obj.namespace == namespace and obj.identity not in found.foreign
        ]
        # table() records whatever the branch creates as a table, views included: the catalog
        # knows.
        views = {(o.container, o.name) for o in discovered if o.kind is ObjectKind.VIEW}
        recorded = [
            replace(o, kind=ObjectKind.VIEW)
            if o.kind is ObjectKind.TABLE and (o.container, o.name) in views
            else o
            for o in (e.to_owned() for e in found.records + found.unowned)
        ]
        return merge_sources(recorded + discovered)

    def unrecorded_objects(self) -> list[OwnedObject]:
        """Every object shaped like a namespace's that no record of this owner names: found by
        name only, or recorded without owner. Another owner's objects are left out. Two
        statements (the ledger, the catalog)."""
        return self._inventory(None).unrecorded(self.discover())

    def last_activity_of(self, namespace: Namespace) -> datetime | None:
        """When a run last wrote ``namespace`` here: the ledger's last activity among its live
        rows (one query), or ``None`` without rows or without a ledger."""
        if self.ledger is None:
            return None
        return self.ledger.last_activity(namespace, store=self.settings.store_key)

    def ownership_problem(self, obj: OwnedObject) -> str | None:
        """The second key of the safety invariant: why ``obj`` must not be removed, or ``None``.

        The object must be exactly where the resource's current routing rules put
        ``obj.namespace``: its schema ``<base_schema>__<namespace>`` (or a table or view inside
        it) with ``strategy="schema"``, a table or view ``<namespace>__…`` in ``branch_schema``
        with ``strategy="table_prefix"``. A record (ledger row) naming any other place is a
        *mismatch*: refused, whatever the record says.
        """
        settings = self.settings
        caps, limit = self._caps_and_limit()
        what = f"{obj.kind.value} {obj.qualified_name!r}"
        if obj.backend != caps.name:
            return f"{what} belongs to a {obj.backend} store, not this {caps.name} warehouse"
        schema = obj.name if obj.kind is ObjectKind.SCHEMA else obj.container
        if obj.kind not in _RELATIONS or schema is None:
            return f"mismatch: {what} is not a schema or a schema-qualified table or view"
        if protected := self._protection(schema):
            return f"{what} is in schema {schema!r}, which is {protected}"
        expected = self._expected_places(obj.namespace, limit)
        if settings.strategy == "table_prefix":
            owner = namespace_of_table(obj.name) if obj.kind is not ObjectKind.SCHEMA else None
            in_place = schema in expected and owner == obj.namespace
        else:  # the namespace's version of base_schema or of an extra schema, or a table in it
            in_place = schema in expected
            owner = settings.namespace_of_branch_schema(schema, max_length=limit)
        if in_place:
            return None
        if owner is not None and owner != obj.namespace:
            return f"{what} does not parse back to namespace {obj.namespace} (it parses to {owner})"
        shown = " or ".join(repr(e) for e in sorted(expected))
        place = (
            f"tables '{obj.namespace.key}__…' in schema {shown}"
            if settings.strategy == "table_prefix"
            else f"schema {shown}"
        )
        return (
            f"mismatch: {what} is not where the current configuration puts {obj.namespace} "
            f"({place}); it is not removed. If the configuration changed since it was recorded, "
            "remove it by hand and mark its ledger row dropped"
        )

    def _expected_places(self, namespace: Namespace, limit: int) -> set[str]:
        """The schemas the routing rules give ``namespace`` today: its version of
        ``base_schema`` and of each of ``extra_schemas``, or the shared ``branch_schema`` with
        table prefixes."""
        settings = self.settings
        if settings.strategy == "table_prefix":
            return {settings.branch_schema} if settings.branch_schema else set()
        places: set[str] = set()
        for production in (settings.base_schema, *settings.extra_schemas):
            try:
                places.add(schema_name(production, namespace, max_length=limit))
            except DagsterBranchNamingError:
                continue
        return places

    def _protection(self, schema: str) -> str | None:
        if reason := self.settings.protection_of(schema):
            return reason
        if schema.casefold() in SYSTEM_SCHEMAS and schema != self.settings.branch_schema:
            return "a system schema"
        return None

    # -- survey ---------------------------------------------------------------------------------

    def survey(self, objects: Sequence[OwnedObject], *, limit: int) -> dict[OwnedObject, Survey]:
        """What removing each object would take: itself plus, for a schema, the relations
        inside (counted as the dry run counts them), and the objects outside that depend on it.

        One dependency query for all objects, then one count per schema (two catalogue queries;
        on PostgreSQL, the drop-order query). ``limit`` is not needed: a schema's relations are
        counted in one query however many there are.

        Raises:
            DagsterBranchError: the warehouse could not be read (the plan then fails; nothing is
                removed unchecked).
        """
        engine = self.engine
        caps = capabilities_for(engine.dialect)
        log = logging.getLogger(__name__)
        try:
            dependents = dependents_of(engine, objects)
            existing = _existing_relations(
                engine, [o for o in objects if o.kind is not ObjectKind.SCHEMA]
            )
            surveys: dict[OwnedObject, Survey] = {}
            for obj in objects:
                inside = 0
                if obj.kind is ObjectKind.SCHEMA:
                    inside = _remove_schema(engine, caps, obj.name, dry_run=True, log=log)
                elif _remove_relation(engine, caps, obj, existing, dry_run=True) == 0:
                    inside = -1  # already gone: nothing to remove
                dependent = tuple(dependents.get(obj, ()))
                surveys[obj] = Survey(contents=1 + inside, dependents=dependent)
        except sa.exc.SQLAlchemyError as exc:
            raise DagsterBranchError(
                f"Could not count the warehouse objects to remove on {self.display_url}: "
                f"{self.redact(db_error_text(exc))}"
            ) from exc
        return surveys

    # -- removal --------------------------------------------------------------------------------

    def remove_objects(
        self,
        objects: Sequence[OwnedObject],
        *,
        dry_run: bool,
        log: logging.Logger,
        surveys: Mapping[OwnedObject, Survey] | None = None,
    ) -> list[RemovalResult]:
        """Drop (or with ``dry_run`` only count) each object, ``IF EXISTS`` and on PostgreSQL
        without ``CASCADE``; refuse those that objects outside the namespace depend on (read
        again now, whatever ``surveys`` said). Failures are returned, not raised."""
        engine, redact = self.engine, self.redact
        caps = capabilities_for(engine.dialect)
        existing = _existing_relations(
            engine, [o for o in objects if o.kind is not ObjectKind.SCHEMA]
        )
        results: list[RemovalResult] = []
        progress = _RemovalProgress(log, len(objects), "would check" if dry_run else "removed")
        owned: list[OwnedObject] = []
        for obj in objects:
            problem = self.ownership_problem(obj)
            if problem is not None:
                log.warning("Refusing to remove %s: %s", obj.qualified_name, problem)
                results.append(RemovalResult(obj, removed=False, error=problem))
            else:
                owned.append(obj)
        # PostgreSQL's schemas are checked inside the transaction that drops them (one
        # ``SET LOCAL jit = off`` for both, and nothing can come between the check and the drop);
        # a dry run drops nothing, so it checks them here with the rest.
        checked_when_dropped = {o for o in owned if not dry_run and _checked_when_dropped(caps, o)}
        try:
            dependents = dependents_of(engine, [o for o in owned if o not in checked_when_dropped])
        except sa.exc.SQLAlchemyError as exc:  # fail closed: nothing is removed unchecked
            reason = (
                f"its dependents could not be read, so it was not removed: {db_error_text(exc)}"
            )
            log.error("Could not read the dependents of %d object(s): %s", len(owned), reason)
            return results + [
                RemovalResult(obj, removed=False, error=redact(f"{obj.qualified_name}: {reason}"))
                for obj in owned
            ]
        # Views before tables: a view depends on its tables, and tables are dropped without
        # CASCADE.
        for obj in sorted(owned, key=lambda o: o.kind is not ObjectKind.VIEW):
            if obj in dependents:
                results.append(_refused(log, obj, dependents[obj]))
                continue
            try:
                count = retry_write_conflicts(
                    functools.partial(
                        _remove_one, engine, caps, obj, existing, dry_run=dry_run, log=log
                    ),
                    on_retry=functools.partial(_log_conflict, log, obj),
                )
            except _HasDependents as found:
                results.append(_refused(log, obj, found.lines))
                continue
            except Exception as exc:  # each object separately: report and carry on
                error = redact(f"{obj.qualified_name}: {db_error_text(exc)}")
                log.error("Could not remove %s %s", obj.kind.value, error)
                results.append(RemovalResult(obj, removed=False, error=error))
            else:
                results.append(RemovalResult(obj, removed=not dry_run, objects=count))
            progress.step()
        if not dry_run:
            results, ledger_error = self._record_removals(caps, results, log)
            if ledger_error is not None:
                # The objects are gone but their rows still say live: report it as a failure so
                # the run says so; a rerun drops IF EXISTS (a no-op) and marks the rows then.
                log.error(
                    "%d removed object(s) could not be marked dropped in the ledger: %s",
                    sum(r.removed for r in results),
                    ledger_error,
                )
                results = ledger_not_updated(results, ledger_error)
        return results

    def _record_removals(
        self, caps: DialectCapabilities, results: list[RemovalResult], log: logging.Logger
    ) -> tuple[list[RemovalResult], str | None]:
        """Mark dropped only what is verifiably gone: the catalog is asked before the
        ``UPDATE`` (what is back is not marked) and after it (what came back meanwhile is
        recorded again), so a write racing the cleanup never leaves an object whose rows all
        say dropped."""
        engine = self.engine
        removed = [r.obj for r in results if r.removed]
        back = _still_there(engine, caps, removed)
        ledger_error = self._mark_dropped([o for o in removed if o not in back])
        if ledger_error is None:
            late = _still_there(engine, caps, [o for o in removed if o not in back])
            ledger_error = self._record_again(late)
            back |= late
        for obj in sorted(back):
            log.warning("%s %s: %s", obj.kind.value, obj.qualified_name, RECREATED)
        results = [
            replace(r, removed=False, error=RECREATED) if r.obj in back else r for r in results
        ]
        return results, ledger_error

    def _record_again(self, objects: set[OwnedObject]) -> str | None:
        """A new live row for each object that came back after its row was marked dropped."""
        if self.ledger is None or not objects:
            return None
        key = self.settings.store_key
        try:
            for o in sorted(objects):
                self.ledger.record(
                    LedgerEntry(o.namespace, key, o.backend, o.kind, o.name, o.container)
                )
        except DagsterBranchError as exc:
            return self.redact(str(exc))
        return None

    def _mark_dropped(self, removed: list[OwnedObject]) -> str | None:
        """Mark ``removed`` dropped in the ledger; why that failed (redacted), else ``None``."""
        reason = mark_removed(self.ledger, self.settings.store_key, removed)
        return None if reason is None else self.redact(reason)


def dependents_of(
    engine: sa.Engine, objects: Sequence[OwnedObject]
) -> dict[OwnedObject, list[str]]:
    """Objects outside ``objects`` that depend on one of them, by object: one catalogue query
    (PostgreSQL, DuckDB), none elsewhere (see :mod:`dagster_branch.stores.dependents`)."""
    schemas = {o.name: o for o in objects if o.kind is ObjectKind.SCHEMA}
    relations = {
        (o.container, o.name): o
        for o in objects
        if o.kind is not ObjectKind.SCHEMA and o.container is not None
    }
    if capabilities_for(engine.dialect).dependency_catalog is None or not (schemas or relations):
        return {}
    with engine.connect() as conn:
        found = outside_dependents(conn, schemas=set(schemas), relations=set(relations))
    by_object: dict[OwnedObject, list[str]] = {}
    for (schema, relation), lines in found.items():
        obj = schemas.get(schema) if relation is None else relations.get((schema, relation))
        if obj is not None:
            by_object[obj] = lines
    return by_object


def _checked_when_dropped(caps: DialectCapabilities, obj: OwnedObject) -> bool:
    """A schema dropped without ``CASCADE`` (PostgreSQL) has its outside dependents read in the
    drop's own transaction, by :func:`_remove_schema_restrict`."""
    return obj.kind is ObjectKind.SCHEMA and caps.drop_restrict and not caps.attaches_schemas


class _HasDependents(Exception):
    """Raised inside a drop's transaction (which it rolls back) when objects outside the
    namespace depend on the object: it is refused, not failed."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def _refused(log: logging.Logger, obj: OwnedObject, dependents: list[str]) -> RemovalResult:
    log.warning(
        "Refusing to remove %s: objects outside %s depend on it: %s",
        obj.qualified_name,
        obj.namespace,
        "; ".join(dependents),
    )
    return refused_for_dependents(obj, dependents)


@dataclass(frozen=True)
class _Relations:
    """The tables and views of one schema, as the catalog lists them."""

    tables: frozenset[str] = frozenset()
    views: frozenset[str] = frozenset()


def _existing_relations(engine: sa.Engine, objects: list[OwnedObject]) -> dict[str, _Relations]:
    """Existing tables and views per container: two queries per schema, not one per object.

    A schema that cannot be listed is left out; its objects then report their own errors.
    """
    containers = sorted({o.container for o in objects if o.container is not None})
    found: dict[str, _Relations] = {}
    if not containers:
        return found
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for container in containers:
                found[container] = _Relations(
                    frozenset(inspector.get_table_names(schema=container)),
                    frozenset(inspector.get_view_names(schema=container)),
                )
    except sa.exc.SQLAlchemyError:
        pass
    return found


def _log_conflict(log: logging.Logger, obj: OwnedObject, exc: BaseException, delay: float) -> None:
    log.info(
        "Removing %s met a concurrent change (%s); retrying in %.2fs",
        obj.qualified_name,
        db_error_text(exc),
        delay,
    )


def _remove_one(
    engine: sa.Engine,
    caps: DialectCapabilities,
    obj: OwnedObject,
    existing: dict[str, _Relations],
    *,
    dry_run: bool,
    log: logging.Logger,
) -> int:
    if obj.kind is ObjectKind.SCHEMA:
        return _remove_schema(engine, caps, obj.name, dry_run=dry_run, log=log)
    return _remove_relation(engine, caps, obj, existing, dry_run=dry_run)


def _remove_relation(
    engine: sa.Engine,
    caps: DialectCapabilities,
    obj: OwnedObject,
    existing: dict[str, _Relations],
    *,
    dry_run: bool,
) -> int:
    """``DROP VIEW IF EXISTS`` or ``DROP TABLE IF EXISTS``; a ledger row says "table" for a
    view created through ``table()``, so the catalog decides which."""
    relations = existing.get(obj.container or "", _Relations())
    is_view = obj.kind is ObjectKind.VIEW or obj.name in relations.views
    count = int(obj.name in (relations.views if is_view else relations.tables))
    if not dry_run:
        drop = drop_view_ddl if is_view else drop_table_ddl
        with engine.begin() as conn:
            conn.execute(drop(caps, obj.name, obj.container))
    return count


def _remove_schema(
    engine: sa.Engine, caps: DialectCapabilities, name: str, *, dry_run: bool, log: logging.Logger
) -> int:
    if caps.attaches_schemas:
        return _remove_sqlite_schema(engine, caps, name, dry_run=dry_run)
    if caps.drop_restrict:
        return _remove_schema_restrict(engine, name, dry_run=dry_run, log=log)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = inspector.get_table_names(schema=name)
        views = inspector.get_view_names(schema=name)
        if dry_run:
            return len(tables) + len(views)
        if caps.drop_schema_cascade and caps.drop_schema_if_exists:
            conn.execute(drop_schema_ddl(caps, name))  # one statement for the whole schema
        else:
            _drop_views_then_tables(conn, caps, name, views, tables)
            if sa.inspect(conn).has_schema(name):
                conn.execute(sa.schema.DropSchema(name))
        conn.commit()
    log.info("Dropped schema %s (%d tables, %d views)", name, len(tables), len(views))
    return len(tables) + len(views)


def _remove_schema_restrict(
    engine: sa.Engine, name: str, *, dry_run: bool, log: logging.Logger
) -> int:
    """PostgreSQL: the objects outside that depend on the schema (any: refused, nothing
    dropped), then the schema's objects in dependency order and ``DROP SCHEMA`` without
    ``CASCADE``, in one transaction: if something outside came to depend on the schema
    meanwhile, the server refuses and nothing of it is removed. A dry run only counts."""
    with engine.connect() as conn:
        if dry_run:  # counting only: the caller read the dependents with the other objects
            return schema_contents(conn, name).relations
        try:
            found = outside_dependents(conn, schemas={name})  # switches JIT off first
        except sa.exc.SQLAlchemyError as exc:  # fail closed: nothing is removed unchecked
            raise DagsterBranchError(
                f"its dependents could not be read, so it was not removed: {db_error_text(exc)}"
            ) from exc
        if found:
            raise _HasDependents(next(iter(found.values())))
        contents = schema_contents(conn, name, jit_is_off=True)  # none for a schema gone
        statements = drop_schema_in_order(conn, name, contents)
        conn.commit()
    log.info(
        "Dropped schema %s (%d relations, %d objects in all) with %d DROP statements, no CASCADE",
        name,
        contents.relations,
        len(contents.objects),
        statements,
    )
    return contents.relations


def _drop_views_then_tables(
    conn: sa.Connection, caps: DialectCapabilities, schema: str, views: list[str], tables: list[str]
) -> None:
    for view in views:
        conn.execute(drop_view_ddl(caps, view, schema))
    for table in tables:
        conn.execute(drop_table_ddl(caps, table, schema))


def _remove_sqlite_schema(
    engine: sa.Engine, caps: DialectCapabilities, name: str, *, dry_run: bool
) -> int:
    """SQLite: drop the attached file's views and tables, DETACH it, then delete the file."""
    path = sqlite_schema_path(engine, name)
    if not path.exists():
        return 0
    quoted = engine.dialect.identifier_preparer.quote(name)
    with engine.connect() as conn:
        attached = {row[1] for row in conn.exec_driver_sql("PRAGMA database_list")}
        attach_here = name not in attached
        if attach_here:
            conn.exec_driver_sql(f"ATTACH DATABASE ? AS {quoted}", (str(path),))
        inspector = sa.inspect(conn)
        tables = inspector.get_table_names(schema=name)
        views = inspector.get_view_names(schema=name)
        if not dry_run:
            _drop_views_then_tables(conn, caps, name, views, tables)
            conn.commit()
        if attach_here or not dry_run:
            conn.exec_driver_sql(f"DETACH DATABASE {quoted}")
            conn.commit()
    if not dry_run:
        detach_sqlite_schema(engine, name)  # no pooled connection may keep the file open
        for leftover in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal"))):
            leftover.unlink(missing_ok=True)
    return len(tables) + len(views)


RECREATED = (
    "it was created again while the cleanup ran (a branch run still writing?), so its ledger "
    "row stays live; run the cleanup again once the branch stopped writing"
)


def _still_there(
    engine: sa.Engine, caps: DialectCapabilities, objects: list[OwnedObject]
) -> set[OwnedObject]:
    """Which of ``objects`` exist: one catalog query per schema and per container."""
    if not objects:
        return set()
    relations = _existing_relations(engine, [o for o in objects if o.kind is not ObjectKind.SCHEMA])
    found: set[OwnedObject] = set()
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for obj in objects:
            if obj.kind is ObjectKind.SCHEMA:
                exists = (
                    sqlite_schema_path(engine, obj.name).exists()
                    if caps.attaches_schemas
                    else inspector.has_schema(obj.name)
                )
            else:
                here = relations.get(obj.container or "", _Relations())
                exists = obj.name in here.tables | here.views
            if exists:
                found.add(obj)
    return found


class _RemovalProgress:
    """A log line with counts at most every few seconds during long removals."""

    def __init__(self, log: logging.Logger, total: int, verb: str) -> None:
        self.log, self.total, self.verb = log, total, verb
        self.done = 0
        self.last = time.monotonic()

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_SECONDS and self.done < self.total:
            self.log.info(
                "Warehouse cleanup: %s %d of %d objects", self.verb, self.done, self.total
            )
            self.last = now
