"""Production dependents (safety class: a drop must never reach outside the namespace).

``DROP SCHEMA … CASCADE`` also drops what depends on the schema's objects, wherever it lives. A
production view selecting from a branch table, a production foreign key to one and a production
column of a branch-defined type were dropped with the branch schema, and the run reported
success. Now such a schema (or table) is refused naming each dependent, nothing of it is removed,
the rest of the plan goes on, the run fails at the end, and the dry run shows the same refusal.
"""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from dagster_branch import Namespace
from dagster_branch.cleanup.report import StoreRemoval
from dagster_branch.stores.drop_order import schema_contents
from tests.cleanup.helpers import failure_text
from tests.faults.world import run_cleanup, warehouse, write_tables
from tests.support.deployments import Deploy
from tests.support.snapshots import live_ledger
from tests.support.sql import execute, query

PR_7 = Namespace.parse("pr_7")

# What production builds on top of PR 7's schema, behind the cleanup's back.
POSTGRES_DEPENDENTS = (
    "CREATE TYPE analytics__pr_7.status AS ENUM ('new', 'paid')",
    "ALTER TABLE analytics__pr_7.orders ADD PRIMARY KEY (id)",
    "CREATE TABLE analytics.refunds (order_id INTEGER REFERENCES analytics__pr_7.orders (id), "
    "state analytics__pr_7.status)",
    "INSERT INTO analytics.refunds VALUES (1, 'paid')",
    "CREATE VIEW analytics.recent AS SELECT id FROM analytics__pr_7.orders",
)
EXPECTED_DEPENDENTS = [
    "view analytics.recent selects from analytics__pr_7.orders",
    "column analytics.refunds.state has type analytics__pr_7.status",
    "analytics.refunds has a foreign key to analytics__pr_7.orders",
]


def _build(url: str, deploy: Deploy) -> None:
    """Production's analytics.orders; PR 7's tables in analytics__pr_7 and marts__pr_7."""
    deploy("production")
    write_tables(url)
    deploy("branch", pr=7)
    write_tables(url)
    write_tables(url, base_schema="marts", store_key="marts")
    deploy("production")


def _stores(url: str) -> dict[str, Any]:
    return {
        "warehouse": warehouse(url),
        "marts": warehouse(url, base_schema="marts", store_key="marts"),
    }


def _removal(result: dg.ExecuteInProcessResult, store_key: str) -> StoreRemoval:
    removal = result.output_for_node(f"remove_from_{store_key}")
    assert isinstance(removal, StoreRemoval)
    return removal


def test_postgresql_schema_with_production_dependents_is_refused_and_the_rest_goes_on(
    postgres_url: str, deploy: Deploy
) -> None:
    _build(postgres_url, deploy)
    execute(postgres_url, *POSTGRES_DEPENDENTS)

    dry = run_cleanup(_stores(postgres_url), "pr_7", dry_run=True)
    assert dry.success  # a dry run reports; it does not fail
    [refused] = _removal(dry, "warehouse").results
    assert list(refused.dependents) == EXPECTED_DEPENDENTS
    plan_rows = dry.output_for_node("plan").plan
    assert [p.survey.dependents for p in plan_rows if p.store_key == "warehouse"] == [
        tuple(EXPECTED_DEPENDENTS)
    ]
    summary = dry.output_for_node("record").dry_run  # the record op ran to the end
    assert summary is True

    result = run_cleanup(_stores(postgres_url), "pr_7")

    assert not result.success
    text = failure_text(result)
    assert "analytics.refunds has a foreign key to analytics__pr_7.orders" in text
    assert "view analytics.recent selects from analytics__pr_7.orders" in text
    assert "column analytics.refunds.state has type analytics__pr_7.status" in text
    # Production kept its view, its constraint and its column with the data.
    assert query(postgres_url, "SELECT * FROM analytics.recent") == [(1,)]
    assert query(postgres_url, "SELECT order_id, state::text FROM analytics.refunds") == [
        (1, "paid")
    ]
    assert query(
        postgres_url,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'analytics.refunds'::regclass "
        "AND contype = 'f'",
    ) == [(1,)]
    # Nothing of the refused schema was removed; the rest of the plan was.
    assert query(postgres_url, "SELECT id FROM analytics__pr_7.orders") == [(1,)]
    schemas = {r[0] for r in query(postgres_url, "SELECT nspname FROM pg_namespace")}
    assert "analytics__pr_7" in schemas and "marts__pr_7" not in schemas
    assert live_ledger(postgres_url, "pr_7") == {"warehouse:analytics__pr_7"}


def test_the_server_refuses_a_dependent_created_after_the_check(
    postgres_url: str, deploy: Deploy
) -> None:
    """No CASCADE: a dependent the check did not see (created between the plan and the drop)
    makes PostgreSQL itself refuse the drop, and the schema stays whole."""
    _build(postgres_url, deploy)
    janitor = warehouse(postgres_url)
    log = logging.getLogger("test.dependents")
    try:
        [schema] = janitor.objects_of(PR_7)
        engine = janitor.get_cleanup_engine()
        with engine.connect() as conn:
            contents = schema_contents(conn, "analytics__pr_7")
        execute(postgres_url, "CREATE VIEW analytics.late AS SELECT id FROM analytics__pr_7.orders")
        from dagster_branch.stores.drop_order import drop_schema_in_order

        with engine.connect() as conn, pytest.raises(sa.exc.InternalError, match="depends on"):
            drop_schema_in_order(conn, "analytics__pr_7", contents)
        [result] = janitor.remove_objects([schema], dry_run=False, log=log)
    finally:
        janitor.close()
    assert result.dependents == ("view analytics.late selects from analytics__pr_7.orders",)
    assert query(postgres_url, "SELECT * FROM analytics.late") == [(1,)]


