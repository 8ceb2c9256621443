"""The plan: what each real store says a namespace owns, merged, deterministic, and resilient
to a lost ledger or to objects someone already dropped by hand."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from dagster_branch import CleanupRefusedError
from dagster_branch.cleanup.plan import CleanupPlan, build_cleanup_plan
from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import LEDGER_TABLE
from dagster_branch.naming import Namespace
from tests.cleanup.conftest import RunCleanup
from tests.cleanup.helpers import outcome_of
from tests.cleanup.world import PRODUCTION, World, deployment, of_pr_7, outside_pr_7, snapshot

PR_7 = Namespace.parse("pr_7")


def _plan(world: World, namespace: str = "pr_7") -> CleanupPlan:
    with deployment(PRODUCTION):
        return build_cleanup_plan(namespace, world.stores())


def test_plan_merges_ledger_and_discovery_per_store(pg_world: World) -> None:
    plan = _plan(pg_world)

    assert plan.namespace == PR_7
    assert plan.store_keys == ("warehouse", "lake", "exports")
    found = {(p.store_key, p.kind, p.name): p.obj.found_in for p in plan}
    assert set(found) == {
        ("warehouse", ObjectKind.SCHEMA, "analytics__pr_7"),
        ("lake", ObjectKind.PREFIX, "acme-branches/_branches/pr_7/"),
        ("exports", ObjectKind.BUCKET, "acme-exports--pr-7"),
    }
    # The ledger row and the catalog both found the schema: one entry, both sources.
    assert found[("warehouse", ObjectKind.SCHEMA, "analytics__pr_7")] == {"ledger", "discovery"}
    assert all("ledger" in sources for sources in found.values())  # S3 recorded in the ledger
    assert all(p.obj.namespace == PR_7 for p in plan)
    assert _plan(pg_world) == plan  # asking again gives the same plan, in the same order
    as_json = json.loads(json.dumps(plan.to_dict()))
    assert as_json["namespace"] == "pr_7"
    assert [o["store"] for o in as_json["objects"]] == ["warehouse", "lake", "exports"]


def test_a_namespace_that_owns_nothing_gives_an_empty_plan(pg_world: World) -> None:
    plan = _plan(pg_world, "pr_9")
    assert plan.is_empty
    assert plan.store_keys == ("warehouse", "lake", "exports")


@pytest.mark.parametrize("bad", ["", "  ", "production", "analytics__pr_7", "pr_07"])
def test_production_or_garbage_is_refused_before_any_store_is_asked(bad: str) -> None:
    with pytest.raises(CleanupRefusedError):
        build_cleanup_plan(bad, {})


def test_a_lost_ledger_leaves_the_objects_unrecorded_until_a_run_includes_them(
    pg_world: World, run_cleanup: RunCleanup
) -> None:
    engine = sa.create_engine(pg_world.warehouse_url)
    ledger = sa.table(LEDGER_TABLE, sa.column("namespace"), schema="dagster_branch")
    with engine.begin() as conn:
        conn.execute(sa.delete(ledger).where(ledger.c.namespace == "pr_7"))
    engine.dispose()
    before = snapshot(pg_world)

    plan = _plan(pg_world)

    assert {(p.store_key, p.kind) for p in plan} == {
        ("warehouse", ObjectKind.SCHEMA),
        ("lake", ObjectKind.PREFIX),
        ("exports", ObjectKind.BUCKET),
    }
    assert all(p.obj.found_in and "ledger" not in p.obj.found_in for p in plan)  # discovered
    # The bucket keeps its owner's tags (a record); the schema and the prefix are name only.
    assert {p.store_key for p in plan.kept} == {"warehouse", "lake"}
    outcome_of(run_cleanup(pg_world))
    assert len(of_pr_7(snapshot(pg_world))) > 0  # kept
    outcome_of(run_cleanup(pg_world, include_unrecorded=True))
    after = snapshot(pg_world)
    assert of_pr_7(after) == []
    assert outside_pr_7(after) == outside_pr_7(before)


def test_an_object_already_dropped_by_hand_is_closed_in_the_ledger(
    pg_world: World, run_cleanup: RunCleanup
) -> None:
    engine = sa.create_engine(pg_world.warehouse_url)
    with engine.begin() as conn:
        conn.execute(sa.schema.DropSchema("analytics__pr_7", cascade=True))
    engine.dispose()

    plan = _plan(pg_world)
    schema = next(p for p in plan if p.store_key == "warehouse")
    assert schema.obj.found_in == {"ledger"}  # only the ledger still knows it

    outcome = outcome_of(run_cleanup(pg_world))

    assert any(r.obj == schema.obj and r.removed for r in outcome.results())
    assert of_pr_7(snapshot(pg_world)) == []  # the ledger row is closed too
