"""Bad input catalogue, part 2: hostile names through the real resources, configurations that
would let a branch write to production, hostile namespaces given to the job and the CLI, and a
tampered ledger.

Every case ends in a clear error (naming the field or value and what to do) or a safe name, and
production is never touched. docs/safety.md lists the same catalogue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dagster_branch import DagsterBranchConfigError, Namespace, NamespaceViolationError
from dagster_branch.cli import main
from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import Ledger, LedgerEntry
from dagster_branch.naming import schema_name
from tests.cleanup.helpers import failure_text
from tests.faults.world import BUCKET, lake, run_cleanup, warehouse, write_files, write_tables
from tests.support.deployments import Deploy
from tests.support.snapshots import database_snapshot, live_ledger, s3_snapshot

from .test_bad_input_names import BAD_BRANCH_NAMES


def _schemas(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {s for s in sa.inspect(conn).get_schema_names() if s.startswith("analytics")}
    finally:
        engine.dispose()


# -- hostile names through the real resources ---------------------------------------------------


def test_hostile_branch_names_write_only_to_their_own_safe_schema_on_postgresql(
    postgres_url: str, deploy: Deploy
) -> None:
    deploy("production")
    write_tables(postgres_url)
    production = database_snapshot(postgres_url)
    expected = {"analytics"}
    names = [b for b in BAD_BRANCH_NAMES.values() if "\x00" not in b]  # no NUL in a real env
    for branch in names:
        deploy("branch", branch=branch)
        write_tables(postgres_url)
        expected.add(schema_name("analytics", Namespace.for_branch(branch)))
        assert _schemas(postgres_url) == expected, branch
    assert {k: v for k, v in database_snapshot(postgres_url).items() if k == "analytics"} == (
        production
    )
    assert len(live_ledger(postgres_url)) == len(names)


def test_hostile_table_names_are_quoted_never_spliced(postgres_url: str, deploy: Deploy) -> None:
    deploy("production")
    write_tables(postgres_url)
    before = database_snapshot(postgres_url)
    deploy("branch", pr=7)
    hostile = [
        'orders"; DROP SCHEMA analytics CASCADE; --',
        "o'brien",
        "select",
        "ünïcode 🚀",
        "a.b",
    ]
    write_tables(postgres_url, hostile)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names(schema="analytics__pr_7"))
    finally:
        engine.dispose()
    assert tables == set(hostile)
    assert database_snapshot(postgres_url)["analytics"] == before["analytics"]


def test_hostile_paths_cannot_leave_the_branch_prefix(
    s3_endpoint: str, s3_client: Any, sqlite_url: str, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    deploy("production")
    write_files(lake(s3_endpoint, sqlite_url), {"orders.csv": b"prod"})
    before = s3_snapshot(s3_endpoint)
    deploy("branch", pr=7)
    resource = lake(s3_endpoint, sqlite_url)
    for path in ("../../lake/orders.csv", "a/../../../lake/orders.csv", "./x", "a/./b"):
        with pytest.raises(NamespaceViolationError, match=r"'\.' or '\.\.' segment"):
            resource.key(path)
    for path in ("/lake/orders.csv", "//x", "ünï 🚀/f.csv", "a;rm -rf/b"):
        assert resource.key(path).startswith("_branches/pr_7/lake/")
    client = resource.get_client()
    with pytest.raises(NamespaceViolationError, match="Refused PutObject for namespace pr_7"):
        client.put_object(Bucket=BUCKET, Key="lake/orders.csv", Body=b"branch")
    with pytest.raises(NamespaceViolationError):
        client.delete_object(Bucket=BUCKET, Key="lake/orders.csv")
    with pytest.raises(NamespaceViolationError):
        client.put_object(Bucket=BUCKET, Key="_branches/pr_8/lake/x", Body=b"another branch")
    resource.close()
    assert s3_snapshot(s3_endpoint) == before


# -- configurations that would let a branch write to production ---------------------------------


DATABASE_CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "branch schema is the production schema": (
        {"strategy": "table_prefix", "branch_schema": "analytics"},
        "production schema",
    ),
    "branch schema differs only in case": (
        {"strategy": "table_prefix", "branch_schema": "ANALYTICS"},
        "production schema",
    ),
    "branch schema is protected": (
        {"strategy": "table_prefix", "branch_schema": "finance", "protected_schemas": ["finance"]},
        "protected_schemas",
    ),
    "branch schema is the ledger's": (
        {"strategy": "table_prefix", "branch_schema": "dagster_branch"},
        "control_schema",
    ),
    "the branch's own schema is protected": (
        {"protected_schemas": ["analytics__pr_7"]},
        "protected_schemas",
    ),
    "ledger in the production schema": ({"control_schema": "analytics"}, "control_schema"),
    "table-prefix strategy without a schema": ({"strategy": "table_prefix"}, "branch_schema"),
    "empty base schema": ({"base_schema": ""}, "base_schema"),
}


@pytest.mark.parametrize("case", DATABASE_CONFIGS, ids=list(DATABASE_CONFIGS))
def test_database_configurations_that_reach_production_are_refused(
    case: str, duckdb_url: str, deploy: Deploy
) -> None:
    options, field = DATABASE_CONFIGS[case]
    deploy("production")
    write_tables(duckdb_url)
    before = database_snapshot(duckdb_url)
    deploy("branch", pr=7)
    resource = warehouse(duckdb_url, **options)
    with pytest.raises(DagsterBranchConfigError, match=field):
        resource.table("orders")
    resource.close()
    assert database_snapshot(duckdb_url) == before


def test_a_branch_resource_refuses_to_write_to_production_directly(
    duckdb_url: str, deploy: Deploy
) -> None:
    deploy("branch", pr=7)
    resource = warehouse(duckdb_url, protected_schemas=["finance"])
    for schema in ("analytics", "ANALYTICS", "finance", "analytics__pr_8", "dagster_branch"):
        with pytest.raises(NamespaceViolationError, match="outside its namespace"):
            resource.guard_write(schema, "orders")
    resource.close()


S3_CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "branch root is the production prefix": ({"branch_root": "lake"}, "overlap"),
    "branch root inside the production prefix": ({"branch_root": "lake/_branches"}, "overlap"),
    "production prefix inside the branch root": ({"prefix": "_branches/lake"}, "overlap"),
    "no production prefix in a shared bucket": ({"prefix": ""}, "prefix is empty"),
    "branch root climbs out": ({"branch_root": "../_branches"}, r"'\.' or '\.\.' segment"),
    "branch root is empty": ({"branch_root": "/"}, "branch_root"),
    "production prefix climbs out": ({"prefix": "lake/.."}, r"'\.' or '\.\.' segment"),
    "expiry rule on a shared bucket": ({"expire_after_days": 7}, "expire_after_days"),
    "branch bucket with bucket strategy": (
        {"strategy": "bucket", "branch_bucket": "acme-branches"},
        "branch_bucket",
    ),
    "bucket that cannot be named": ({"strategy": "bucket", "bucket": "..."}, "bucket"),
}


@pytest.mark.parametrize("case", S3_CONFIGS, ids=list(S3_CONFIGS))
def test_s3_configurations_that_reach_production_are_refused(
    case: str, s3_endpoint: str, deploy: Deploy
) -> None:
    options, message = S3_CONFIGS[case]
    deploy("branch", pr=7)
    resource = lake(s3_endpoint, None, **options)
    with pytest.raises(DagsterBranchConfigError, match=message):
        resource.key("orders.csv")
    assert boto3.client("s3", endpoint_url=s3_endpoint).list_buckets()["Buckets"] == []


def test_a_separate_branch_bucket_may_use_any_root(s3_endpoint: str, deploy: Deploy) -> None:
    deploy("branch", pr=7)
    resource = lake(s3_endpoint, None, prefix="", branch_bucket="acme-branches")
    assert (resource.bucket_name, resource.key("a.csv")) == (
        "acme-branches",
        "_branches/pr_7/a.csv",
    )


# -- hostile namespaces given to the cleanup ------------------------------------------------


HOSTILE_NAMESPACES = ["", "analytics", "pr_0", "pr_-1", "pr_1e3", "pr_42; DROP", "../pr_7", "PR_7"]


def test_the_job_refuses_hostile_namespaces_before_touching_anything(
    duckdb_url: str, deploy: Deploy
) -> None:
    deploy("production")
    write_tables(duckdb_url)
    deploy("branch", pr=7)
    write_tables(duckdb_url)
    deploy("production")
    before = database_snapshot(duckdb_url)
    for namespace in HOSTILE_NAMESPACES:
        result = run_cleanup({"warehouse": warehouse(duckdb_url)}, namespace)
        assert not result.success
        message = failure_text(result)
        assert "production has no namespace" in message or "not a branch namespace" in message
        assert database_snapshot(duckdb_url) == before


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--pr", "0"),
        ("--pr", "-1"),
        ("--pr", "1e3"),
        ("--pr", "42; DROP"),
        ("--namespace", "analytics"),
        ("--namespace", "pr_42; DROP"),
        ("--branch", ""),
    ],
)
def test_the_cli_rejects_hostile_targets_as_usage_errors(
    option: str, value: str, tmp_path: Path, duckdb_url: str
) -> None:
    definitions = tmp_path / "defs.py"
    definitions.write_text(
        "import dagster as dg\n"
        "from dagster_branch import BranchDatabaseResource\n"
        f"defs = dg.Definitions(resources={{'warehouse': BranchDatabaseResource("
        f"url={duckdb_url!r}, base_schema='analytics')}})\n"
    )
    result = CliRunner().invoke(main, ["plan", "-f", str(definitions), option, value])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "Invalid value" in result.output or "not valid" in result.output


# -- a tampered ledger ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        pytest.param("analytics", ObjectKind.SCHEMA, id="production schema"),
        pytest.param("analytics__pr_8", ObjectKind.SCHEMA, id="another branch's schema"),
        pytest.param("dagster_branch", ObjectKind.SCHEMA, id="the ledger's schema"),
        pytest.param("main", ObjectKind.SCHEMA, id="a system schema"),
    ],
)
def test_a_tampered_ledger_row_makes_the_whole_cleanup_refuse(
    name: str, kind: ObjectKind, duckdb_url: str, deploy: Deploy
) -> None:
    deploy("production")
    write_tables(duckdb_url)
    for pr in (7, 8):
        deploy("branch", pr=pr)
        write_tables(duckdb_url)
    deploy("production")
    ledger = Ledger.from_url(duckdb_url)
    try:
        ledger.record(LedgerEntry(Namespace.parse("pr_7"), "warehouse", "duckdb", kind, name))
    finally:
        ledger.close()
    before = database_snapshot(duckdb_url)

    result = run_cleanup({"warehouse": warehouse(duckdb_url)}, "pr_7")

    assert not result.success
    message = failure_text(result)
    assert f"schema {name!r}" in message and "nothing was removed" in message
    assert database_snapshot(duckdb_url) == before  # not even analytics__pr_7 went


def test_a_tampered_s3_ledger_row_makes_the_cleanup_refuse(
    s3_endpoint: str, s3_client: Any, sqlite_url: str, deploy: Deploy
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    deploy("production")
    write_files(lake(s3_endpoint, sqlite_url), {"orders.csv": b"prod"})
    deploy("branch", pr=7)
    write_files(lake(s3_endpoint, sqlite_url), {"orders.csv": b"pr7"})
    deploy("production")
    ledger = Ledger.from_url(sqlite_url)
    try:
        for prefix in ("lake/", "_branches/", "_branches/pr_8/"):
            ledger.record(
                LedgerEntry(
                    Namespace.parse("pr_7"), "lake", "s3", ObjectKind.PREFIX, prefix, BUCKET
                )
            )
    finally:
        ledger.close()
    before = s3_snapshot(s3_endpoint)

    result = run_cleanup({"lake": lake(s3_endpoint, sqlite_url)}, "pr_7")

    assert not result.success
    message = failure_text(result)
    assert all(p in message for p in ("acme-data/lake/", "acme-data/_branches/pr_8/"))
    assert s3_snapshot(s3_endpoint) == before
