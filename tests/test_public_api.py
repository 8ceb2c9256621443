"""The public API: the names ``dagster_branch`` exports, and every import the docs show.

A user should hold the top-level API in their head, and every snippet they copy from the docs,
the README or the example project should import. Anything else stays importable from its module.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import dagster_branch

ROOT = Path(__file__).resolve().parents[1]
_CODE_BLOCK = re.compile(r"^```(?:python|py)\n(.*?)^```", re.M | re.S)
# An import statement, possibly parenthesised over several lines, in a snippet that may not
# parse as a whole (a fragment with "...").
_IMPORT = re.compile(r"^[ \t]*from (dagster_branch[\w.]*) import (\([^)]*\)|[^\n]+)", re.M)

DOCUMENTED = {
    # resources and IO managers
    "BranchDatabaseResource",
    "BranchS3Resource",
    "BranchTableIOManager",
    "BranchS3PickleIOManager",
    "branch_io_manager",
    # pull-request sources
    "GitHubPullRequests",
    "GitLabMergeRequests",
    "DagsterPlusBranchDeployments",
    "GitRemoteBranches",
    # the cleanup's builders and the component
    "build_branch_cleanup_sensor",
    "build_branch_cleanup_schedule",
    "branch_cleanup_definitions",
    "CleanupPolicy",
    "BranchCleanupComponent",
    # the deployment and its namespace
    "DeploymentContext",
    "Namespace",
    # the errors users catch
    "DagsterBranchError",
    "DagsterBranchConfigError",
    "NamespaceViolationError",
    "SourceError",
    "CleanupRefusedError",
    "CleanupIncompleteError",
}


def test_star_import_gives_exactly_the_documented_names() -> None:
    namespace: dict[str, object] = {}
    exec("from dagster_branch import *", namespace)
    exported = {name for name in namespace if name != "__builtins__"}
    assert exported == set(dagster_branch.__all__) == DOCUMENTED
    assert len(dagster_branch.__all__) == len(DOCUMENTED)  # no name listed twice


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_exported_name_is_importable_and_documented(name: str) -> None:
    value = getattr(importlib.import_module("dagster_branch"), name)
    assert value.__doc__, f"dagster_branch.{name} has no docstring"


def _imports_in(source: str) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from dagster_branch… import name`` in ``source``."""
    found = []
    for module, names in _IMPORT.findall(source):
        for item in re.sub(r"#[^\n]*", "", names).strip("()").split(","):
            if item.strip():
                found.append((module, item.split(" as ")[0].strip()))
    return found


def _documented_imports() -> list[tuple[str, str, str]]:
    """``(where, module, name)`` for each import in the docs, the README and the example."""
    sources: list[tuple[str, str]] = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in _CODE_BLOCK.findall(page.read_text()):
            sources.append((str(page.relative_to(ROOT)), block))
    for path in sorted([*(ROOT / "example_project").rglob("*.py"), *(ROOT / "docs").rglob("*.py")]):
        sources.append((str(path.relative_to(ROOT)), path.read_text()))
    return [(where, m, n) for where, text in sources for m, n in _imports_in(text)]


DOCUMENTED_IMPORTS = _documented_imports()


def test_the_docs_and_the_example_import_the_public_names() -> None:
    top_level = {name for _, module, name in DOCUMENTED_IMPORTS if module == "dagster_branch"}
    # the README, the docs and the example project are what the public names were chosen from
    assert {"BranchDatabaseResource", "branch_cleanup_definitions"} <= top_level
    assert top_level <= DOCUMENTED


@pytest.mark.parametrize(
    ("where", "module", "name"),
    DOCUMENTED_IMPORTS,
    ids=[f"{w}:{m}.{n}" for w, m, n in DOCUMENTED_IMPORTS],
)
def test_every_import_in_the_docs_and_the_example_works(where: str, module: str, name: str) -> None:
    imported = importlib.import_module(module)
    assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), (
        f"{where}: 'from {module} import {name}' fails"
    )


def test_the_example_project_parses_and_its_imports_were_found() -> None:
    for path in (ROOT / "example_project").rglob("*.py"):
        ast.parse(path.read_text())  # a syntax error would hide its imports from the check above
    assert any(w.startswith("example_project/") for w, _, _ in DOCUMENTED_IMPORTS)
