"""The dialect capability table, and the DDL each dialect receives, compiled by its own dialect.

PostgreSQL, DuckDB and SQLite run this DDL for real in tests/resources/; Snowflake, Redshift and
BigQuery have no server here, so their statements are checked by compiling them with their
installed SQLAlchemy dialects.
"""

from __future__ import annotations

from pathlib import Path

import duckdb_engine
import pytest
import sqlalchemy as sa
from snowflake.sqlalchemy import snowdialect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy_bigquery import BigQueryDialect
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

from dagster_branch.dialects import (
    SchemaComment,
    attach_sqlite_schemas,
    capabilities_for,
    copy_table_ddl,
    create_schema_ddl,
    drop_schema_ddl,
    drop_table_ddl,
    drop_view_ddl,
    sqlite_schema_files,
    sqlite_schema_path,
)
from dagster_branch.errors import DagsterBranchConfigError, DagsterBranchNamingError

DIALECTS: dict[str, sa.engine.Dialect] = {
    "postgresql": postgresql.dialect(),
    "duckdb": duckdb_engine.Dialect(),
    "snowflake": snowdialect.dialect(),
    "redshift": RedshiftDialect_psycopg2(),
    "bigquery": BigQueryDialect(),
}


def compiled(statement: sa.schema.ExecutableDDLElement, dialect: sa.engine.Dialect) -> str:
    return str(statement.compile(dialect=dialect)).strip()


def test_every_dialect_resolves_by_its_sqlalchemy_name() -> None:
    for name, dialect in DIALECTS.items():
        assert capabilities_for(dialect).name == name


@pytest.mark.parametrize(
    ("dialect", "limit"),
    [
        ("postgresql", 63),
        ("redshift", 127),
        ("snowflake", 255),
        ("bigquery", 1024),
        ("duckdb", 1024),
        ("sqlite", 1024),
    ],
)
def test_identifier_limits(dialect: str, limit: int) -> None:
    assert capabilities_for(dialect).max_identifier_bytes == limit


def test_unknown_dialects_get_the_conservative_default() -> None:
    caps = capabilities_for("exasol")
    assert caps.has_schemas
    assert not caps.drop_schema_cascade
    assert not caps.schema_comments
    assert caps.max_identifier_bytes == 63
    with pytest.raises(DagsterBranchConfigError, match="drop its tables one by one"):
        drop_schema_ddl(caps, "analytics__pr_42")


def test_sqlite_has_no_schema_ddl() -> None:
    caps = capabilities_for(sqlite.dialect())
    assert caps.attaches_schemas and not caps.has_schemas
    with pytest.raises(DagsterBranchConfigError, match="attaching database files"):
        create_schema_ddl(caps, "analytics__pr_42")


