"""The safety property (docs/safety.md, promise 1), with hypothesis, on real stores.

For random namespaces (pull requests, arbitrary unicode branch names, developers), random
configurations of both stores, and random sets of objects (production data, branch data written
through the real resources, near-miss names crafted to look like someone's branch objects, and
the same namespaces written by another code location sharing the warehouse, the ledger and the
S3 server), the cleanup of any namespace:

1. plans only objects of that namespace, each of which parses back to it (soundness);
2. plans every object that namespace's branch deployments wrote (completeness);
3. is refused by verification for any other object forged into its plan;
4. with forged or misplaced ledger rows of its own owner (another location's objects, the
   production bucket, another bucket), refuses each of them, and even asked to remove them
   directly the stores refuse them;
5. once executed, leaves everything outside the namespace exactly as it was, the other
   location's objects of the same namespace included.

The warehouse is a real DuckDB or SQLite file, the lake a real S3 server over HTTP.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from dagster_branch import BranchDatabaseResource, DagsterBranchError, Namespace
from dagster_branch.cleanup.plan import CleanupPlan, PlannedObject, build_cleanup_plan
from dagster_branch.cleanup.verify import check_plan
from dagster_branch.dialects import capabilities_for, sqlite_schema_path
from dagster_branch.inventory import ObjectKind, OwnedObject
from dagster_branch.ledger import Ledger, LedgerEntry
from dagster_branch.naming import (
    bucket_name,
    namespace_of_bucket,
    namespace_of_key,
    namespace_of_schema,
    namespace_of_table,
    namespace_prefix,
    schema_name,
    table_name,
)
from dagster_branch.resources.s3 import BranchS3Resource
from tests.support.servers import LocalS3

pull_requests = st.integers(min_value=1, max_value=10**9).map(Namespace.for_pull_request)
branches = (
    st.text(min_size=1, max_size=60).filter(lambda s: bool(s.strip())).map(Namespace.for_branch)
)
developers = st.text(min_size=1, max_size=20).map(Namespace.for_developer)
namespaces = st.one_of(pull_requests, branches, developers)


@dataclass(frozen=True)
class Config:
    backend: str
    base: str
    db_strategy: str
    protected: tuple[str, ...]
    s3_strategy: str
    prefix: str
    branch_root: str
    separate_branch_bucket: bool


configs = st.builds(
    Config,
    backend=st.sampled_from(["duckdb", "sqlite"]),
    base=st.sampled_from(["analytics", "marts", "sales_2024", "a" * 55]),
    db_strategy=st.sampled_from(["schema", "table_prefix"]),
    protected=st.lists(st.sampled_from(["finance", "hr", "analytics_archive"]), max_size=2).map(
        tuple
    ),
    s3_strategy=st.sampled_from(["prefix", "bucket"]),
    prefix=st.sampled_from(["lake", "data/lake", "x"]),
    branch_root=st.sampled_from(["_branches", "b", "_branches/deep", "branches"]),
    separate_branch_bucket=st.booleans(),
)


OTHER = "ml"  # a second code location sharing every store, with names of its own


@dataclass
class World:
    """What exists, and who owns it, in one example."""

    config: Config
    folder: Path
    bucket: str
    s3: LocalS3
    owned: dict[Namespace, set[tuple[str, str]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.config.backend}:///{self.folder / f'warehouse.{self.config.backend}'}"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.folder / 'lake-ledger.sqlite'}"

    @property
    def max_identifier_bytes(self) -> int:
        """The dialect's identifier limit: names past it are shortened with a hash."""
        return capabilities_for(self.config.backend).max_identifier_bytes

    @property
    def branch_bucket(self) -> str | None:
        c = self.config
        return (
            f"{self.bucket}-br" if c.separate_branch_bucket and c.s3_strategy == "prefix" else None
        )

    @property
    def branch_schema(self) -> str | None:
        return "dev_shared" if self.config.db_strategy == "table_prefix" else None

    def warehouse(self) -> BranchDatabaseResource:
        c = self.config
        return BranchDatabaseResource(
            url=self.url,
            base_schema=c.base,
            strategy=c.db_strategy,  # type: ignore[arg-type]
            branch_schema=self.branch_schema,
            protected_schemas=list(c.protected),
        )

    def lake(self) -> BranchS3Resource:
        c = self.config
        return BranchS3Resource(
            bucket=self.bucket,
            prefix=c.prefix,
            strategy=c.s3_strategy,  # type: ignore[arg-type]
            branch_root=c.branch_root,
            branch_bucket=self.branch_bucket,
            endpoint_url=self.s3.endpoint_url,
            region_name="us-east-1",
            ledger_url=self.ledger_url,
            max_attempts=1,
            retry_base_delay_seconds=0.0,
        )

    def stores(self) -> dict[str, Any]:
        return {"warehouse": self.warehouse(), "lake": self.lake()}

    # The other location: base schema 'ml', development schema 'dev_ml', branch root
    # 'ml_branches' in the same branch bucket, or namespace buckets from '<bucket>-ml'.
    @property
    def other_bucket(self) -> str:
        return self.bucket if self.config.s3_strategy == "prefix" else f"{self.bucket}-ml"

    def other_stores(self) -> dict[str, Any]:
        c = self.config
        warehouse = BranchDatabaseResource(
            url=self.url,
            base_schema="ml",
            strategy=c.db_strategy,  # type: ignore[arg-type]
            branch_schema="dev_ml" if c.db_strategy == "table_prefix" else None,
            owner=OTHER,
        )
        lake = BranchS3Resource(
            bucket=self.other_bucket,
            prefix="ml",
            strategy=c.s3_strategy,  # type: ignore[arg-type]
            branch_root="ml_branches",
            branch_bucket=self.branch_bucket,
            endpoint_url=self.s3.endpoint_url,
            region_name="us-east-1",
            ledger_url=self.ledger_url,
            owner=OTHER,
            max_attempts=1,
        )
        return {"warehouse": warehouse, "lake": lake}


