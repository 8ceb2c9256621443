"""Inventory and removal through the BranchStore protocol, on real warehouses."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from warehouse_support import Backend

from dagster_branch.cleanup.plan import build_cleanup_plan
from dagster_branch.detection import ReportsActivity
from dagster_branch.inventory import BranchStore, ObjectKind, OwnedObject
from dagster_branch.ledger import LEDGER_TABLE, Ledger, LedgerEntry
from dagster_branch.naming import Namespace
from dagster_branch.resources import BranchDatabaseResource
from tests.support.deployments import Deploy

PR_1, PR_2 = Namespace.parse("pr_1"), Namespace.parse("pr_2")
DEV = Namespace.for_developer("alice")
LOG = logging.getLogger("test.cleanup")


def build_everywhere(backend: Backend, deploy: Deploy, **config: Any) -> None:
    """Production, PR 1, PR 2 and a laptop each write two tables through the resource."""
    for kind, pr in (("production", None), ("branch", 1), ("branch", 2), ("local", None)):
        deploy(kind, pr=pr)
        warehouse = BranchDatabaseResource(
            url=backend.url, base_schema=backend.base_schema, **config
        )
        try:
            for name in ("orders", "order_totals"):
                location = warehouse.table(name)
                table = sa.Table(
                    location.name,
                    sa.MetaData(),
                    sa.Column("id", sa.Integer),
                    schema=location.schema,
                )
                with warehouse.get_connection() as conn:
                    table.create(conn)
                    conn.execute(table.insert(), [{"id": 1}, {"id": 2}])
        finally:
            warehouse.close()


@pytest.fixture
def janitor(backend: Backend, deploy: Deploy) -> Iterator[BranchDatabaseResource]:
    """The warehouse resource as the production deployment's cleanup sees it."""
    build_everywhere(backend, deploy)
    deploy("production")
    resource = BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema)
    try:
        yield resource
    finally:
        resource.close()


def snapshot(backend: Backend, schema: str) -> dict[str, list[tuple[object, ...]]]:
    return {table: backend.read(schema, table) for table in sorted(backend.tables(schema))}


def test_is_a_branch_store(janitor: BranchDatabaseResource) -> None:
    assert isinstance(janitor, BranchStore)


def test_inventory_from_ledger_and_discovery(
    backend: Backend, janitor: BranchDatabaseResource
) -> None:
    assert janitor.list_namespaces() == {PR_1, PR_2, DEV}
    [schema] = janitor.objects_of(PR_1)
    assert (schema.kind, schema.name, schema.container, schema.backend) == (
        ObjectKind.SCHEMA,
        f"{backend.base_schema}__pr_1",
        None,
        backend.name,
    )
    assert schema.found_in == frozenset({"ledger", "discovery"})
    assert janitor.objects_of(Namespace.parse("pr_99")) == []


def test_a_lost_ledger_leaves_the_schemas_unrecorded_until_a_run_includes_them(
    backend: Backend, janitor: BranchDatabaseResource
) -> None:
    engine = janitor.get_cleanup_engine()
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE dagster_branch.{LEDGER_TABLE}"))
    assert janitor.list_namespaces() == set()  # the sensor cleans nothing found by name only
    assert {o.namespace for o in janitor.unrecorded_objects()} == {PR_1, PR_2, DEV}
    plan = build_cleanup_plan(PR_2, {"warehouse": janitor})
    [planned] = plan.kept
    assert planned.obj.found_in == frozenset({"discovery"}) and not plan.removable
    included = build_cleanup_plan(PR_2, {"warehouse": janitor}, include_unrecorded=True)
    [result] = janitor.remove_objects(included.objects_for("warehouse"), dry_run=False, log=LOG)
    assert result.removed and result.error is None
    assert {o.namespace for o in janitor.unrecorded_objects()} == {PR_1, DEV}


def test_ownership_problem_is_the_second_key(
    backend: Backend, janitor: BranchDatabaseResource
) -> None:
    base, kind = backend.base_schema, backend.name

    def schema(namespace: Namespace, name: str, backend_name: str = kind) -> OwnedObject:
        return OwnedObject(namespace, backend_name, ObjectKind.SCHEMA, name)

    assert janitor.ownership_problem(schema(PR_1, f"{base}__pr_1")) is None
    refused = {
        "production": schema(PR_1, base),
        "another namespace": schema(PR_1, f"{base}__pr_2"),
        "ledger": schema(PR_1, "dagster_branch"),
        "lookalike": schema(PR_1, "other__pr_1"),
        "other backend": schema(PR_1, f"{base}__pr_1", "s3"),
        "table in production": OwnedObject(PR_1, kind, ObjectKind.TABLE, "pr_1__x", base),
        "bucket": OwnedObject(PR_1, kind, ObjectKind.BUCKET, f"{base}__pr_1"),
    }
    for label, obj in refused.items():
        assert janitor.ownership_problem(obj), label


