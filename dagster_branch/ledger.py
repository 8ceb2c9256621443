"""The ownership ledger: one row per object a namespace created, in the warehouse itself.

The ledger is a SQLAlchemy Core table, ``dagster_branch_objects``, in a control schema
(``dagster_branch`` by default) created on first use. Branch deployments record what they create;
the cleanup reads the live rows of a closed namespace, removes those objects, and marks the rows
dropped. Keeping the rows (instead of deleting them) leaves an audit trail, and a failed removal
simply stays live so that the next run retries it.

On SQLite, which has no schemas, the control schema is a sibling database file attached on every
connection (see :mod:`dagster_branch.dialects`); ``control_schema=None`` puts the table in the
default schema instead.

Owners: every row names its :class:`~dagster_branch.ownership.Owner` (columns ``owner`` and
``repository``), stamped by :meth:`Ledger.record` from the ledger's own owner, and every read
sees only that owner's rows. A ledger made before owners were recorded gets the two columns
added on first use (``ALTER TABLE … ADD COLUMN``, nullable); its old rows have no owner and
belong to no one: they are reported, never removed, until claimed (:meth:`Ledger.claim_unowned`,
``dagster-branch claim``) or a run says ``include_unrecorded``.

Example::

    ledger = Ledger.from_url("duckdb:///warehouse.duckdb")
    ledger.ensure()
    ledger.record(LedgerEntry(namespace=Namespace.parse("pr_42"), store="warehouse",
                              backend="duckdb", kind=ObjectKind.SCHEMA, name="analytics__pr_42"))
    ledger.live_entries(Namespace.parse("pr_42"))
    ledger.close()
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import sqlalchemy as sa

from dagster_branch.context import DeploymentContext
from dagster_branch.dialects import (
    attach_sqlite_schemas,
    capabilities_for,
    create_schema_ddl,
    is_write_conflict,
)
from dagster_branch.errors import DagsterBranchError, OwnershipConflictError
from dagster_branch.inventory import ObjectKind, OwnedObject, merge_sources
from dagster_branch.naming import Namespace
from dagster_branch.ownership import OWNER_MAX_LENGTH, Owner

__all__ = [
    "LEDGER_TABLE",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "LedgerInventory",
    "db_error_text",
    "mark_removed",
    "retry_on_conflict",
    "retry_write_conflicts",
]

T = TypeVar("T")

WRITE_CONFLICT_ATTEMPTS = 6
WRITE_CONFLICT_PAUSE_SECONDS = 0.05

LEDGER_TABLE = "dagster_branch_objects"
DEFAULT_TOUCH_EVERY = timedelta(hours=1)
# found_in of a row written before owners were recorded: it belongs to no one (see above).
UNOWNED_SOURCE = "ledger (no owner)"


class LedgerError(DagsterBranchError):
    """The ledger could not be read or written."""


@dataclass(frozen=True)
class LedgerEntry:
    """One object a namespace created, as recorded in (or read from) the ledger.

    ``store`` is the resource key of the branch-aware resource that created it (``warehouse``,
    ``lake``); ``backend`` the system (``postgresql``, ``duckdb``, ``s3``…).
    """

    namespace: Namespace
    store: str
    backend: str
    kind: ObjectKind
    name: str
    container: str | None = None
    pull_request_id: str | None = None
    branch: str | None = None
    created_at: datetime | None = None
    deployment_name: str | None = None
    run_id: str | None = None
    git_sha: str | None = None
    dropped_at: datetime | None = None
    owner: str | None = None
    repository: str | None = None

    @property
    def identity(self) -> tuple[str, str | None, str]:
        """The physical object, whoever recorded it: (backend, container, name). The kind is
        left out: a view created through ``table()`` is recorded as a table."""
        return (self.backend, self.container, self.name)

    def to_owned(self) -> OwnedObject:
        """The inventory view of this entry: found in the ``ledger``, or, for a row without an
        owner, in :data:`UNOWNED_SOURCE` (not a record of anyone's)."""
        return OwnedObject(
            namespace=self.namespace,
            backend=self.backend,
            kind=self.kind,
            name=self.name,
            container=self.container,
            found_in=frozenset({"ledger" if self.owner is not None else UNOWNED_SOURCE}),
        )


@dataclass
class LedgerInventory:
    """Live rows split by owner (see :meth:`Ledger.inventory`)."""

    records: list[LedgerEntry] = field(default_factory=list)
    unowned: list[LedgerEntry] = field(default_factory=list)
    # (backend, container, name) of objects another owner recorded, and that owner.
    foreign: dict[tuple[str, str | None, str], Owner] = field(default_factory=dict)

    def unrecorded(self, discovered: Iterable[OwnedObject]) -> list[OwnedObject]:
        """What a store found by name (``discovered``) or holds rows without owner for, that no
        record of this owner names; objects another owner recorded are left out."""
        mine = {e.identity for e in self.records}
        objects = [e.to_owned() for e in self.unowned] + [
            obj
            for obj in discovered
            if obj.identity not in self.foreign and obj.identity not in mine
        ]
        return [obj for obj in merge_sources(objects) if not obj.recorded]


def _ledger_table(control_schema: str | None) -> sa.Table:
    return sa.Table(
        LEDGER_TABLE,
        sa.MetaData(),
        # A random id keeps every dialect happy (DuckDB has no SERIAL); uniqueness of live rows
        # is enforced in code because partial unique indexes are not portable.
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("pull_request_id", sa.String(32)),
        sa.Column("branch", sa.Text),
        sa.Column("store", sa.String(128), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("container", sa.Text),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_deployment", sa.Text),
        sa.Column("created_by_run", sa.String(64)),
        sa.Column("git_sha", sa.String(64)),
        sa.Column("dropped_at", sa.DateTime(timezone=True)),
        # The last run that wrote the object (at most TOUCH_EVERY old): stale_after reads it.
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        *_owner_columns(),
        schema=control_schema,
    )


def _owner_columns() -> list[sa.Column[Any]]:
    """Added after the first release: :meth:`Ledger.ensure` adds them to older tables."""
    return [
        sa.Column("owner", sa.String(OWNER_MAX_LENGTH)),
        sa.Column("repository", sa.Text),
    ]


def db_error_text(exc: BaseException) -> str:
    """A short description of a database error: the driver's class and first line, no SQL.

    SQLAlchemy's own text appends the statement and its parameters; drivers' first lines name
    the object and the reason but never the password.
    """
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0].replace("\x00", ".")  # DuckDB's paths
    return f"{type(orig).__name__}: {first[:200]}" if first else type(orig).__name__


def retry_on_conflict(
    action: Callable[[], None],
    *,
    done: Callable[[], bool] = lambda: False,
    attempts: int = 5,
    pause: float = 0.05,
) -> None:
    """Run idempotent DDL that concurrent writers may race on (``CREATE SCHEMA IF NOT EXISTS``
    still fails on PostgreSQL when two sessions commit it at once; DuckDB reports write-write
    conflicts). Retries on fresh state; stops early when ``done()`` says a rival finished it."""
    for attempt in range(1, attempts + 1):
        try:
            action()
            return
        except sa.exc.SQLAlchemyError:
            if done():
                return
            if attempt == attempts:
                raise
            time.sleep(pause * attempt)


def retry_write_conflicts(
    action: Callable[[], T],
    *,
    attempts: int = WRITE_CONFLICT_ATTEMPTS,
    pause: float = WRITE_CONFLICT_PAUSE_SECONDS,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Run an idempotent statement again when a concurrent transaction won the race.

    Only write conflicts are retried (:func:`~dagster_branch.dialects.is_write_conflict`), with
    exponential backoff and jitter so two cleanups do not collide again in lockstep; any other
    error is raised at once. ``on_retry(exc, delay)`` is told before each pause.
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except sa.exc.SQLAlchemyError as exc:
            if attempt == attempts or not is_write_conflict(exc):
                raise
            delay = pause * 2 ** (attempt - 1) * random.uniform(1.0, 2.0)  # noqa: S311 (jitter)
            if on_retry is not None:
                on_retry(exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    # SQLite and DuckDB hand back naive datetimes; everything we write is UTC.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


class Ledger:
    """Reads and writes ownership rows in ``<control_schema>.dagster_branch_objects``.

    Args:
        engine: the warehouse engine; the ledger does not dispose it.
        control_schema: schema for the ledger table, created by :meth:`ensure`; ``None`` uses the
            connection's default schema.
        touch_every: how stale a live row's ``last_used_at`` may get before :meth:`record`
            refreshes it (one ``UPDATE``); the precision of :meth:`last_activity`.
        owner: the owner stamped on the rows :meth:`record` writes, and the only owner whose
            rows the reads return and :meth:`mark_dropped` changes. The branch-aware resources
            always pass theirs. Without it the ledger is an administrator's view: it reads and
            marks every owner's rows, and stamps the environment's owner
            (``DAGSTER_CLOUD_LOCATION_NAME``, else ``"default"``) on what it records.

    Example::

        ledger = Ledger(engine)
        ledger.ensure()
        for entry in ledger.live_entries(Namespace.parse("pr_42"), store="warehouse"):
            print(entry.kind.value, entry.name)
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        control_schema: str | None = "dagster_branch",
        touch_every: timedelta = DEFAULT_TOUCH_EVERY,
        owner: Owner | None = None,
    ) -> None:
        self.engine = engine
        self.control_schema = control_schema
        self.touch_every = touch_every
        self.owner = owner or Owner.resolve(None, DeploymentContext.from_env())
        self._every_owner = owner is None
        self.table = _ledger_table(control_schema)
        self._caps = capabilities_for(engine.dialect)
        self._owns_engine = False
        self._ensured = False
        if control_schema is not None and self._caps.attaches_schemas:
            attach_sqlite_schemas(engine, {control_schema})

    @classmethod
    def from_url(
        cls, url: str, *, control_schema: str | None = "dagster_branch", owner: Owner | None = None
    ) -> Ledger:
        """A ledger with its own engine; call :meth:`close` when done."""
        ledger = cls(sa.create_engine(url), control_schema=control_schema, owner=owner)
        ledger._owns_engine = True
        return ledger

    def close(self) -> None:
        """Dispose the engine if this ledger created it."""
        if self._owns_engine:
            self.engine.dispose()

    def ensure(self) -> None:
        """Create the control schema and the ledger table if missing, and add the owner
        columns to a table made by an older release (idempotent; once per instance)."""
        if self._ensured:
            return
        try:
            retry_on_conflict(self._create, done=self._exists)
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(
                f"Could not create the ledger table {self._where()}: {db_error_text(exc)}. "
                "Give this role CREATE rights on the control schema, or create it once with a "
                "role that has them."
            ) from exc
        self._add_owner_columns()
        self._ensured = True

    def _missing_columns(self) -> list[sa.Column[Any]]:
        """The owner columns the existing table lacks: one query that returns no row, its
        column names read from the cursor (the inspector's ``get_columns`` sends three on
        PostgreSQL). Names compare case-insensitively: Snowflake reports them upper case."""
        probe = sa.select(sa.text("*")).select_from(self.table).where(sa.false())
        with self.engine.connect() as conn:
            names = {name.casefold() for name in conn.execute(probe).keys()}  # noqa: SIM118 (a Result, not a dict)
        return [c for c in _owner_columns() if c.name.casefold() not in names]

    def _add_owner_columns(self) -> None:
        """Migrate a ledger made before owners were recorded: one catalog query, and two
        ``ALTER TABLE … ADD COLUMN`` once. Its old rows keep ``owner`` NULL: nobody's."""
        missing = self._missing_columns()
        if not missing:
            return
        preparer = self.engine.dialect.identifier_preparer
        table = preparer.format_table(self.table)

        def add() -> None:
            with self.engine.begin() as conn:
                for column in self._missing_columns():
                    kind = column.type.compile(dialect=self.engine.dialect)
                    conn.execute(
                        sa.text(
                            f"ALTER TABLE {table} ADD COLUMN {preparer.quote(column.name)} {kind}"
                        )
                    )

        try:
            retry_on_conflict(add, done=lambda: not self._missing_columns())
        except sa.exc.SQLAlchemyError as exc:
            columns = ", ".join(c.name for c in missing)
            raise LedgerError(
                f"The ledger table {self._where()} predates owners and lacks column(s) "
                f"{columns}, which this role could not add: {db_error_text(exc)}. Run the "
                "deployment once with the role that created the ledger, or add them by hand "
                f"(owner VARCHAR({OWNER_MAX_LENGTH}), repository TEXT, both nullable)."
            ) from exc

    def _create(self) -> None:
        with self.engine.begin() as conn:
            schema = self.control_schema
            if schema and self._caps.has_schemas and not sa.inspect(conn).has_schema(schema):
                conn.execute(create_schema_ddl(self._caps, schema))
            self.table.create(conn, checkfirst=True)

    def _exists(self) -> bool:
        with self.engine.connect() as conn:
            return sa.inspect(conn).has_table(LEDGER_TABLE, schema=self.control_schema)

    def _where(self) -> str:
        return f"{self.control_schema}.{LEDGER_TABLE}" if self.control_schema else LEDGER_TABLE

    def _live_match(self, entry: LedgerEntry) -> sa.ColumnElement[bool]:
        t = self.table.c
        return sa.and_(
            t.namespace == entry.namespace.key,
            t.store == entry.store,
            t.kind == entry.kind.value,
            _same_container(self.table, entry.container),
            t.name == entry.name,
            t.owner == self.owner.name,
            t.dropped_at.is_(None),
        )

    def _mine(self, *, include_unowned: bool = False) -> sa.ColumnElement[bool]:
        """Rows of this ledger's owner (and, if asked, rows that have no owner)."""
        t = self.table.c
        if self._every_owner:
            return sa.true() if include_unowned else t.owner.is_not(None)
        mine = t.owner == self.owner.name
        return sa.or_(mine, t.owner.is_(None)) if include_unowned else mine

    def _check_not_foreign(self, conn: sa.Connection, entry: LedgerEntry) -> None:
        """Refuse to record an object another owner already recorded (one ``SELECT``)."""
        t = self.table.c
        query = (
            sa.select(t.namespace, t.owner, t.repository)
            .where(
                t.backend == entry.backend,
                t.kind == entry.kind.value,
                _same_container(self.table, entry.container),
                t.name == entry.name,
                t.owner.is_not(None),
                t.dropped_at.is_(None),
            )
            .limit(20)
        )
        for row in conn.execute(query):
            other = Owner(row.owner, row.repository)
            if self.owner.conflicts_with(other):
                where = f"{entry.container}/{entry.name}" if entry.container else entry.name
                raise OwnershipConflictError(
                    f"{entry.kind.value} {where!r} is already recorded by {other.describe()} "
                    f"(namespace {row.namespace}); {self.owner.describe()} would write into it "
                    f"as {entry.namespace}. Two code locations must not share branch names: "
                    "give each its own base_schema or branch_schema (warehouse), prefix or "
                    "branch_root or branch_bucket (S3), or set a distinct owner only if the "
                    "other location is gone."
                )

    def record(self, entry: LedgerEntry) -> bool:
        """Record that ``entry.namespace`` owns this object; ``True`` if a new row was written.

        Idempotent on (namespace, store, kind, container, name) among this owner's live rows.
        An object dropped earlier and created again gets a new live row; the dropped row stays
        as history. A live row's ``last_used_at`` moves to now when it is older than
        ``touch_every``, so the ledger knows when a namespace was last written, not only when it
        was set up. The row is stamped with this ledger's owner (``entry.owner`` is ignored):
        this is the one place that decides who owns a record.

        Raises:
            OwnershipConflictError: another owner has a live row for the same object.
            LedgerError: the ledger could not be read or written.
        """
        self.ensure()
        row: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "namespace": entry.namespace.key,
            "pull_request_id": entry.pull_request_id or entry.namespace.pull_request_id,
            "branch": entry.branch,
            "store": entry.store,
            "backend": entry.backend,
            "kind": entry.kind.value,
            "container": entry.container,
            "name": entry.name,
            "created_at": entry.created_at or datetime.now(timezone.utc),
            "created_by_deployment": entry.deployment_name,
            "created_by_run": entry.run_id,
            "git_sha": entry.git_sha,
            "dropped_at": None,
            "owner": self.owner.name,
            "repository": self.owner.repository,
        }
        t = self.table
        live = sa.select(t.c.id, t.c.last_used_at).where(self._live_match(entry)).limit(1)
        inserted: list[bool] = []

        def insert_or_touch() -> None:
            inserted.clear()
            now = datetime.now(timezone.utc)
            with self.engine.begin() as conn:
                self._check_not_foreign(conn, entry)
                found = conn.execute(live).first()
                if found is None:
                    conn.execute(t.insert().values(**row, last_used_at=row["created_at"]))
                    inserted.append(True)
                elif (_utc(found.last_used_at) or datetime.min.replace(tzinfo=timezone.utc)) <= (
                    now - self.touch_every
                ):  # one UPDATE per object per touch_every, not per run
                    conn.execute(t.update().where(t.c.id == found.id).values(last_used_at=now))

        try:
            retry_on_conflict(insert_or_touch)
            if not inserted:
                return False
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(
                f"Could not record {entry.kind.value} {entry.name!r} of {entry.namespace} in "
                f"the ledger {self._where()}: {db_error_text(exc)}."
            ) from exc
        self._collapse_duplicates(entry)
        return True

    def _collapse_duplicates(self, entry: LedgerEntry) -> None:
        """Two writers that both saw no row both insert; keep the oldest live row only.

        Concurrent collapsers may conflict (DuckDB's optimistic concurrency); the loser retries
        on fresh state, and a duplicate left behind is harmless (inventory deduplicates).
        """
        t = self.table
        for _attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    ids = conn.execute(
                        sa.select(t.c.id)
                        .where(self._live_match(entry))
                        .order_by(t.c.created_at, t.c.id)
                    ).scalars()
                    extra = list(ids)[1:]
                    if extra:
                        conn.execute(t.delete().where(t.c.id.in_(extra)))
                return
            except sa.exc.SQLAlchemyError:
                continue

    def _select(self) -> sa.Select[Any]:
        return sa.select(self.table).order_by(self.table.c.created_at, self.table.c.id)

    def live_entries(
        self,
        namespace: Namespace | None = None,
        *,
        store: str | None = None,
        include_unowned: bool = False,
    ) -> list[LedgerEntry]:
        """This owner's live (not dropped) rows, optionally of one namespace and one store, and
        with ``include_unowned`` the rows that have no owner (``entry.owner`` is ``None``); one
        statement."""
        if not self._exists_cached():
            return []
        query = self._select().where(
            self.table.c.dropped_at.is_(None), self._mine(include_unowned=include_unowned)
        )
        if namespace is not None:
            query = query.where(self.table.c.namespace == namespace.key)
        if store is not None:
            query = query.where(self.table.c.store == store)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [entry for entry in map(_entry_of, rows) if entry is not None]

    def inventory(self, namespace: Namespace | None, *, store: str) -> LedgerInventory:
        """Every live row of ``namespace`` (all namespaces when ``None``), sorted by who owns
        it: this owner's and the unowned rows of ``store``, and the objects other owners
        recorded in any store (so that nobody's discovery claims them). One statement."""
        if not self._exists_cached():
            return LedgerInventory()
        query = self._select().where(self.table.c.dropped_at.is_(None))
        if namespace is not None:
            query = query.where(self.table.c.namespace == namespace.key)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        found = LedgerInventory()
        for entry in filter(None, map(_entry_of, rows)):
            if entry.owner is not None and entry.owner != self.owner.name and not self._every_owner:
                found.foreign[entry.identity] = Owner(entry.owner, entry.repository)
            elif entry.store == store:
                (found.records if entry.owner is not None else found.unowned).append(entry)
        return found

    def namespaces(self, *, store: str | None = None) -> set[Namespace]:
        """Namespaces with at least one live row of this owner (in ``store`` if given); one
        statement."""
        if not self._exists_cached():
            return set()
        t = self.table
        query = sa.select(t.c.namespace).where(t.c.dropped_at.is_(None), self._mine()).distinct()
        if store is not None:
            query = query.where(t.c.store == store)
        with self.engine.connect() as conn:
            keys = conn.execute(query).scalars().all()
        return {ns for ns in map(Namespace.try_parse, keys) if ns is not None}

    def last_activity(self, namespace: Namespace, *, store: str | None = None) -> datetime | None:
        """When a run last created or wrote a live object of ``namespace`` (in ``store`` if
        given), to within ``touch_every``; ``None`` when it has no live rows. One statement."""
        if not self._exists_cached():
            return None
        t = self.table
        used = sa.func.coalesce(t.c.last_used_at, t.c.created_at)
        query = sa.select(sa.func.max(used)).where(
            t.c.namespace == namespace.key, t.c.dropped_at.is_(None), self._mine()
        )
        if store is not None:
            query = query.where(t.c.store == store)
        with self.engine.connect() as conn:
            latest = conn.execute(query).scalar()
        return _utc(latest)

    def mark_dropped(self, entries: Iterable[LedgerEntry], *, at: datetime | None = None) -> int:
        """Mark the live rows of ``entries`` dropped; returns how many rows changed.

        Only this owner's rows, and rows without an owner (the object they describe is gone),
        never another owner's. One ``UPDATE`` per (namespace, store, kind, container) group,
        not one per object.
        """
        groups: dict[tuple[str, str, str, str | None], set[str]] = {}
        for entry in entries:
            key = (entry.namespace.key, entry.store, entry.kind.value, entry.container)
            groups.setdefault(key, set()).add(entry.name)
        if not groups or not self._exists_cached():
            return 0
        when = at or datetime.now(timezone.utc)

        def update() -> int:
            with self.engine.begin() as conn:
                return sum(
                    self._mark_group(conn, group, names, when) for group, names in groups.items()
                )

        try:  # two cleanups of one namespace update the same rows (DuckDB: a conflict)
            changed = retry_write_conflicts(update)
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(
                f"Could not mark {sum(map(len, groups.values()))} object(s) dropped in the "
                f"ledger {self._where()}: {db_error_text(exc)}. Run the cleanup again."
            ) from exc
        return changed

    def _mark_group(
        self,
        conn: sa.Connection,
        group: tuple[str, str, str, str | None],
        names: set[str],
        when: datetime,
    ) -> int:
        namespace, store, kind, container = group
        t = self.table.c
        where = sa.and_(
            t.namespace == namespace,
            t.store == store,
            t.kind == kind,
            t.container.is_(None) if container is None else t.container == container,
            t.name.in_(sorted(names)),
            t.dropped_at.is_(None),
            self._mine(include_unowned=True),
        )
        result = conn.execute(self.table.update().where(where).values(dropped_at=when))
        return result.rowcount or 0

    def claim_unowned(self, *, store: str | None = None) -> int:
        """Stamp this ledger's owner on the live rows that have none (rows written before
        owners were recorded), in ``store`` if given; returns how many rows changed.

        Run it once, from the one code location that wrote them (``dagster-branch claim``):
        the cleanup and the sensor then treat them as that location's records.
        """
        if not self._exists_cached():
            return 0
        t = self.table
        where = sa.and_(t.c.owner.is_(None), t.c.dropped_at.is_(None))
        if store is not None:
            where = sa.and_(where, t.c.store == store)
        values = {"owner": self.owner.name, "repository": self.owner.repository}

        def update() -> int:
            with self.engine.begin() as conn:
                return conn.execute(t.update().where(where).values(**values)).rowcount or 0

        try:
            return retry_write_conflicts(update)
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(
                f"Could not claim the ledger rows without owner in {self._where()}: "
                f"{db_error_text(exc)}."
            ) from exc

    def _exists_cached(self) -> bool:
        """Reading must not create the ledger (a missing ledger simply has no rows), but an
        existing one made by an older release gets its owner columns first."""
        if not self._ensured:
            if not self._exists():
                return False
            self._add_owner_columns()
            self._ensured = True
        return self._ensured


def _entry_of(row: Any) -> LedgerEntry | None:
    namespace = Namespace.try_parse(row["namespace"])
    if namespace is None:  # a hand-edited row: never act on it
        return None
    try:
        kind = ObjectKind(row["kind"])
    except ValueError:
        return None
    return LedgerEntry(
        namespace=namespace,
        store=row["store"],
        backend=row["backend"],
        kind=kind,
        name=row["name"],
        container=row["container"],
        pull_request_id=row["pull_request_id"],
        branch=row["branch"],
        created_at=_utc(row["created_at"]),
        deployment_name=row["created_by_deployment"],
        run_id=row["created_by_run"],
        git_sha=row["git_sha"],
        dropped_at=_utc(row["dropped_at"]),
        owner=row["owner"],
        repository=row["repository"],
    )


def _same_container(table: sa.Table, container: str | None) -> sa.ColumnElement[bool]:
    column = table.c.container
    return column.is_(None) if container is None else column == container


def mark_removed(ledger: Ledger | None, store: str, objects: Sequence[OwnedObject]) -> str | None:
    """Mark the ledger rows of ``objects``, removed from ``store``, dropped: the one path both
    stores take after a removal.

    A view made through ``table()`` was recorded as a table, so a view closes both rows.

    Returns:
        ``None`` when done (or without a ledger, or nothing to mark), else why the ledger could
        not be updated. Never raises: the objects are gone either way, and the caller reports
        them as not done (:func:`~dagster_branch.inventory.ledger_not_updated`).
    """
    if ledger is None or not objects:
        return None
    entries = [
        LedgerEntry(o.namespace, store, o.backend, kind, o.name, o.container)
        for o in objects
        for kind in (
            (ObjectKind.VIEW, ObjectKind.TABLE) if o.kind is ObjectKind.VIEW else (o.kind,)
        )
    ]
    try:
        ledger.mark_dropped(entries)
    except LedgerError as exc:
        return db_error_text(exc.__cause__) if exc.__cause__ is not None else str(exc)
    except sa.exc.SQLAlchemyError as exc:  # reaching the ledger at all failed (before its UPDATE)
        return f"the ledger could not be reached: {db_error_text(exc)}"
    return None