# -- building a world ---------------------------------------------------------------------------


def _switch(monkeypatch: pytest.MonkeyPatch, namespace: Namespace | None) -> None:
    for name in ("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "DAGSTER_BRANCH_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod" if namespace is None else "5f2c0a")
    if namespace is not None:
        monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
        monkeypatch.setenv("DAGSTER_BRANCH_NAMESPACE", namespace.key)


def _write_as(
    world: World,
    namespace: Namespace | None,
    monkeypatch: pytest.MonkeyPatch,
    *,
    other: bool = False,
) -> None:
    """What a deployment's assets do: one table, one file, through the real resources."""
    _switch(monkeypatch, namespace)
    stores = world.other_stores() if other else world.stores()
    warehouse, lake = stores["warehouse"], stores["lake"]
    try:
        with warehouse.get_connection() as conn:
            conn.execute(sa.text(f"CREATE TABLE {warehouse.table('orders')} AS SELECT 1 AS id"))
        lake.get_client().put_object(Bucket=lake.bucket_name, Key=lake.key("f.csv"), Body=b"1")
    finally:
        warehouse.close()
        lake.close()
    if namespace is not None and not other:
        c = world.config
        if c.db_strategy == "schema":
            db = ("schema", schema_name(c.base, namespace, max_length=world.max_identifier_bytes))
        else:
            db = ("table", f"dev_shared.{table_name('orders', namespace)}")
        if c.s3_strategy == "prefix":
            bucket = world.branch_bucket or world.bucket
            s3 = ("prefix", f"{bucket}/{namespace_prefix(namespace, root=c.branch_root)}")
        else:
            s3 = ("bucket", bucket_name(world.bucket, namespace))
        world.owned.setdefault(namespace, set()).update({db, s3})


def _create_schema_with_table(world: World, schema: str, table: str = "t") -> None:
    """A schema (or attached SQLite file) made by someone else, not through our resources."""
    if world.config.backend == "sqlite":
        probe = sa.create_engine(world.url)
        try:
            path = sqlite_schema_path(probe, schema)
        finally:
            probe.dispose()
        with sqlite3.connect(path) as conn:
            conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (x INTEGER)')
        return
    engine = sa.create_engine(world.url)
    try:
        with engine.begin() as conn:
            quote = engine.dialect.identifier_preparer.quote
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}"))
            conn.execute(sa.text(f"CREATE TABLE {quote(schema)}.{quote(table)} AS SELECT 1 AS x"))
    finally:
        engine.dispose()