# The exact statements each dialect receives for a branch schema (create, mark, drop).
EXPECTED = {
    "postgresql": (
        "CREATE SCHEMA IF NOT EXISTS analytics__pr_42",
        "COMMENT ON SCHEMA analytics__pr_42 IS 'dagster-branch namespace=pr_42 branch=o''brien'",
        "DROP SCHEMA IF EXISTS analytics__pr_42 CASCADE",
        "DROP TABLE IF EXISTS analytics_dev.pr_42__orders",
    ),
    "duckdb": (
        "CREATE SCHEMA IF NOT EXISTS analytics__pr_42",
        None,
        "DROP SCHEMA IF EXISTS analytics__pr_42 CASCADE",
        "DROP TABLE IF EXISTS analytics_dev.pr_42__orders",
    ),
    "snowflake": (
        "CREATE SCHEMA IF NOT EXISTS analytics__pr_42",
        "COMMENT ON SCHEMA analytics__pr_42 IS 'dagster-branch namespace=pr_42 branch=o''brien'",
        "DROP SCHEMA IF EXISTS analytics__pr_42 CASCADE",
        "DROP TABLE IF EXISTS analytics_dev.pr_42__orders",
    ),
    "redshift": (
        "CREATE SCHEMA IF NOT EXISTS analytics__pr_42",
        None,
        "DROP SCHEMA IF EXISTS analytics__pr_42 CASCADE",
        "DROP TABLE IF EXISTS analytics_dev.pr_42__orders",
    ),
    "bigquery": (
        "CREATE SCHEMA IF NOT EXISTS `analytics__pr_42`",
        None,
        "DROP SCHEMA IF EXISTS `analytics__pr_42` CASCADE",
        "DROP TABLE IF EXISTS `analytics_dev`.`pr_42__orders`",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_branch_schema_ddl_per_dialect(name: str) -> None:
    dialect = DIALECTS[name]
    caps = capabilities_for(dialect)
    create, comment, drop, drop_table = EXPECTED[name]
    assert compiled(create_schema_ddl(caps, "analytics__pr_42"), dialect) == create
    assert compiled(drop_schema_ddl(caps, "analytics__pr_42"), dialect) == drop
    assert compiled(drop_table_ddl(caps, "pr_42__orders", "analytics_dev"), dialect) == drop_table
    assert caps.schema_comments == (comment is not None)
    if comment is not None:
        marker = SchemaComment("analytics__pr_42", "dagster-branch namespace=pr_42 branch=o'brien")
        assert compiled(marker, dialect) == comment


@pytest.mark.parametrize(
    ("name", "schema", "table"),
    [
        ("postgresql", '"Sales ""EU"" ü"', '"order ""x""; DROP TABLE t; --"'),
        ("duckdb", '"Sales ""EU"" ü"', '"order ""x""; DROP TABLE t; --"'),
        ("redshift", '"Sales ""EU"" ü"', '"order ""x""; DROP TABLE t; --"'),
    ],
)
def test_unusual_names_are_quoted_by_each_dialect(name: str, schema: str, table: str) -> None:
    dialect = DIALECTS[name]
    caps = capabilities_for(dialect)
    raw_schema, raw_table = 'Sales "EU" ü', 'order "x"; DROP TABLE t; --'
    assert compiled(create_schema_ddl(caps, raw_schema), dialect) == (
        f"CREATE SCHEMA IF NOT EXISTS {schema}"
    )
    assert compiled(drop_schema_ddl(caps, raw_schema), dialect) == (
        f"DROP SCHEMA IF EXISTS {schema} CASCADE"
    )
    assert compiled(drop_table_ddl(caps, raw_table, raw_schema), dialect) == (
        f"DROP TABLE IF EXISTS {schema}.{table}"
    )
    assert compiled(drop_view_ddl(caps, raw_table, raw_schema), dialect) == (
        f"DROP VIEW IF EXISTS {schema}.{table}"
    )


def test_bigquery_quotes_keywords_and_refuses_backticks_its_preparer_cannot_escape() -> None:
    dialect = DIALECTS["bigquery"]
    caps = capabilities_for(dialect)
    assert compiled(drop_table_ddl(caps, "order x; DROP", "select"), dialect) == (
        "DROP TABLE IF EXISTS `select`.`order x; DROP`"
    )
    with pytest.raises(DagsterBranchNamingError, match="cannot be quoted safely for bigquery"):
        drop_table_ddl(caps, "a`; DROP SCHEMA analytics; --", "analytics__pr_42")
    with pytest.raises(DagsterBranchNamingError):
        drop_schema_ddl(caps, "analytics`x")


def test_snowflake_quotes_keywords_spaces_and_mixed_case() -> None:
    dialect = DIALECTS["snowflake"]
    caps = capabilities_for(dialect)
    assert (
        compiled(create_schema_ddl(caps, "select"), dialect)
        == 'CREATE SCHEMA IF NOT EXISTS "select"'
    )
    assert compiled(drop_table_ddl(caps, 'order "x"; drop', "Sales EU ü"), dialect) == (
        'DROP TABLE IF EXISTS "Sales EU ü"."order ""x""; drop"'
    )


def test_sqlite_schemas_are_sibling_files_attached_on_every_connection(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = sa.create_engine(sqlite_url)
    try:
        attach_sqlite_schemas(engine, {"analytics__pr_42", 'we"ird/ü'})
        with engine.begin() as conn:
            conn.execute(sa.text('CREATE TABLE "analytics__pr_42".t (x INTEGER)'))
        engine.dispose()  # a brand-new connection must see the schema again
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names(schema="analytics__pr_42") == ["t"]
            names = {row[1] for row in conn.exec_driver_sql("PRAGMA database_list")}
        assert {"main", "analytics__pr_42", 'we"ird/ü'} <= names
        path = sqlite_schema_path(engine, 'we"ird/ü')
        assert path.parent == tmp_path  # the slash is encoded, not a folder
        assert set(sqlite_schema_files(engine)) == {"analytics__pr_42", 'we"ird/ü'}
    finally:
        engine.dispose()


def test_sqlite_in_memory_cannot_emulate_schemas() -> None:
    engine = sa.create_engine("sqlite://")
    with pytest.raises(DagsterBranchConfigError, match="table_prefix"):
        attach_sqlite_schemas(engine, {"analytics__pr_42"})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("postgresql", 'DROP VIEW IF EXISTS analytics_dev."pr_42__Orders V"'),
        ("duckdb", 'DROP VIEW IF EXISTS analytics_dev."pr_42__Orders V"'),
        ("snowflake", 'DROP VIEW IF EXISTS analytics_dev."pr_42__Orders V"'),
        ("bigquery", "DROP VIEW IF EXISTS `analytics_dev`.`pr_42__Orders V`"),
        ("sqlite", 'DROP VIEW IF EXISTS analytics_dev."pr_42__Orders V"'),
    ],
)
def test_views_are_dropped_if_they_exist_quoted_by_each_dialect(name: str, expected: str) -> None:
    dialect = DIALECTS.get(name) or sqlite.dialect()
    statement = drop_view_ddl(capabilities_for(dialect), "pr_42__Orders V", "analytics_dev")
    assert compiled(statement, dialect) == expected


def test_a_view_name_the_dialect_cannot_quote_is_refused() -> None:
    with pytest.raises(DagsterBranchNamingError, match="cannot be quoted safely for bigquery"):
        drop_view_ddl(capabilities_for("bigquery"), "pr_42__v`; DROP", "analytics_dev")


SEED_DDL = {
    "snowflake": 'CREATE TABLE analytics__pr_7.orders CLONE analytics."Order Lines"',
    "bigquery": "CREATE TABLE `analytics__pr_7`.`orders` CLONE `analytics`.`Order Lines`",
    "redshift": 'CREATE TABLE analytics__pr_7.orders AS SELECT * FROM analytics."Order Lines"',
    "postgresql": 'CREATE TABLE analytics__pr_7.orders AS SELECT * FROM analytics."Order Lines"',
    "duckdb": 'CREATE TABLE analytics__pr_7.orders AS SELECT * FROM analytics."Order Lines"',
}


@pytest.mark.parametrize("name", sorted(SEED_DDL))
def test_seeding_clones_where_the_dialect_can_and_copies_elsewhere(name: str) -> None:
    """Zero-copy CLONE on Snowflake and BigQuery; CREATE TABLE … AS SELECT elsewhere."""
    dialect = DIALECTS[name]
    statement = copy_table_ddl(
        capabilities_for(dialect), ("analytics__pr_7", "orders"), ("analytics", "Order Lines")
    )
    assert compiled(statement, dialect) == SEED_DDL[name]
