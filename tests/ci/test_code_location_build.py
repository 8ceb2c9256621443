"""The example code location's build installs what it runs, and no test or lint tool.

Checked with Dagster+'s own builder code (dagster-cloud-cli's ``get_deps_requirements``, what
``dagster-cloud ci build`` runs on the build directory that ``dagster_cloud.yaml`` names).
"""

from __future__ import annotations

import sys

import pytest
import tomllib
import yaml
from dagster_cloud_cli.core.pex_builder import deps
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.ci.templates import ROOT


def _names(lines: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in lines if line.strip()}


@pytest.fixture
def collected(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    location = yaml.safe_load((ROOT / "dagster_cloud.yaml").read_text())["locations"][0]
    build_directory = ROOT / location["build"]["directory"]
    # The builder runs `python3.11 setup.py egg_info`: this environment's Python 3.11.
    monkeypatch.setenv("PATH", f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin")
    _, requirements = deps.get_deps_requirements(str(build_directory), Version("3.11"))
    return _names(requirements.requirements_txt.splitlines())


def test_no_development_tool_is_collected(collected: set[str]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    tools = _names([line for extra in project["optional-dependencies"].values() for line in extra])
    location_own = (ROOT / "deploy" / "example_project" / "requirements.txt").read_text()
    runs = _names([line for line in location_own.splitlines() if not line.startswith("#")])

    assert collected & (tools - runs) == set()
    assert {"pytest", "moto", "mypy", "ruff", "pandas", "awscli"}.isdisjoint(collected)


def test_what_the_location_runs_is_collected(collected: set[str]) -> None:
    runtime = _names(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    )

    assert runtime <= collected
    assert {"dagster-cloud", "duckdb-engine"} <= collected  # Serverless' runner; the warehouse
