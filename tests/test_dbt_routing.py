"""dbt routing without running dbt: the variable, the defer flags, the artifacts, the ledger."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dagster_branch import (
    BranchDatabaseResource,
    DagsterBranchConfigError,
    Namespace,
    NamespaceViolationError,
)
from dagster_branch.dbt import DBT_PACKAGE_DIR, DbtRouting, built_relations, record_dbt_relations
from dagster_branch.inventory import ObjectKind
from dagster_branch.ledger import Ledger
from dagster_branch.naming import namespace_of_schema

PR_7 = Namespace.for_pull_request(7)


@pytest.fixture
def branch_pr_7(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "5f2c0a9e1b7d")
    monkeypatch.setenv("DAGSTER_CLOUD_PULL_REQUEST_ID", "7")


def _warehouse(url: str) -> BranchDatabaseResource:
    return BranchDatabaseResource(
        url=url, base_schema="analytics", extra_schemas=["analytics_marts"]
    )


@pytest.mark.usefixtures("branch_pr_7")
def test_a_branch_maps_the_target_and_custom_schemas_to_names_that_parse_back(
    duckdb_url: str, tmp_path: Path
) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    routing = DbtRouting.of(_warehouse(duckdb_url), state_path=tmp_path)

    assert routing.variable() == {
        "namespace": "pr_7",
        "schemas": {"analytics": "analytics__pr_7", "analytics_marts": "analytics_marts__pr_7"},
    }
    for production, branch in routing.schemas.items():
        assert namespace_of_schema(branch, production) == PR_7
    args = routing.args(["build", "--vars", "{'day': '2024-01-01'}"])
    assert args[:1] == ["build"]
    assert args[-4:] == ["--defer", "--state", str(tmp_path), "--favor-state"]
    merged = json.loads(args[args.index("--vars") + 1])
    assert merged["day"] == "2024-01-01" and merged["dagster_branch"]["namespace"] == "pr_7"


@pytest.mark.usefixtures("branch_pr_7")
def test_no_defer_without_the_production_manifest_or_for_commands_without_state(
    duckdb_url: str, tmp_path: Path
) -> None:
    routing = DbtRouting.of(_warehouse(duckdb_url), state_path=tmp_path)  # no manifest.json

    assert "--defer" not in routing.args(["build"])
    (tmp_path / "manifest.json").write_text("{}")
    assert "--defer" not in routing.args(["deps"])
    assert "--defer" not in routing.args(["run", "--state", "elsewhere"])  # the user's own state


def test_production_and_local_runs_keep_dbts_own_names(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DbtRouting.of(_warehouse(duckdb_url)).args(["build"]) == ["build"]
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    assert DbtRouting.of(_warehouse(duckdb_url)).args(["build"]) == ["build"]


@pytest.mark.usefixtures("branch_pr_7")
def test_unroutable_configurations_are_refused_with_what_to_do(duckdb_url: str) -> None:
    with pytest.raises(DagsterBranchConfigError, match="--vars sets 'dagster_branch'"):
        DbtRouting.of(_warehouse(duckdb_url)).args(["build", "--vars", "dagster_branch: {}"])
    with pytest.raises(DagsterBranchConfigError, match="extra_schemas lists 'analytics' twice"):
        BranchDatabaseResource(
            url=duckdb_url, base_schema="analytics", extra_schemas=["analytics"]
        ).routing()
    with pytest.raises(DagsterBranchConfigError, match="add it to extra_schemas"):
        _warehouse(duckdb_url).branch_schema_of("staging")


def test_the_package_macro_refuses_unrouted_schemas() -> None:
    macro = (DBT_PACKAGE_DIR / "macros" / "generate_schema_name.sql").read_text()
    assert 'var("dagster_branch", none)' in macro
    assert "raise_compiler_error" in macro and "extra_schemas" in macro
    assert (DBT_PACKAGE_DIR / "dbt_project.yml").read_text().count("name: dagster_branch") == 1


def _node(schema: str, name: str, materialized: str, kind: str = "model") -> dict[str, object]:
    return {
        "resource_type": kind,
        "database": "warehouse",
        "schema": schema,
        "alias": name,
        "config": {"materialized": materialized},
    }


def test_built_relations_are_the_successful_nodes_that_make_a_relation() -> None:
    manifest = {
        "nodes": {
            "seed.shop.regions": _node("analytics__pr_7", "regions", "seed", "seed"),
            "model.shop.stg": _node("analytics__pr_7", "stg", "view"),
            "model.shop.events": _node("analytics__pr_7", "events", "incremental"),
            "model.shop.eph": _node("analytics__pr_7", "eph", "ephemeral"),
            "snapshot.shop.snap": _node("analytics__pr_7", "snap", "snapshot", "snapshot"),
            "model.shop.summary": _node("analytics_marts__pr_7", "summary", "table"),
            "model.shop.broken": _node("analytics__pr_7", "broken", "table"),
            "test.shop.unique": _node("analytics__pr_7", "unique", "test", "test"),
        }
    }
    statuses = {uid: "success" for uid in manifest["nodes"]}
    statuses["model.shop.broken"], statuses["test.shop.unique"] = "error", "pass"
    run_results = {"results": [{"unique_id": u, "status": s} for u, s in statuses.items()]}

    found = {(r.schema, r.identifier, r.kind) for r in built_relations(run_results, manifest)}

    assert found == {
        ("analytics__pr_7", "regions", ObjectKind.TABLE),
        ("analytics__pr_7", "stg", ObjectKind.VIEW),
        ("analytics__pr_7", "events", ObjectKind.TABLE),
        ("analytics__pr_7", "snap", ObjectKind.TABLE),
        ("analytics_marts__pr_7", "summary", ObjectKind.TABLE),
    }


@pytest.mark.usefixtures("branch_pr_7")
def test_relations_outside_the_namespace_are_never_recorded_but_warned_about(
    duckdb_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = {
        "nodes": {
            "model.shop.ok": _node("analytics__pr_7", "ok", "table"),
            "model.shop.prod": _node("analytics", "hardcoded", "table"),
            "model.shop.other": _node("analytics__pr_8", "theirs", "view"),
        }
    }
    run_results = {"results": [{"unique_id": u, "status": "success"} for u in manifest["nodes"]]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "run_results.json").write_text(json.dumps(run_results))
    warehouse = _warehouse(duckdb_url)

    with caplog.at_level(logging.WARNING, logger="dagster_branch.dbt"):
        recorded = record_dbt_relations(warehouse, tmp_path)

    assert [r.identifier for r in recorded] == ["ok"]
    ledger = Ledger.from_url(duckdb_url)
    try:
        rows = {(e.kind, e.container, e.name) for e in ledger.live_entries(PR_7)}
    finally:
        ledger.close()
    assert rows == {
        (ObjectKind.SCHEMA, None, "analytics__pr_7"),
        (ObjectKind.TABLE, "analytics__pr_7", "ok"),
    }
    assert "analytics.hardcoded" in caplog.text and "analytics__pr_8.theirs" in caplog.text
    with pytest.raises(NamespaceViolationError):
        warehouse.record_created(ObjectKind.TABLE, "hardcoded", container="analytics")
