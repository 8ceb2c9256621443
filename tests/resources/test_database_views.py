"""Views a branch created are found, planned and dropped (before their tables); production's
views, and views of other namespaces, stay. On PostgreSQL, DuckDB and SQLite."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from warehouse_support import Backend

from dagster_branch.dialects import attach_sqlite_schemas
from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import Ledger
from dagster_branch.naming import Namespace
from dagster_branch.resources import BranchDatabaseResource
from tests.support.deployments import Deploy

PR_1, PR_2 = Namespace.parse("pr_1"), Namespace.parse("pr_2")
LOG = logging.getLogger("test.views")
SHARED = "analytics_dev"
PREFIX = {"strategy": "table_prefix", "branch_schema": SHARED}


def _resource(backend: Backend, **config: object) -> BranchDatabaseResource:
    return BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema, **config)  # type: ignore[arg-type]


def _view_sql(backend: Backend, view: str, table: sa.TableClause) -> str:
    """``CREATE VIEW``; SQLite views may only name tables of their own (attached) database."""
    engine = sa.create_engine(backend.url)
    try:
        preparer = engine.dialect.identifier_preparer
        source = (
            preparer.quote(table.name)
            if backend.name == "sqlite"
            else f"{preparer.quote_schema(str(table.schema))}.{preparer.quote(table.name)}"
        )
    finally:
        engine.dispose()
    return f"CREATE VIEW {view} AS SELECT id FROM {source} WHERE id > 0"


def _write(backend: Backend, resource: BranchDatabaseResource, views: dict[str, str]) -> None:
    """Table ``orders`` with two rows, and each view of ``views`` (name -> how it is named:
    ``table()`` routes and records it, ``raw`` is a name written by hand)."""
    try:
        orders = resource.table("orders")
        with resource.get_connection() as conn:
            conn.execute(sa.text(f"CREATE TABLE {orders} (id INTEGER)"))
            conn.execute(sa.text(f"INSERT INTO {orders} VALUES (1), (2)"))
            for name, how in views.items():
                if how == "table()":
                    view = resource.table(name).quoted
                else:
                    quote = resource.get_engine().dialect.identifier_preparer
                    view = f"{quote.quote_schema(orders.schema)}.{quote.quote(name)}"
                conn.execute(sa.text(_view_sql(backend, view, orders.clause())))
    finally:
        resource.close()


def _catalog(backend: Backend, schema: str) -> tuple[set[str], set[str]]:
    engine = sa.create_engine(backend.url)
    if backend.name == "sqlite":
        attach_sqlite_schemas(engine, {schema})
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            return set(inspector.get_table_names(schema)), set(inspector.get_view_names(schema))
    finally:
        engine.dispose()


def _rows(backend: Backend, schema: str, relation: str) -> list[int]:
    engine = sa.create_engine(backend.url)
    if backend.name == "sqlite":
        attach_sqlite_schemas(engine, {schema})
    try:
        with engine.connect() as conn:
            query = sa.select(sa.column("id")).select_from(sa.table(relation, schema=schema))
            return sorted(conn.execute(query).scalars())
    finally:
        engine.dispose()


class Statements:
    """The statements an engine sends (SQLAlchemy's public event API)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.sent: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.sent.append(" ".join(statement.split()))


@pytest.fixture
def production_view(backend: Backend, deploy: Deploy) -> Iterator[None]:
    """Production's table and a view on it, which no cleanup may touch."""
    deploy("production")
    _write(backend, _resource(backend, **PREFIX), {"orders_v": "table()"})
    yield


@pytest.mark.usefixtures("production_view")
def test_table_prefix_views_are_discovered_planned_and_dropped_before_their_tables(
    backend: Backend, deploy: Deploy
) -> None:
    for pr in (1, 2):
        deploy("branch", pr=pr)
        views = {"orders_v": "table()", f"pr_{pr}__by_hand_v": "raw"}
        _write(backend, _resource(backend, **PREFIX), views)
    deploy("production")
    janitor = _resource(backend, **PREFIX)
    try:
        objects = janitor.objects_of(PR_1)
        assert {(o.kind, o.container, o.name): o.found_in for o in objects} == {
            (ObjectKind.TABLE, SHARED, "pr_1__orders"): {"ledger", "discovery"},
            # Recorded by table() as a table; the catalog says it is a view.
            (ObjectKind.VIEW, SHARED, "pr_1__orders_v"): {"ledger", "discovery"},
            (ObjectKind.VIEW, SHARED, "pr_1__by_hand_v"): {"discovery"},
        }
        assert all(janitor.ownership_problem(o) is None for o in objects)

        dry = janitor.remove_objects(objects, dry_run=True, log=LOG)
        assert {(r.obj.name, r.objects, r.removed) for r in dry} == {
            ("pr_1__orders", 1, False),
            ("pr_1__orders_v", 1, False),
            ("pr_1__by_hand_v", 1, False),
        }
        assert len(_catalog(backend, SHARED)[1]) == 4  # the dry run dropped nothing

        statements = Statements(janitor.get_cleanup_engine())
        results = janitor.remove_objects(objects, dry_run=False, log=LOG)
        assert [(r.removed, r.error) for r in results] == [(True, None)] * 3
        drops = [s for s in statements.sent if s.startswith("DROP")]
        assert [d.split()[1] for d in drops] == ["VIEW", "VIEW", "TABLE"]  # views first
        assert all("IF EXISTS" in d for d in drops)

        tables, views = _catalog(backend, SHARED)
        assert tables == {"pr_2__orders"}
        assert views == {"pr_2__orders_v", "pr_2__by_hand_v"}
        assert _rows(backend, SHARED, "pr_2__orders_v") == [1, 2]
        assert _rows(backend, backend.base_schema, "orders_v") == [1, 2]  # production's view
        ledger = janitor.ledger(janitor.get_cleanup_engine())
        assert ledger is not None and ledger.live_entries(PR_1) == []  # table() row closed too
        assert janitor.objects_of(PR_1) == []
        assert PR_2 in janitor.list_namespaces()

        again = janitor.remove_objects(objects, dry_run=False, log=LOG)
        assert [(r.removed, r.objects, r.error) for r in again] == [(True, 0, None)] * 3
    finally:
        janitor.close()


@pytest.mark.usefixtures("production_view")
def test_views_in_a_branch_schema_go_with_the_schema(backend: Backend, deploy: Deploy) -> None:
    deploy("branch", pr=1)
    _write(backend, _resource(backend), {"orders_v": "table()", "recent_v": "raw"})
    deploy("production")
    janitor = _resource(backend)
    branch_schema = f"{backend.base_schema}__pr_1"
    try:
        assert _catalog(backend, branch_schema)[1] == {"orders_v", "recent_v"}
        [schema] = janitor.objects_of(PR_1)
        assert schema.kind is ObjectKind.SCHEMA

        [result] = janitor.remove_objects([schema], dry_run=False, log=LOG)

        assert (result.removed, result.objects, result.error) == (True, 3, None)  # 1 table, 2 views
        assert janitor.objects_of(PR_1) == []
        assert _rows(backend, backend.base_schema, "orders_v") == [1, 2]
    finally:
        janitor.close()
    ledger = Ledger.from_url(backend.url)
    try:
        assert ledger.live_entries(PR_1) == []
    finally:
        ledger.close()
