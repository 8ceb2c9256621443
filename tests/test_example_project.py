"""The example project: configured only through environment variables, with defaults."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from dagster_branch import (
    BranchDatabaseResource,
    DagsterBranchConfigError,
    DagsterPlusBranchDeployments,
    GitHubPullRequests,
    GitLabMergeRequests,
    GitRemoteBranches,
    Namespace,
)
from example_project import resources
from example_project.definitions import build_definitions
from tests.support.example import DBT_ASSETS, DBT_TABLES, S3_ASSETS, WAREHOUSE_ASSETS, asset_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_notices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "_said", set())  # each test sees the one-time log lines
    for name in ("WAREHOUSE_URL", "DATA_BUCKET", "GITHUB_REPOSITORY", "CI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


def test_without_data_bucket_the_s3_asset_is_left_out_with_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    with caplog.at_level(logging.WARNING, logger="example_project"):
        defs = build_definitions()

    assert asset_names(defs) == WAREHOUSE_ASSETS | DBT_ASSETS
    assert "lake" not in (defs.resources or {})
    assert "Set DATA_BUCKET=<bucket>" in caplog.text
    warehouse = (defs.resources or {})["warehouse"]
    assert isinstance(warehouse, BranchDatabaseResource)
    # The embedded default: a DuckDB file in the project's (git-ignored) data folder.
    assert warehouse.url == f"duckdb:///{resources.DATA_DIR / 'warehouse.duckdb'}"


def test_production_gets_the_cleanup_sensor_and_job_on_warehouse_and_lake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    monkeypatch.setenv("DATA_BUCKET", "shop-lake")
    monkeypatch.setenv("DAGSTER_BRANCH_GRACE_MINUTES", "45")

    defs = build_definitions()

    assert asset_names(defs) >= S3_ASSETS
    bound = defs.resources or {}
    assert {"warehouse", "lake", "pull_requests"} <= set(bound)
    job = defs.resolve_job_def("branch_cleanup")
    assert {"warehouse", "lake", "pull_requests"} <= job.required_resource_keys
    sensor = defs.resolve_sensor_def("branch_cleanup_sensor")
    assert "0:45:00" in (sensor.description or "")


def test_a_branch_deployment_has_the_assets_but_no_cleanup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
    monkeypatch.setenv("DAGSTER_CLOUD_PULL_REQUEST_ID", "42")
    monkeypatch.setenv("DATA_BUCKET", "shop-lake")

    defs = build_definitions()

    assert asset_names(defs) >= S3_ASSETS
    assert not list(defs.sensors or []) and not list(defs.jobs or [])
    assert "pull_requests" not in (defs.resources or {})


@pytest.mark.parametrize(
    ("kind", "variables", "expected"),
    [
        ("github", {"GITHUB_REPOSITORY": "octo-org/shop"}, GitHubPullRequests),
        ("gitlab", {"CI_PROJECT_ID": "1234"}, GitLabMergeRequests),
        ("dagster_plus", {"DAGSTER_CLOUD_ORGANIZATION": "hooli"}, DagsterPlusBranchDeployments),
        (
            "git",
            {"DAGSTER_BRANCH_GIT_REMOTE": "https://example.invalid/shop.git"},
            GitRemoteBranches,
        ),
    ],
)
def test_the_pr_source_follows_dagster_branch_pr_source(
    monkeypatch: pytest.MonkeyPatch, kind: str, variables: dict[str, str], expected: type
) -> None:
    monkeypatch.setenv("DAGSTER_BRANCH_PR_SOURCE", kind)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    for name in ("GITHUB_TOKEN", "GITLAB_TOKEN", "DAGSTER_CLOUD_API_TOKEN"):
        monkeypatch.setenv(name, "secret-token-value-0042")

    source = resources.pull_request_source()

    assert isinstance(source, expected)
    # Tokens are bound as EnvVar: the configuration names the variable, never holds the value.
    assert "secret-token-value-0042" not in repr(source)
    assert "secret-token-value-0042" not in str(source.model_dump())


def test_the_git_source_defaults_to_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_BRANCH_PR_SOURCE", raising=False)

    source = resources.pull_request_source()

    assert isinstance(source, GitRemoteBranches)
    assert Path(source.remote) == ROOT


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DAGSTER_BRANCH_PR_SOURCE": "bitbucket"}, "DAGSTER_BRANCH_PR_SOURCE"),
        ({"DAGSTER_BRANCH_PR_SOURCE": "github"}, "GITHUB_REPOSITORY"),
        # Dagster+ sets DAGSTER_CLOUD_GIT_REPO in branch deployments only, not where the
        # sensor runs: production must name the repository itself.
        (
            {"DAGSTER_BRANCH_PR_SOURCE": "github", "DAGSTER_CLOUD_GIT_REPO": "octo-org/shop"},
            "GITHUB_REPOSITORY",
        ),
        ({"DAGSTER_BRANCH_PR_SOURCE": "gitlab"}, "CI_PROJECT_ID"),
        ({"DAGSTER_BRANCH_GRACE_MINUTES": "soon"}, "DAGSTER_BRANCH_GRACE_MINUTES"),
    ],
)
def test_a_bad_variable_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(DagsterBranchConfigError, match=named):
        build_definitions()


def test_production_built_without_git_asks_for_the_git_remote(tmp_path: Path) -> None:
    # What a Dagster+ build holds: the two packages and no .git beside them.
    for package in ("dagster_branch", "example_project"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("data"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "DATA_"))},
        "DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod",
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
    }

    finished = subprocess.run(
        [sys.executable, "-c", "from example_project import defs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert finished.returncode != 0
    assert "DAGSTER_BRANCH_GIT_REMOTE is not set" in finished.stderr
    assert "Dagster+ builds do not ship .git" in finished.stderr


def test_dagster_asset_materialize_writes_a_branch_into_its_own_schema(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "DATA_"))},
        "DAGSTER_HOME": str(tmp_path),
        "WAREHOUSE_URL": url,
        "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "1",
        "DAGSTER_CLOUD_GIT_BRANCH": "feature/orders-v2",
        "SHOP_DBT_STATE_DIR": str(tmp_path / "state"),  # no production manifest
    }
    dagster = Path(sys.executable).with_name("dagster")

    finished = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "example_project", "--select", "*"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT table_schema, table_name FROM information_schema.tables")
            ).all()
    finally:
        engine.dispose()
    namespace = Namespace.for_branch("feature/orders-v2")
    branch_schema, marts_schema = f"analytics__{namespace}", f"analytics_marts__{namespace}"
    assert {(s, t) for s, t in rows if s.startswith("analytics")} == {
        *((branch_schema, t) for t in WAREHOUSE_ASSETS),
        # dbt's models too; without a production manifest the branch builds all of them
        *((branch_schema, t) for t in DBT_TABLES),
        (marts_schema, "region_summary"),
    }
