"""How the cleanup job plugs into a code location: keys, run config, refusals before removal.

The stores here are real folders on disk (:class:`FolderStore`), so that wiring can be checked
without a warehouse; every data-safety behaviour is tested against PostgreSQL, DuckDB, SQLite
and the S3 server in the other test modules.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from dagster_branch import BranchDatabaseResource, BranchTableIOManager
from dagster_branch.cleanup.job import CleanupOutcome, build_branch_cleanup_job
from tests.cleanup.folder_store import FolderStore
from tests.cleanup.helpers import cleanup_config, failure_text


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("analytics", "analytics__pr_7", "analytics__pr_8", "exports__pr_7"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "part-0.csv").write_text(f"rows of {name}\n")
    return tmp_path


def _folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_graph_has_one_removal_op_per_store_and_one_config_block_on_plan() -> None:
    job = build_branch_cleanup_job()
    assert {node.name for node in job.graph.nodes} == {
        "plan",
        "verify",
        "remove_from_warehouse",
        "remove_from_lake",
        "record",
    }
    assert job.required_resource_keys >= {"warehouse", "lake", "pull_requests"}
    # The exact shape the sensor sends; defaults fill the rest.
    assert dg.validate_run_config(job, cleanup_config("pr_42"))["ops"]["plan"]["config"] == {
        "namespace": "pr_42",
        "dry_run": False,
        "max_objects": 10_000,
        "require_closed": True,
        "include_unrecorded": False,
    }
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, {"ops": {"verify": {"config": {"namespace": "pr_42"}}}})


def test_a_negative_max_objects_fails_config_validation_before_any_run_starts(
    root: Path,
) -> None:
    job = build_branch_cleanup_job(store_keys=("warehouse",), source_key=None)
    config = cleanup_config(max_objects=-1, require_closed=False)
    expected = "max_objects must be 0 or more"

    with pytest.raises(dg.DagsterInvalidConfigError, match=expected):
        dg.validate_run_config(job, config)  # what the launchpad and the sensor's launch run
    with dg.DagsterInstance.ephemeral() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError, match=expected) as raised:
            job.execute_in_process(
                run_config=config,
                resources={"warehouse": FolderStore(root=str(root))},
                instance=instance,
                raise_on_error=False,
            )
        assert instance.get_runs_count() == 0  # refused at launch: no run, no step
    assert "got -1" in str(raised.value)
    assert (root / "analytics__pr_7").exists()
    # Zero is allowed: a run that may remove nothing.
    assert dg.validate_run_config(job, cleanup_config(max_objects=0))


def test_two_cleanup_jobs_live_in_one_code_location(root: Path) -> None:
    defs = dg.Definitions(
        jobs=[
            build_branch_cleanup_job(store_keys=("warehouse",), source_key=None),
            build_branch_cleanup_job(
                name="exports_cleanup", store_keys=("exports",), source_key=None
            ),
        ],
        resources={
            "warehouse": FolderStore(root=str(root)),
            "exports": FolderStore(root=str(root), base="exports"),
        },
    )
    result = defs.get_job_def("exports_cleanup").execute_in_process(
        run_config=cleanup_config(require_closed=False)
    )
    assert result.success
    assert _folders(root) == ["analytics", "analytics__pr_7", "analytics__pr_8"]
    outcome = result.output_for_node("record")
    assert isinstance(outcome, CleanupOutcome)
    assert [r.obj.name for r in outcome.results()] == ["exports__pr_7"]


def test_definitions_without_the_source_fail_to_load_when_the_job_needs_one(root: Path) -> None:
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="pull_requests"):
        dg.Definitions(
            jobs=[build_branch_cleanup_job(store_keys=("warehouse",))],
            resources={"warehouse": FolderStore(root=str(root))},
        ).get_job_def("branch_cleanup")


def test_a_job_without_source_refuses_require_closed_and_removes_nothing(root: Path) -> None:
    job = build_branch_cleanup_job(store_keys=("warehouse",), source_key=None)
    result = job.execute_in_process(
        run_config=cleanup_config(),
        resources={"warehouse": FolderStore(root=str(root))},
        raise_on_error=False,
    )
    assert not result.success
    assert "no pull-request source is configured" in failure_text(result)
    assert "set require_closed: false" in failure_text(result)
    assert _folders(root) == ["analytics", "analytics__pr_7", "analytics__pr_8", "exports__pr_7"]


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ("", "production has no namespace"),
        ("analytics", "is not a branch namespace"),
        ("pr_7; DROP SCHEMA analytics", "is not a branch namespace"),
    ],
)
def test_production_and_unparsable_namespaces_are_refused(
    root: Path, namespace: str, message: str
) -> None:
    job = build_branch_cleanup_job(store_keys=("warehouse",), source_key=None)
    result = job.execute_in_process(
        run_config=cleanup_config(namespace, require_closed=False),
        resources={"warehouse": FolderStore(root=str(root))},
        raise_on_error=False,
    )
    assert not result.success
    assert message in failure_text(result)
    assert _folders(root) == ["analytics", "analytics__pr_7", "analytics__pr_8", "exports__pr_7"]


def test_a_resource_that_is_not_branch_aware_is_named_in_the_error(root: Path) -> None:
    class PlainResource(dg.ConfigurableResource):
        path: str

    job = build_branch_cleanup_job(store_keys=("warehouse", "lake"), source_key=None)
    result = job.execute_in_process(
        run_config=cleanup_config(require_closed=False),
        resources={"warehouse": FolderStore(root=str(root)), "lake": PlainResource(path="x")},
        raise_on_error=False,
    )
    assert not result.success
    text = failure_text(result)
    assert "The resource 'lake' is a PlainResource, not a branch-aware store" in text
    assert (root / "analytics__pr_7").exists()


def test_store_keys_are_checked_when_the_job_is_built() -> None:
    with pytest.raises(ValueError, match="twice"):
        build_branch_cleanup_job(store_keys=("warehouse", "warehouse"))
    with pytest.raises(ValueError, match="non-empty"):
        build_branch_cleanup_job(store_keys=())
    with pytest.raises(ValueError, match="own key"):
        build_branch_cleanup_job(store_keys=("warehouse",), source_key="warehouse")


def test_a_code_location_whose_io_manager_writes_tables_gives_the_job_its_own(
    root: Path, tmp_path: Path, duckdb_url: str
) -> None:
    # A warehouse IO manager bound as the default "io_manager" cannot store the plan; the job
    # then names a pickling IO manager of its own, and the table IO manager never sees a value.
    defs = dg.Definitions(
        jobs=[
            build_branch_cleanup_job(
                store_keys=("warehouse",), source_key=None, io_manager_key="cleanup_io"
            )
        ],
        resources={
            "warehouse": FolderStore(root=str(root)),
            "io_manager": BranchTableIOManager(
                database=BranchDatabaseResource(url=duckdb_url, base_schema="analytics")
            ),
            "cleanup_io": dg.FilesystemIOManager(base_dir=str(tmp_path / "values")),
        },
    )
    result = defs.get_job_def("branch_cleanup").execute_in_process(
        run_config=cleanup_config(require_closed=False)
    )
    assert result.success
    assert not (root / "analytics__pr_7").exists()
    assert sorted(p.name for p in (tmp_path / "values").rglob("*") if p.is_file())  # pickled
    assert not (tmp_path / "warehouse.duckdb").exists()  # no table was written
