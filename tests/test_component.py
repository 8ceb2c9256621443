"""BranchCleanupComponent loaded from defs.yaml files by Dagster's own component loader."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from dagster_branch import BranchDatabaseResource, GitHubPullRequests, Namespace
from dagster_branch.errors import DagsterBranchConfigError
from example_project.demo.git_remote import DemoRemote

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "yaml_project"
MODULE = "yaml_project"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the documented example project, importable, forgotten after the test."""
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m == MODULE or m.startswith(MODULE + ".")]:
        del sys.modules[name]


def _defs_yaml(project: Path) -> Path:
    return project / MODULE / "defs" / "branch_cleanup" / "defs.yaml"


def test_documented_defs_yaml_adds_resources_job_sensor_and_schedule(
    project: Path, duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    monkeypatch.setenv("WAREHOUSE_URL", duckdb_url)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_component_secret_123")

    defs = dg.load_from_defs_folder(path_within_project=project)

    assert defs.resolve_job_def("branch_cleanup").name == "branch_cleanup"
    sensor = defs.resolve_sensor_def("branch_cleanup_sensor")
    assert "0:30:00" in (sensor.description or "")  # grace_period_minutes: 30
    assert defs.resolve_schedule_def("branch_cleanup_schedule").cron_schedule == "0 3 * * *"
    resources = defs.resources or {}
    assert {"warehouse", "lake", "pull_requests", "io_manager"} <= set(resources)
    warehouse = resources["warehouse"]
    assert isinstance(warehouse, BranchDatabaseResource)
    assert warehouse.base_schema == "analytics"
    source = resources["pull_requests"]
    assert isinstance(source, GitHubPullRequests)
    assert source.repository == "octo-org/analytics"
    # The token is referenced by name only: the loaded configuration never holds its value.
    assert "ghp_component_secret_123" not in repr(resources)
    assert "ghp_component_secret_123" not in str(source.model_dump())


def test_branch_deployment_gets_the_resources_but_no_cleanup(
    project: Path, duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
    monkeypatch.setenv("DAGSTER_CLOUD_PULL_REQUEST_ID", "42")
    monkeypatch.setenv("WAREHOUSE_URL", duckdb_url)

    defs = dg.load_from_defs_folder(path_within_project=project)

    assert {"warehouse", "lake", "io_manager"} <= set(defs.resources or {})
    assert "pull_requests" not in (defs.resources or {})
    assert not list(defs.sensors or []) and not list(defs.jobs or [])
    assert not list(defs.schedules or [])


def test_incomplete_source_is_reported_by_field(
    project: Path, duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    monkeypatch.setenv("WAREHOUSE_URL", duckdb_url)
    _defs_yaml(project).write_text(  # the short type name, as re-exported by the package
        "type: dagster_branch.BranchCleanupComponent\n"
        "attributes:\n"
        "  warehouse: {base_schema: analytics}\n"
        "  pull_requests: {kind: gitlab}\n"
    )
    with pytest.raises(Exception) as raised:
        dg.load_from_defs_folder(path_within_project=project)
    # Dagster wraps the component's error with the path of the defs.yaml that failed.
    causes: list[BaseException] = []
    error: BaseException | None = raised.value
    while error is not None:
        causes.append(error)
        error = error.__cause__
    assert "branch_cleanup" in str(raised.value)
    assert any(
        isinstance(c, DagsterBranchConfigError)
        and "pull_requests.project is required for kind 'gitlab'" in str(c)
        for c in causes
    )


@dg.asset
def orders(warehouse: BranchDatabaseResource) -> None:
    with warehouse.get_connection() as conn:
        conn.execute(sa.text(f"CREATE TABLE {warehouse.table('orders')} AS SELECT 1 AS id"))


def test_yaml_configured_sensor_and_job_clean_a_deleted_branch(
    project: Path, tmp_path: Path, duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = DemoRemote.create(tmp_path, branches=["feature/kept"])
    _defs_yaml(project).write_text(
        "type: dagster_branch.components.BranchCleanupComponent\n"
        "attributes:\n"
        "  warehouse: {url_env: WAREHOUSE_URL, base_schema: analytics}\n"
        f"  pull_requests: {{kind: git, remote: '{remote.bare}'}}\n"
        "  grace_period_minutes: 0\n"
    )
    monkeypatch.setenv("WAREHOUSE_URL", duckdb_url)
    gone, kept = Namespace.for_branch("feature/gone"), Namespace.for_branch("feature/kept")

    # Two branch deployments write through the component's warehouse; one branch never reaches
    # the remote again (deleted), the other is still there.
    for branch in ("feature/gone", "feature/kept"):
        with monkeypatch.context() as branch_env:
            branch_env.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
            branch_env.setenv("DAGSTER_CLOUD_GIT_BRANCH", branch)
            branch_defs = dg.load_from_defs_folder(path_within_project=project)
            assert dg.materialize([orders], resources=branch_defs.resources).success
        for name in [m for m in sys.modules if m.startswith(MODULE)]:
            del sys.modules[name]

    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    defs = dg.load_from_defs_folder(path_within_project=project)
    instance = dg.DagsterInstance.ephemeral()
    sensor = defs.resolve_sensor_def("branch_cleanup_sensor")
    with dg.build_sensor_context(instance=instance, resources=defs.resources) as context:
        tick = sensor.evaluate_tick(context)
    assert [r.tags["dagster-branch/namespace"] for r in tick.run_requests] == [gone.key]

    request = tick.run_requests[0]
    result = defs.resolve_job_def("branch_cleanup").execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=instance
    )
    assert result.success

    engine = sa.create_engine(duckdb_url)
    try:
        with engine.connect() as conn:
            schemas = set(
                conn.execute(
                    sa.text("SELECT schema_name FROM information_schema.schemata")
                ).scalars()
            )
    finally:
        engine.dispose()
    assert f"analytics__{kept.key}" in schemas
    assert f"analytics__{gone.key}" not in schemas
