"""The record is the first key (issue 13, classes 3 and 5), on PostgreSQL and the S3 server.

- A ledger row naming the right name in the wrong place (another bucket, the production bucket,
  another schema than the routing rules give) is a *mismatch*: reported and refused.
- An object shaped like a namespace's that no record names (made by hand, by another process)
  is *unrecorded*: listed by the plan and the dry run, kept, and removed only with
  ``include_unrecorded: true``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from dagster_branch import Namespace
from dagster_branch.cleanup.plan import build_cleanup_plan
from dagster_branch.cleanup.report import plan_metadata
from dagster_branch.cleanup.verify import check_plan, ownership_problems
from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import LedgerEntry
from tests.cleanup.conftest import RunCleanup
from tests.cleanup.helpers import failure_text, outcome_of
from tests.cleanup.test_cleanup_end_to_end import record_metadata
from tests.cleanup.world import PRODUCTION, World, branch_env, deployment

LOG = logging.getLogger("test-records")
PR_7 = Namespace.parse("pr_7")


def write_pr_7(world: World) -> None:
    """The branch deployment of PR 7 writes one table, one lake file and one export."""
    with deployment(branch_env(7)):
        stores = world.stores()
        try:
            warehouse = stores["warehouse"]
            with warehouse.get_connection() as conn:
                conn.execute(sa.text(f"CREATE TABLE {warehouse.table('orders')} AS SELECT 1 AS x"))
            for key in ("lake", "exports"):
                s3 = stores[key]
                s3.get_client().put_object(Bucket=s3.bucket_name, Key=s3.key("f.csv"), Body=b"7")
        finally:
            close(stores)


def close(stores: dict[str, Any]) -> None:
    stores["warehouse"].close()
    stores["lake"].close()
    stores["exports"].close()


@pytest.fixture
def light_world(postgres_url: str, s3_endpoint: str) -> World:
    world = World(warehouse_url=postgres_url, s3_endpoint=s3_endpoint)
    world.create_buckets()
    world.admin().create_bucket(Bucket="unrelated")
    write_pr_7(world)
    return world


def keys(world: World, bucket: str) -> list[str]:
    listing = world.admin().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def buckets(world: World) -> set[str]:
    return {b["Name"] for b in world.admin().list_buckets()["Buckets"]}


def schemas(world: World) -> set[str]:
    engine = sa.create_engine(world.warehouse_url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_schema_names())
    finally:
        engine.dispose()


def tables(world: World, schema: str) -> set[str]:
    engine = sa.create_engine(world.warehouse_url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names(schema=schema))
    finally:
        engine.dispose()


def forge_prefix_row(store: Any, bucket: str) -> None:
    """A ledger row of this owner claiming ``_branches/pr_7/`` in ``bucket``."""
    store.get_ledger().record(
        LedgerEntry(PR_7, store.store_key, "s3", ObjectKind.PREFIX, "_branches/pr_7/", bucket)
    )


# -- class 3: mismatches ------------------------------------------------------------------------


def test_a_ledger_row_naming_the_namespace_prefix_in_another_bucket_is_refused_as_a_mismatch(
    light_world: World, run_cleanup: RunCleanup
) -> None:
    world, admin = light_world, light_world.admin()
    # Keys shaped like pr_7's where its configuration never puts it: the production bucket
    # outside its 'lake/' prefix, an unrelated bucket, and (bucket strategy) production's bucket.
    for bucket in ("acme-data", "unrelated", "acme-exports"):
        admin.put_object(Bucket=bucket, Key="_branches/pr_7/keep.csv", Body=b"not pr_7's")
    # Production writes under 'lake/' in the exports bucket too: '_branches/' is outside it.
    production_stores = lambda: world.stores(exports=world.exports(prefix="lake"))  # noqa: E731
    with deployment(PRODUCTION):
        stores = production_stores()
        try:
            forge_prefix_row(stores["lake"], "acme-data")
            forge_prefix_row(stores["lake"], "unrelated")
            forge_prefix_row(stores["exports"], "acme-exports")
            plan = build_cleanup_plan("pr_7", stores)
            problems = ownership_problems(plan, stores)
            refused = sorted(p.name for p in problems)
            assert refused == [
                "acme-data/_branches/pr_7/",
                "acme-exports/_branches/pr_7/",
                "unrelated/_branches/pr_7/",
            ]
            assert all(problem.startswith("mismatch: ") for problem in problems.values())
            assert "acme-branches/_branches/pr_7/" in next(iter(problems.values()))
            rows = plan_metadata(plan, problems)["plan"].value.records  # type: ignore[attr-defined]
            statuses = {r.data["name"]: r.data["status"] for r in rows}
            assert statuses["unrelated/_branches/pr_7/"].startswith("refused: mismatch: ")
            assert statuses["acme-branches/_branches/pr_7/"] == "remove"

            # The second guard: asked directly, each store still refuses them.
            for key in ("lake", "exports"):
                results = stores[key].remove_objects(plan.objects_for(key), dry_run=False, log=LOG)
                by_name = {r.obj.qualified_name: r for r in results}
                for name in refused:
                    if name in by_name:
                        assert not by_name[name].removed
                        assert "mismatch" in (by_name[name].error or "")
        finally:
            close(stores)
    for bucket in ("acme-data", "unrelated", "acme-exports"):
        assert "_branches/pr_7/keep.csv" in keys(world, bucket)
    # The job refuses the whole plan and names every mismatch.
    result = run_cleanup(world, stores=production_stores(), require_closed=False)
    assert not result.success
    text = failure_text(result)
    assert "Refusing to clean pr_7; nothing was removed" in text
    assert all(f"{name}: mismatch: " in text for name in refused)


def test_a_table_row_outside_the_table_prefix_schema_is_refused_as_a_mismatch(
    postgres_url: str, s3_endpoint: str
) -> None:
    world = World(warehouse_url=postgres_url, s3_endpoint=s3_endpoint, strategy="table_prefix")
    world.create_buckets()
    write_pr_7(world)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:  # where the schema strategy would have put pr_7's tables
        conn.execute(sa.text("CREATE SCHEMA analytics__pr_7"))
        conn.execute(sa.text("CREATE TABLE analytics__pr_7.pr_7__orders AS SELECT 1 AS x"))
    engine.dispose()
    with deployment(PRODUCTION):
        stores = world.stores()
        try:
            warehouse = stores["warehouse"]
            ledger = warehouse.ledger(warehouse.get_cleanup_engine())
            ledger.record(
                LedgerEntry(
                    PR_7, "warehouse", "postgresql", ObjectKind.TABLE, "pr_7__orders",
                    "analytics__pr_7",
                )
            )  # fmt: skip
            plan = build_cleanup_plan("pr_7", stores)
            [problem] = ownership_problems(plan, stores).values()
            assert problem.startswith("mismatch: table 'analytics__pr_7.pr_7__orders'")
            assert "tables 'pr_7__…' in schema 'development'" in problem
            results = warehouse.remove_objects(
                plan.objects_for("warehouse"), dry_run=False, log=LOG
            )
            assert {r.obj.qualified_name: r.removed for r in results} == {
                "analytics__pr_7.pr_7__orders": False,
                "development.pr_7__orders": True,
            }
        finally:
            close(stores)
    assert tables(world, "analytics__pr_7") == {"pr_7__orders"}
    assert "pr_7__orders" not in tables(world, "development")


# -- class 5: unrecorded objects ----------------------------------------------------------------


def make_unrecorded(world: World) -> None:
    """pr_8-shaped objects nobody recorded: a schema made by hand, keys written by another
    process, an untagged bucket named like a namespace bucket."""
    engine = sa.create_engine(world.warehouse_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA analytics__pr_8"))
        conn.execute(sa.text("CREATE TABLE analytics__pr_8.by_hand AS SELECT 1 AS x"))
    engine.dispose()
    admin = world.admin()
    admin.put_object(Bucket="acme-branches", Key="_branches/pr_8/other.csv", Body=b"8")
    admin.create_bucket(Bucket="acme-exports--pr-8")
    admin.put_object(Bucket="acme-exports--pr-8", Key="f", Body=b"8")


def test_objects_found_by_name_only_are_listed_kept_and_removed_only_when_asked(
    light_world: World, run_cleanup: RunCleanup
) -> None:
    world = light_world
    make_unrecorded(world)
    with deployment(PRODUCTION):
        stores = world.stores()
        try:
            # Nobody recorded pr_8: the sensor never sees it ...
            assert all(PR_7 in s.list_namespaces() for s in stores.values())
            assert not any(Namespace.parse("pr_8") in s.list_namespaces() for s in stores.values())
            # ... orphans lists it as unrecorded, with its location ...
            unrecorded = {
                (key, o.qualified_name) for key, s in stores.items() for o in s.unrecorded_objects()
            }
            assert unrecorded == {
                ("warehouse", "analytics__pr_8"),
                ("lake", "acme-branches/_branches/pr_8/"),
                ("exports", "acme-exports--pr-8"),
            }
            # ... and its plan lists everything, keeps everything.
            plan = build_cleanup_plan("pr_8", stores)
            assert len(plan) == 3 and not plan.removable and len(plan.kept) == 3
            assert check_plan(plan, stores, source=None, require_closed=False).approved
        finally:
            close(stores)

    dry = outcome_of(run_cleanup(world, "pr_8", require_closed=False, dry_run=True))
    assert dry.results() == []
    kept = run_cleanup(world, "pr_8", require_closed=False)
    outcome = outcome_of(kept)
    assert outcome.results() == []
    metadata = record_metadata(kept)
    assert metadata["unrecorded_kept"].value == 3
    assert "3 unrecorded kept" in metadata["summary"].value
    statuses = {row.data["name"]: row.data["status"] for row in metadata["removed"].records}
    assert statuses == dict.fromkeys(
        ["analytics__pr_8", "acme-branches/_branches/pr_8/", "acme-exports--pr-8"],
        "unrecorded: kept",
    )
    assert "analytics__pr_8" in schemas(world)
    assert keys(world, "acme-branches") == ["_branches/pr_7/lake/f.csv", "_branches/pr_8/other.csv"]
    assert "acme-exports--pr-8" in buckets(world)

    removed = outcome_of(run_cleanup(world, "pr_8", require_closed=False, include_unrecorded=True))
    assert sorted(r.obj.qualified_name for r in removed.results() if r.removed) == [
        "acme-branches/_branches/pr_8/",
        "acme-exports--pr-8",
        "analytics__pr_8",
    ]
    assert "analytics__pr_8" not in schemas(world)
    assert keys(world, "acme-branches") == ["_branches/pr_7/lake/f.csv"]
    assert "acme-exports--pr-8" not in buckets(world)


def test_tables_others_built_inside_a_recorded_schema_go_with_it(
    light_world: World, run_cleanup: RunCleanup
) -> None:
    engine = sa.create_engine(light_world.warehouse_url)
    with engine.begin() as conn:  # dbt (or anyone) built a table in pr_7's recorded schema
        conn.execute(sa.text("CREATE TABLE analytics__pr_7.built_by_dbt AS SELECT 1 AS x"))
    engine.dispose()
    outcome = outcome_of(run_cleanup(light_world, require_closed=False))
    [schema] = [r for r in outcome.results() if r.obj.name == "analytics__pr_7"]
    assert schema.removed and schema.objects == 2
    assert "analytics__pr_7" not in schemas(light_world)
