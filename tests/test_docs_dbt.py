"""docs/dbt.md, block by block: the files it shows are the example's (which the end-to-end dbt
tests run), its Python runs as written, its outputs are what the code prints."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from dagster_branch.dbt import DBT_PACKAGE_DIR

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "dbt.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC, flags=re.DOTALL)


def _blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCKS if lang == language]


@pytest.mark.timeout(600)  # the command imports dagster and dagster-dbt: slow on a busy machine
def test_the_package_folder_command_prints_the_shipped_package() -> None:
    command = _blocks("console")[0].splitlines()[0].removeprefix("$ ").split()
    assert command == ["python", "-m", "dagster_branch.dbt"]

    printed = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert Path(printed) == DBT_PACKAGE_DIR
    assert (DBT_PACKAGE_DIR / "macros" / "generate_schema_name.sql").is_file()


@pytest.mark.parametrize("language", ["yaml", "sql"])
def test_the_files_shown_are_the_example_projects_own(language: str) -> None:
    for body in _blocks(language):
        first, _, rest = body.partition("\n")
        path = ROOT / first.removeprefix("# ").removeprefix("-- ").strip()
        expected = path.read_text()
        assert rest == expected, path


def test_the_python_blocks_run_and_print_what_the_doc_says(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from example_project import transformations

    project = transformations.shop_project()
    transformations.prepare(project, transformations.dbt_resource(project, duckdb_url))
    monkeypatch.chdir(ROOT)  # the doc's paths are relative to the repository
    # dbt on PATH, as in an activated virtual environment
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    setup, routing = _blocks("python")
    namespace: dict[str, object] = {"WAREHOUSE_URL": duckdb_url}

    exec(compile(setup, "docs/dbt.md", "exec", dont_inherit=True), namespace)
    defs = namespace["defs"]
    assert isinstance(defs, dg.Definitions)
    assert dg.AssetKey(["marts", "region_summary"]) in set(defs.resolve_all_asset_keys())

    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "5f2c0a9e1b7d")
    monkeypatch.setenv("DAGSTER_CLOUD_PULL_REQUEST_ID", "7")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(routing, "docs/dbt.md", "exec", dont_inherit=True), namespace)
    expected = _blocks("console")[1].strip()
    assert printed.getvalue().strip() == expected