def _near_misses(world: World, namespace: Namespace) -> None:
    """Objects whose names look like ``namespace``'s but are not (or not here)."""
    c, key = world.config, namespace.key
    schemas = {f"{c.base}__{key}x", f"{c.base}_{key}", f"x{c.base}__{key}", f"other__{key}"}
    for schema in schemas:
        _create_schema_with_table(world, schema)
    if c.db_strategy == "table_prefix":
        for table in (f"{key}x__orders", f"{key}_orders", f"x{key}__orders"):
            _create_schema_with_table(world, "dev_shared", table)
    client = boto3.client("s3", endpoint_url=world.s3.endpoint_url, region_name="us-east-1")
    root = c.branch_root.strip("/")
    shared = world.branch_bucket or world.bucket
    for near in (
        f"{root}/{key}x/f",
        f"{root}/{key}",
        f"{root}{key}/f",
        f"{c.prefix}/{root}/{key}/f",
    ):
        client.put_object(Bucket=shared, Key=near, Body=b"near miss")
    if c.s3_strategy == "bucket":
        for other in (
            bucket_name(f"o{world.bucket}", namespace),
            bucket_name(world.bucket, namespace) + "x",
        ):
            if len(other) <= 63:
                client.create_bucket(Bucket=other)
                client.put_object(Bucket=other, Key="f", Body=b"someone else's")


# -- snapshots ----------------------------------------------------------------------------------


def _warehouse_snapshot(world: World) -> dict[str, str]:
    """Every table outside the ledger as ``schema.table``, with its rows."""
    found: dict[str, str] = {}
    if world.config.backend == "sqlite":  # one file per schema, read without our code
        head, tail = "warehouse.sqlite.", ".sqlite"
        for path in sorted(world.folder.glob(f"{head}*{tail}")):
            schema = unquote(path.name[len(head) : -len(tail)])
            if schema == "dagster_branch":
                continue
            with sqlite3.connect(path) as conn:
                names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                for (table,) in names.fetchall():
                    rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
                    found[f"{schema}.{table}"] = repr(sorted(rows))
        return found
    engine = sa.create_engine(world.url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema <> 'dagster_branch'"
                )
            ).all()
            for schema, table in tables:
                query = sa.select(sa.text("*")).select_from(sa.table(table, schema=schema))
                found[f"{schema}.{table}"] = repr(sorted(map(tuple, conn.execute(query))))
    finally:
        engine.dispose()
    return found


def _s3_snapshot(world: World) -> dict[str, str]:
    client = boto3.client("s3", endpoint_url=world.s3.endpoint_url, region_name="us-east-1")
    found: dict[str, str] = {}
    for bucket in client.list_buckets()["Buckets"]:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for item in page.get("Contents", []):
                found[f"{bucket['Name']}/{item['Key']}"] = item["ETag"]
    return found


def _is_of(world: World, key: str, namespace: Namespace) -> bool:
    """Whether a snapshot entry is one of ``namespace``'s own objects (independent check)."""
    for kind, name in world.owned.get(namespace, set()):
        if kind == "schema" and key.startswith(f"{name}."):
            return True
        if kind == "table" and key == name:
            return True
        if kind == "prefix" and key.startswith(name):
            return True
        if kind == "bucket" and key.startswith(f"{name}/"):
            return True
    return False


# -- the property -------------------------------------------------------------------------------


def _independent_owner(world: World, planned: PlannedObject) -> Namespace | None:
    """The namespace the object's name parses back to, by the naming rules alone."""
    obj, c = planned.obj, world.config
    if obj.kind is ObjectKind.SCHEMA:
        return namespace_of_schema(obj.name, c.base, max_length=world.max_identifier_bytes)
    if obj.kind is ObjectKind.TABLE:
        return namespace_of_table(obj.name) if obj.container == "dev_shared" else None
    if obj.kind is ObjectKind.PREFIX:
        if obj.container != (world.branch_bucket or world.bucket):
            return None
        owner = namespace_of_key(obj.name, root=c.branch_root.strip("/"))
        ok = owner is not None and obj.name == namespace_prefix(owner, root=c.branch_root)
        return owner if ok else None
    if obj.kind is ObjectKind.BUCKET:
        return namespace_of_bucket(obj.name, world.bucket)
    return None


def _described(planned: PlannedObject) -> tuple[str, str]:
    obj = planned.obj
    if obj.kind is ObjectKind.TABLE:
        return "table", f"{obj.container}.{obj.name}"
    if obj.kind is ObjectKind.PREFIX:
        return "prefix", f"{obj.container}/{obj.name}"
    return obj.kind.value, obj.name


LEDGER = frozenset({"ledger"})  # forged as if a ledger row of the cleaning owner recorded it