def test_remove_exactly_the_namespace_dry_run_first_then_twice(
    backend: Backend, janitor: BranchDatabaseResource
) -> None:
    base = backend.base_schema
    untouched = {s: snapshot(backend, s) for s in (base, f"{base}__pr_2", f"{base}__{DEV}")}
    objects = janitor.objects_of(PR_1)

    dry = janitor.remove_objects(objects, dry_run=True, log=LOG)
    assert [(r.removed, r.objects, r.error) for r in dry] == [(False, 2, None)]
    assert backend.tables(f"{base}__pr_1") == {"orders", "order_totals"}
    assert janitor.objects_of(PR_1) == objects

    removed = janitor.remove_objects(objects, dry_run=False, log=LOG)
    assert [(r.removed, r.objects, r.error) for r in removed] == [(True, 2, None)]
    assert f"{base}__pr_1" not in backend.schemas()
    assert janitor.objects_of(PR_1) == []
    assert janitor.list_namespaces() == {PR_2, DEV}
    assert {s: snapshot(backend, s) for s in untouched} == untouched

    again = janitor.remove_objects(objects, dry_run=False, log=LOG)  # a rerun, or a second run
    assert [(r.removed, r.objects, r.error) for r in again] == [(True, 0, None)]

    ledger = Ledger(janitor.get_cleanup_engine())
    dropped = [e for e in ledger.live_entries() if e.namespace == PR_1]
    assert dropped == []
    assert {e.namespace for e in ledger.live_entries()} == {PR_2, DEV}


def test_refused_objects_are_reported_and_left_alone(
    backend: Backend, janitor: BranchDatabaseResource
) -> None:
    base = backend.base_schema
    forged = OwnedObject(PR_1, backend.name, ObjectKind.SCHEMA, base)
    before = snapshot(backend, base)
    [result] = janitor.remove_objects([forged], dry_run=False, log=LOG)
    assert not result.removed
    assert result.error and "production schema" in result.error
    assert snapshot(backend, base) == before


def test_table_prefix_cleanup_drops_only_the_prefix(backend: Backend, deploy: Deploy) -> None:
    shared = "analytics_dev"
    config = {"strategy": "table_prefix", "branch_schema": shared}
    build_everywhere(backend, deploy, **config)
    deploy("production")
    janitor = BranchDatabaseResource(url=backend.url, base_schema=backend.base_schema, **config)  # type: ignore[arg-type]
    try:
        with janitor.get_cleanup_engine().begin() as conn:  # a table nobody's namespace owns
            conn.execute(sa.text(f"CREATE TABLE {shared}.pr_lookup (x INTEGER)"))
        before_production = snapshot(backend, backend.base_schema)
        assert janitor.list_namespaces() == {PR_1, PR_2, DEV}
        objects = janitor.objects_of(PR_1)
        assert {(o.kind, o.container, o.name) for o in objects} == {
            (ObjectKind.TABLE, shared, "pr_1__orders"),
            (ObjectKind.TABLE, shared, "pr_1__order_totals"),
        }
        assert all(o.found_in == {"ledger", "discovery"} for o in objects)

        assert all(not r.removed for r in janitor.remove_objects(objects, dry_run=True, log=LOG))
        results = janitor.remove_objects(objects, dry_run=False, log=LOG)
        assert [(r.removed, r.objects) for r in results] == [(True, 1), (True, 1)]
        assert backend.tables(shared) == {
            "pr_2__orders",
            "pr_2__order_totals",
            f"{DEV}__orders",
            f"{DEV}__order_totals",
            "pr_lookup",
        }
        assert snapshot(backend, backend.base_schema) == before_production
        assert janitor.objects_of(PR_1) == []
        again = janitor.remove_objects(objects, dry_run=False, log=LOG)
        assert [(r.removed, r.objects, r.error) for r in again] == [
            (True, 0, None),
            (True, 0, None),
        ]
    finally:
        janitor.close()


def test_failures_are_captured_per_object_without_the_password(
    postgres_url: str, deploy: Deploy
) -> None:
    secret = "Pa55-word-xyz"
    unreachable = sa.make_url(postgres_url).set(port=1, password=secret)
    deploy("production")
    janitor = BranchDatabaseResource(
        url=unreachable.render_as_string(hide_password=False), base_schema="analytics"
    )
    objects = [
        OwnedObject(PR_1, "postgresql", ObjectKind.SCHEMA, "analytics__pr_1"),
        OwnedObject(PR_2, "postgresql", ObjectKind.SCHEMA, "analytics__pr_2"),
    ]
    try:
        results = janitor.remove_objects(objects, dry_run=False, log=LOG)
    finally:
        janitor.close()
    assert [r.removed for r in results] == [False, False]
    for result in results:
        assert result.error and "analytics__pr_" in result.error
        assert secret not in result.error


