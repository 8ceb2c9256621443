"""The cleanup job on Snowflake (the fakesnow emulator, reached by the real connector): the plan
lists PR 7's schema from the ledger and the catalog, the dry run removes nothing, the real run
removes exactly PR 7's schema, and production and PR 8 keep every row."""

from __future__ import annotations

from typing import Any

import dagster as dg
import sqlalchemy as sa

from dagster_branch import BranchDatabaseResource
from dagster_branch.cleanup.job import build_branch_cleanup_job
from dagster_branch.cleanup.plan import build_cleanup_plan
from dagster_branch.ledger import Ledger
from dagster_branch.naming import Namespace
from tests.cleanup.helpers import cleanup_config, outcome_of
from tests.cleanup.world import PRODUCTION, branch_env, deployment
from tests.support.servers import SnowflakeDatabase

JOB = build_branch_cleanup_job(name="snowflake_cleanup", store_keys=("warehouse",))
PR_7 = Namespace.parse("pr_7")


def warehouse(db: SnowflakeDatabase) -> BranchDatabaseResource:
    return BranchDatabaseResource(url=db.url, connect_args=db.connect_args, base_schema="analytics")


def build(db: SnowflakeDatabase) -> None:
    """Production, PR 7 and PR 8 each write two tables through the resource."""
    for env, label in ((PRODUCTION, "prod"), (branch_env(7), "pr7"), (branch_env(8), "pr8")):
        with deployment(env):
            resource = warehouse(db)
            try:
                for name in ("orders", "customers"):
                    loc = resource.table(name)
                    with resource.get_connection() as conn:
                        table = sa.Table(
                            loc.name,
                            sa.MetaData(),
                            sa.Column("id", sa.Integer),
                            sa.Column("label", sa.String(16)),
                            schema=loc.schema,
                        )
                        table.create(conn)
                        conn.execute(table.insert(), [{"id": i, "label": label} for i in range(3)])
            finally:
                resource.close()


def snapshot(db: SnowflakeDatabase) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table outside the ledger's schema, by schema.table."""
    engine = db.engine()
    found: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for schema in inspector.get_schema_names():
                if schema in ("information_schema", "dagster_branch"):
                    continue
                for table in inspector.get_table_names(schema=schema):
                    query = sa.select(sa.literal_column("*")).select_from(
                        sa.table(table, schema=schema)
                    )
                    found[f"{schema}.{table}"] = sorted(map(tuple, conn.execute(query)))
    finally:
        engine.dispose()
    return found


def run(db: SnowflakeDatabase, pull_requests: Any, **config: Any) -> dg.ExecuteInProcessResult:
    with deployment(PRODUCTION):
        return JOB.execute_in_process(
            run_config=cleanup_config("pr_7", **config),
            resources={"warehouse": warehouse(db), "pull_requests": pull_requests},
            raise_on_error=False,
        )


def test_plan_dry_run_and_cleanup_remove_exactly_pr_7(
    snowflake_database: SnowflakeDatabase, pull_requests: Any
) -> None:
    db = snowflake_database
    build(db)
    before = snapshot(db)
    assert {"analytics.orders", "analytics__pr_7.orders", "analytics__pr_8.orders"} <= set(before)

    with deployment(PRODUCTION):
        planner = warehouse(db)
        try:
            plan = build_cleanup_plan("pr_7", {"warehouse": planner})
        finally:
            planner.close()
    [planned] = list(plan)
    assert (planned.kind.value, planned.name) == ("schema", "analytics__pr_7")
    assert planned.obj.found_in == frozenset({"ledger", "discovery"})

    dry = outcome_of(run(db, pull_requests, dry_run=True))
    assert dry.dry_run
    assert snapshot(db) == before

    outcome_of(run(db, pull_requests))
    after = snapshot(db)
    assert {key: rows for key, rows in before.items() if "__pr_7." not in key} == after
    assert not any(key.startswith("analytics__pr_7.") for key in after)

    engine = db.engine()
    try:
        ledger = Ledger(engine)
        assert ledger.live_entries(PR_7) == []
        assert {ns.key for ns in ledger.namespaces()} == {"pr_8"}
    finally:
        engine.dispose()

    assert outcome_of(run(db, pull_requests)).results() == []  # a second run: nothing to do
    assert snapshot(db) == after