def _foreign_objects(world: World, target: Namespace) -> list[PlannedObject]:
    """Everything in the world that is not ``target``'s, forged as if it were (and recorded)."""
    c = world.config
    backend = c.backend
    forged: list[PlannedObject] = []
    schemas = {c.base, "dagster_branch", "dev_shared", "main", *c.protected}
    schemas |= {f"{c.base}__{ns.key}x" for ns in world.owned} | {f"other__{target.key}"}
    limit = world.max_identifier_bytes
    schemas |= {schema_name(c.base, ns, max_length=limit) for ns in world.owned if ns != target}
    for schema in schemas:
        forged.append(
            PlannedObject(
                "warehouse", OwnedObject(target, backend, ObjectKind.SCHEMA, schema, None, LEDGER)
            )
        )
    for table in (f"{target.key}x__orders", "orders"):
        obj = OwnedObject(target, backend, ObjectKind.TABLE, table, "dev_shared", LEDGER)
        forged.append(PlannedObject("warehouse", obj))
    shared = world.branch_bucket or world.bucket
    root = c.branch_root.strip("/")
    prefixes = {f"{c.prefix}/", f"{root}/", "", f"{root}/{target.key}x/", f"{root}/{target.key}"}
    prefixes |= {namespace_prefix(ns, root=root) for ns in world.owned if ns != target}
    for prefix in prefixes:
        for bucket in {shared, world.bucket}:
            obj = OwnedObject(target, "s3", ObjectKind.PREFIX, prefix, bucket, LEDGER)
            forged.append(PlannedObject("lake", obj))
    buckets = {world.bucket, shared} | {
        bucket_name(world.bucket, ns) for ns in world.owned if ns != target
    }
    for bucket in buckets:
        obj = OwnedObject(target, "s3", ObjectKind.BUCKET, bucket, None, LEDGER)
        forged.append(PlannedObject("lake", obj))
    return forged


def _misplaced(world: World, target: Namespace) -> list[tuple[str, LedgerEntry]]:
    """Ledger rows of the cleaning owner naming ``target`` in places its configuration never
    gives it: the other location's schema, table, prefix or bucket, production's schema, the
    namespace folder in the production bucket or in a bucket nobody configured."""
    c, backend = world.config, world.config.backend
    limit = world.max_identifier_bytes
    rows = [
        ("warehouse", ObjectKind.SCHEMA, schema_name("ml", target, max_length=limit), None),
        ("warehouse", ObjectKind.SCHEMA, c.base, None),
        ("warehouse", ObjectKind.TABLE, table_name("orders", target), "dev_ml"),
        ("lake", ObjectKind.PREFIX, namespace_prefix(target, root="ml_branches"),
         world.branch_bucket or world.bucket),
        ("lake", ObjectKind.PREFIX, namespace_prefix(target, root=c.branch_root), "unrelated"),
        ("lake", ObjectKind.BUCKET, bucket_name(f"{world.bucket}-ml", target), None),
    ]  # fmt: skip
    if world.branch_bucket is not None or c.s3_strategy == "bucket":  # else its right place
        folder = namespace_prefix(target, root=c.branch_root)
        rows.append(("lake", ObjectKind.PREFIX, folder, world.bucket))
    entries = []
    for store, kind, name, container in rows:
        entry = LedgerEntry(
            target, store, backend if store == "warehouse" else "s3", kind, name, container
        )
        if _described_entry(entry) not in world.owned.get(target, set()):
            entries.append((store, entry))
    return entries


def _described_entry(entry: LedgerEntry) -> tuple[str, str]:
    if entry.kind is ObjectKind.TABLE:
        return "table", f"{entry.container}.{entry.name}"
    if entry.kind is ObjectKind.PREFIX:
        return "prefix", f"{entry.container}/{entry.name}"
    return entry.kind.value, entry.name


def _forge(ledger: Ledger, entry: LedgerEntry) -> None:
    """A hand-edited ledger row in the cleaning owner's name: written behind ``record()``'s
    back, which would refuse the rows that name the other location's objects."""
    ledger.ensure()
    with ledger.engine.begin() as conn:
        conn.execute(
            ledger.table.insert().values(
                id=f"forged{next(_examples)}",
                namespace=entry.namespace.key,
                store=entry.store,
                backend=entry.backend,
                kind=entry.kind.value,
                container=entry.container,
                name=entry.name,
                created_at=sa.func.current_timestamp(),
                owner=ledger.owner.name,
            )
        )