class StatementCounter:
    """Counts the statements an engine sends (SQLAlchemy's public event API)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.statements.append(statement)


@pytest.mark.parametrize("store", ["postgres_url", "duckdb_url"])
def test_inventory_and_cleanup_are_not_n_plus_one(
    request: pytest.FixtureRequest, deploy: Deploy, store: str
) -> None:
    url = str(request.getfixturevalue(store))
    setup = sa.create_engine(url)
    with setup.begin() as conn:
        for number in range(1, 301):  # 300 branch schemas
            conn.execute(sa.text(f"CREATE SCHEMA analytics__pr_{number}"))
        for number in range(300):  # one of them with 300 tables
            conn.execute(sa.text(f"CREATE TABLE analytics__pr_1.t{number} (x INTEGER)"))
    setup.dispose()

    deploy("production")
    janitor = BranchDatabaseResource(url=url, base_schema="analytics")
    try:
        counter = StatementCounter(janitor.get_cleanup_engine())
        assert len(janitor.unrecorded_objects()) == 300  # made by hand: nobody recorded them
        listing = len(counter.statements)

        counter.statements.clear()
        objects = janitor.objects_of(PR_1)
        results = janitor.remove_objects(objects, dry_run=False, log=LOG)
        cleanup = counter.statements
    finally:
        janitor.close()
    assert [(r.removed, r.objects) for r in results] == [(True, 300)]
    assert listing <= 3, "one discovery query, plus the ledger lookup"
    drops = [s for s in cleanup if s.startswith("DROP")]
    if store == "postgres_url":  # the 300 tables in one DROP TABLE, then the schema, no CASCADE
        assert [d.split()[:2] for d in drops] == [["DROP", "TABLE"], ["DROP", "SCHEMA"]]
        assert drops[0].count(", ") == 299
        assert not any("CASCADE" in d for d in drops)
    else:
        assert len(drops) == 1
    # objects_of (ledger lookup, discovery), the dependents check, the drop-order query (on
    # PostgreSQL in the drop's transaction, one SET LOCAL jit = off for both), the drops, then
    # the re-checks before and after the ledger update (nothing written meanwhile is marked
    # removed): flat in the number of tables.
    assert len(cleanup) <= 10, [" ".join(s.split())[:140] for s in cleanup]


def test_last_activity_is_the_newest_live_ledger_row_in_one_query(
    backend: Backend, deploy: Deploy
) -> None:
    before = datetime.now(timezone.utc)
    build_everywhere(backend, deploy, strategy="table_prefix", branch_schema="development")
    after = datetime.now(timezone.utc)
    deploy("production")
    janitor = BranchDatabaseResource(
        url=backend.url,
        base_schema=backend.base_schema,
        strategy="table_prefix",
        branch_schema="development",
    )
    try:
        assert isinstance(janitor, ReportsActivity)
        built = janitor.last_activity_of(PR_1)
        assert built is not None and before <= built <= after
        assert built.tzinfo is not None  # comparable with the sensor's aware clock

        # A table PR 1 created later wins; a newer row that was dropped does not count, nor
        # does another namespace or another store.
        ledger = janitor.ledger(janitor.get_cleanup_engine())
        assert ledger is not None
        later, latest = built + timedelta(hours=2), built + timedelta(hours=5)
        ledger.record(_table_entry(PR_1, "pr_1__late", later))
        ledger.record(_table_entry(PR_1, "pr_1__gone", latest))
        ledger.mark_dropped([_table_entry(PR_1, "pr_1__gone", latest)])
        ledger.record(_table_entry(PR_2, "pr_2__newest", latest))
        ledger.record(_table_entry(PR_1, "pr_1__elsewhere", latest, store="lake"))

        counter = StatementCounter(janitor.get_cleanup_engine())
        assert janitor.last_activity_of(PR_1) == later
        assert len(counter.statements) == 1
        assert janitor.last_activity_of(Namespace.parse("pr_99")) is None
    finally:
        janitor.close()
    without_ledger = BranchDatabaseResource(
        url=backend.url, base_schema=backend.base_schema, control_schema=None
    )
    try:
        assert without_ledger.last_activity_of(PR_1) is None
    finally:
        without_ledger.close()


def _table_entry(
    namespace: Namespace, name: str, created_at: datetime, *, store: str = "warehouse"
) -> LedgerEntry:
    return LedgerEntry(
        namespace=namespace,
        store=store,
        backend="test",
        kind=ObjectKind.TABLE,
        name=name,
        container="development",
        created_at=created_at,
    )