def test_the_restrict_drop_takes_a_few_statements_per_schema(
    postgres_url: str, deploy: Deploy
) -> None:
    _build(postgres_url, deploy)
    execute(
        postgres_url,
        *(f"CREATE TABLE analytics__pr_7.t{n} (id INTEGER PRIMARY KEY)" for n in range(50)),
        *(
            f"CREATE VIEW analytics__pr_7.v{n} AS SELECT id FROM analytics__pr_7.t{n}"
            for n in range(20)
        ),
        "CREATE VIEW analytics__pr_7.v_on_v AS SELECT id FROM analytics__pr_7.v0",
        "CREATE MATERIALIZED VIEW analytics__pr_7.m AS SELECT id FROM analytics__pr_7.v_on_v",
        "CREATE TYPE analytics__pr_7.status AS ENUM ('new')",
        "CREATE TABLE analytics__pr_7.typed (s analytics__pr_7.status, "
        "n SERIAL, r INTEGER REFERENCES analytics__pr_7.t1 (id))",
        "CREATE FUNCTION analytics__pr_7.plus(x INTEGER) RETURNS INTEGER LANGUAGE sql "
        "AS 'SELECT x + 1'",
    )
    janitor = warehouse(postgres_url)
    sent: list[str] = []
    try:
        sa.event.listen(
            janitor.get_cleanup_engine(),
            "before_cursor_execute",
            lambda *args: sent.append(" ".join(args[2].split())),
        )
        [schema] = janitor.objects_of(PR_7)
        [result] = janitor.remove_objects([schema], dry_run=False, log=logging.getLogger("t"))
    finally:
        janitor.close()
    assert (result.removed, result.error, result.objects) == (True, None, 1 + 50 + 21 + 1 + 1)
    drops = [s.split(" IF EXISTS")[0] for s in sent if s.startswith("DROP")]
    assert (
        drops
        == [
            "DROP VIEW",  # the 20 views and the view on a view, in one statement
            "DROP MATERIALIZED VIEW",
            "DROP VIEW",  # v0 and v_on_v's base: only once the materialized view is gone
            "DROP TABLE",
            "DROP ROUTINE",
            "DROP TYPE",
            "DROP SCHEMA",
        ]
        or len(drops) <= 8
    ), drops
    assert not any("CASCADE" in s for s in sent)
    assert "analytics__pr_7" not in {
        r[0] for r in query(postgres_url, "SELECT nspname FROM pg_namespace")
    }


def test_a_table_prefix_table_with_a_production_view_is_refused(
    postgres_url: str, deploy: Deploy
) -> None:
    options = {"strategy": "table_prefix", "branch_schema": "dev"}
    deploy("branch", pr=7)
    write_tables(postgres_url, ("orders", "items"), **options)
    deploy("production")
    write_tables(postgres_url)
    execute(postgres_url, "CREATE VIEW analytics.pr_orders AS SELECT id FROM dev.pr_7__orders")

    result = run_cleanup({"warehouse": warehouse(postgres_url, **options)}, "pr_7")

    assert not result.success
    assert "view analytics.pr_orders selects from dev.pr_7__orders" in failure_text(result)
    tables = {
        r[0]
        for r in query(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'dev'")
    }
    assert tables == {"pr_7__orders"}  # refused and kept; pr_7__items removed
    assert query(postgres_url, "SELECT * FROM analytics.pr_orders") == [(1,)]


def test_duckdb_production_columns_of_a_branch_type_are_not_dropped(
    duckdb_url: str, deploy: Deploy
) -> None:
    """DuckDB's CASCADE dropped production tables whose columns use a branch-defined enum."""
    _build(duckdb_url, deploy)
    execute(
        duckdb_url,
        "CREATE TYPE analytics__pr_7.mood AS ENUM ('happy', 'sad')",
        "CREATE TABLE analytics.feelings (m analytics__pr_7.mood)",
        "INSERT INTO analytics.feelings VALUES ('happy')",
        "CREATE VIEW analytics.recent AS SELECT id FROM analytics__pr_7.orders",
    )

    result = run_cleanup(_stores(duckdb_url), "pr_7")

    assert not result.success
    text = failure_text(result)
    assert "table analytics.feelings uses type analytics__pr_7.mood" in text
    assert "view analytics.recent mentions analytics__pr_7 in its SQL" in text
    assert query(duckdb_url, "SELECT m::VARCHAR FROM analytics.feelings") == [("happy",)]
    assert query(duckdb_url, "SELECT id FROM analytics__pr_7.orders") == [(1,)]
    schemas = {r[0] for r in query(duckdb_url, "SELECT schema_name FROM duckdb_schemas()")}
    assert "marts__pr_7" not in schemas  # the rest of the plan went on