_examples = itertools.count()


@pytest.fixture
def s3(s3_server: LocalS3, monkeypatch: pytest.MonkeyPatch) -> LocalS3:
    """The session's S3 server (reset by each example), with dummy credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.mark.timeout(1800)  # 25 examples on real stores: minutes on a busy machine
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    config=configs,
    present=st.lists(namespaces, min_size=1, max_size=2, unique=True),
    extra=namespaces,
    pick=st.integers(min_value=0, max_value=9),
    shared=st.booleans(),
)
def test_the_cleanup_of_any_namespace_touches_only_that_namespace(
    config: Config,
    present: list[Namespace],
    extra: Namespace,
    pick: int,
    shared: bool,
    s3: LocalS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    number = next(_examples)
    s3.reset()
    folder = tmp_path / f"example-{number}"
    folder.mkdir()
    world = World(config, folder, bucket=f"acme-{number}", s3=s3)
    try:
        world.lake().layout()
    except DagsterBranchError:
        assume(False)  # a configuration the resource refuses (tested in tests/security)
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name="us-east-1")
    for bucket in {world.bucket, world.branch_bucket or world.bucket}:
        client.create_bucket(Bucket=bucket)
    _write_as(world, None, monkeypatch)
    for namespace in present:
        _write_as(world, namespace, monkeypatch)
        _near_misses(world, namespace)
    target = present[pick % len(present)] if pick < 7 else extra
    if shared:  # another code location wrote the same namespaces (PR numbers repeat)
        for namespace in {*present, target}:
            _write_as(world, namespace, monkeypatch, other=True)
    _switch(monkeypatch, None)  # the cleanup runs in production
    stores = world.stores()
    try:
        warehouse_before, s3_before = _warehouse_snapshot(world), _s3_snapshot(world)
        own = world.owned.get(target, set())

        plan = build_cleanup_plan(target, stores)
        event(f"{config.backend}/{config.db_strategy}/{config.s3_strategy}: {len(plan)} planned")

        # 1. Soundness: only the target's objects, each parsing back to it by the naming rules.
        for planned in plan:
            assert planned.obj.namespace == target
            assert _independent_owner(world, planned) == target, planned.describe()
        # 2. Completeness: everything the target's deployments wrote.
        assert {_described(planned) for planned in plan} == own
        # 3. Verification passes the plan, and refuses anything else forged into it.
        assert check_plan(plan, stores, source=None, require_closed=False).reasons == ()
        forged = {f for f in _foreign_objects(world, target) if _described(f) not in own}
        for planned in forged:
            assert stores[planned.store_key].ownership_problem(planned.obj), planned.describe()
        tampered = CleanupPlan(target, (*plan.objects, *sorted(forged)), plan.store_keys)
        verdict = check_plan(tampered, stores, source=None, require_closed=False)
        assert len(verdict.reasons) == len(forged)
        # 4. Misplaced rows of its own owner are planned, and refused one by one.
        misplaced = _misplaced(world, target)
        for key, entry in misplaced:
            store = stores[key]
            if key == "warehouse":
                _forge(store.ledger(store.get_cleanup_engine()), entry)
            else:
                _forge(store.get_ledger(), entry)
        forged_plan = build_cleanup_plan(target, stores)
        assert {_described(p) for p in forged_plan} == own | {
            _described_entry(e) for _, e in misplaced
        }
        verdict = check_plan(forged_plan, stores, source=None, require_closed=False)
        assert len(verdict.reasons) == len(misplaced), verdict.reasons
        # 5. Executed anyway (as if verification were skipped), it removes the target's own
        # objects, refuses every misplaced one, and leaves everything else exactly as it was.
        for key, store in stores.items():
            results = store.remove_objects(forged_plan.objects_for(key), dry_run=False, log=_LOG)
            for result in results:
                ours = _described(PlannedObject(key, result.obj)) in own
                assert result.removed == ours and (result.error is None) == ours, result
        assert _warehouse_snapshot(world) == {
            k: v for k, v in warehouse_before.items() if not _is_of(world, k, target)
        }
        assert _s3_snapshot(world) == {
            k: v for k, v in s3_before.items() if not _is_of(world, k, target)
        }
        left = build_cleanup_plan(target, stores)
        assert {_described(p) for p in left} == {_described_entry(e) for _, e in misplaced}
    finally:
        stores["warehouse"].close()
        stores["lake"].close()


_LOG = logging.getLogger("safety-property")
