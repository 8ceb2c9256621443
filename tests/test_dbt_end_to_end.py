"""The example's dbt models through Dagster, on DuckDB (dbt-duckdb) and PostgreSQL (dbt-postgres):
production, then PR 7's branch deployment deferring to production, then the cleanup of pr_7.

One test per warehouse keeps the dbt invocations to two builds each (dbt starts slowly). Each
test's dbt artifacts go to a folder of its own (``DBT_TARGET_PATH``), so tests running at the same
time never read each other's compiled SQL or manifest.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dagster_branch import BranchDatabaseResource, Namespace
from dagster_branch.cli import main as cli_main
from dagster_branch.ledger import Ledger
from dagster_branch.testing import deployment_env
from example_project.definitions import build_definitions
from tests.support.example import DBT_TABLES

PR_7 = Namespace.for_pull_request(7)
PRODUCTION_SCHEMAS = ("analytics", "analytics_marts")
CHANGED_MODEL = dg.AssetKey(["marts", "region_summary"])
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _settings(url: str, state: Path) -> dict[str, str]:
    return {
        "WAREHOUSE_URL": url,
        "SHOP_DBT_STATE_DIR": str(state),
        "DBT_TARGET_PATH": str(_target(state)),
    }


def _target(state: Path) -> Path:
    """This test's dbt target folder, beside its state folder."""
    return state.parent / "dbt-target"


def _production(url: str, state: Path) -> contextlib.AbstractContextManager[dict[str, str]]:
    return deployment_env("production", extra=_settings(url, state))


def _branch(url: str, state: Path) -> contextlib.AbstractContextManager[dict[str, str]]:
    return deployment_env("branch", pr=7, extra=_settings(url, state))


def _materialize(selection: list[dg.AssetKey] | None = None) -> dg.ExecuteInProcessResult:
    defs = build_definitions()
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        run_config=QUIET, asset_selection=selection, raise_on_error=False
    )
    assert result.success, _failure(result)
    return result


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            return event.step_failure_data.error.to_string()[-3000:]  # type: ignore[union-attr]
    return "no step failed"


def _relations(url: str) -> dict[str, set[str]]:
    """Schema -> its tables and views, from the catalog."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_catalog = current_database()"
                )
            ).all()
    finally:
        engine.dispose()
    found: dict[str, set[str]] = {}
    for schema, name in rows:
        found.setdefault(schema, set()).add(name)
    return found


def _production_contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every production relation, sorted: equal means byte-for-byte unchanged."""
    contents: dict[str, list[tuple[Any, ...]]] = {}
    relations = _relations(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for schema in PRODUCTION_SCHEMAS:
                for name in sorted(relations.get(schema, ())):
                    query = sa.select(sa.literal_column("*")).select_from(
                        sa.table(name, schema=schema)
                    )
                    contents[f"{schema}.{name}"] = sorted(
                        tuple(map(repr, r)) for r in conn.execute(query)
                    )
    finally:
        engine.dispose()
    return contents


def _newest(target: Path, artifact: str) -> Path:
    """``artifact`` of the latest dbt invocation (dagster-dbt gives each its own folder)."""
    return max(target.glob(f"*/{artifact}"), key=lambda f: f.stat().st_mtime)


def _newest_compiled(target: Path, model_path: str) -> str:
    return _newest(target, f"compiled/shop/models/{model_path}").read_text()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.mark.timeout(900)  # four Definitions loads and two dbt builds: slow on a busy machine
def test_branch_dbt_models_land_in_pr_7_schemas_defer_to_production_and_are_cleaned(
    warehouse_url: str, state_dir: Path
) -> None:
    # 1. production builds every model with dbt's own names, and records nothing
    with _production(warehouse_url, state_dir):
        _materialize()
    built = _relations(warehouse_url)
    assert built["analytics"] >= DBT_TABLES
    assert built["analytics_marts"] == {"region_summary"}
    # The production deploy publishes its manifest (here: the production run's, which names this
    # warehouse's database); the branch's build downloads it to state_path.
    state_dir.mkdir()
    shutil.copy(_newest(_target(state_dir), "manifest.json"), state_dir / "manifest.json")
    production_before = _production_contents(warehouse_url)
    assert not _live_ledger_rows(warehouse_url)

    # 2. PR 7 changes region_summary and materializes it: built in its schema, reading production
    with _branch(warehouse_url, state_dir):
        _materialize([CHANGED_MODEL])
    after_branch = _relations(warehouse_url)
    branch_schemas = {s for s in after_branch if s not in PRODUCTION_SCHEMAS} - _OTHER_SCHEMAS
    assert branch_schemas == {"analytics_marts__pr_7"}
    assert all(
        _warehouse(warehouse_url).namespace_of_branch_schema(s) == PR_7 for s in branch_schemas
    )
    assert after_branch["analytics_marts__pr_7"] == {"region_summary"}
    compiled = _newest_compiled(_target(state_dir), "marts/region_summary.sql")
    assert '"analytics"."region_targets"' in compiled and '"analytics"."region_events"' in compiled
    assert "__pr_7" not in compiled  # unchanged upstream models were read from production
    assert _production_contents(warehouse_url) == production_before
    assert ("table", "analytics_marts__pr_7", "region_summary") in _live_ledger_rows(warehouse_url)

    # 3. the plan lists the dbt relations, and branch_cleanup for pr_7 removes them all
    with _production(warehouse_url, state_dir):
        # -f: the example's Definitions built now, in this environment (-m would reuse the
        # module this test process imported before the variables were set).
        defs_file = state_dir.parent / "defs.py"
        defs_file.write_text(
            "from example_project.definitions import build_definitions\n"
            "defs = build_definitions()\n"
        )
        plan = CliRunner().invoke(cli_main, ["plan", "-f", str(defs_file), "--pr", "7"])
        assert plan.exit_code == 0, plan.output
        assert _table_rows(plan.output) >= _table_rows(_documented_plan()), plan.output
        defs = build_definitions()
        cleanup = defs.resolve_job_def("branch_cleanup").execute_in_process(
            run_config={
                "ops": {"plan": {"config": {"namespace": "pr_7", "require_closed": False}}},
                **QUIET,
            },
            raise_on_error=False,
        )
    assert cleanup.success, _failure(cleanup)
    after_cleanup = _relations(warehouse_url)
    assert not ({s for s in after_cleanup if "__pr_7" in s}), after_cleanup
    assert _production_contents(warehouse_url) == production_before
    assert not _live_ledger_rows(warehouse_url)


def _documented_plan() -> str:
    """The plan docs/dbt.md shows for the example project's PR 7."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "dbt.md").read_text()
    return doc.split("$ dagster-branch plan -m example_project --pr 7", 1)[1].split("```", 1)[0]


def _table_rows(output: str) -> set[tuple[str, ...]]:
    return {
        tuple(re.split(r"\s{2,}", line.strip()))
        for line in output.splitlines()
        if line.startswith("warehouse ")
    }


_OTHER_SCHEMAS = {"dagster_branch", "information_schema", "pg_catalog", "main", "public"}


def _warehouse(url: str) -> BranchDatabaseResource:
    return BranchDatabaseResource(
        url=url, base_schema="analytics", extra_schemas=["analytics_marts"]
    )


def _live_ledger_rows(url: str) -> set[tuple[str, str | None, str]]:
    ledger = Ledger.from_url(url)
    try:
        return {(e.kind.value, e.container, e.name) for e in ledger.live_entries(PR_7)}
    finally:
        ledger.close()
