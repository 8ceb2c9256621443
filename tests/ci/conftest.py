"""A test repository to run the CI templates in, and the Dagster+ stand-in they talk to.

Each template's test module has a ``play(project, dagster_plus, temp)`` function that runs one
pull request's life through the template. ``played`` starts every selected module's ``play`` at
once, each in a thread with its own repository and stand-in, so their CLI runs overlap (each
``dagster-cloud`` command spends seconds importing itself); the modules' tests wait for theirs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer

from tests.ci.dagster_plus_standin import DagsterPlusStandIn
from tests.ci.templates import ROOT, git

# What a checkout of this repository holds that the templates use.
CHECKED_OUT = [
    "dagster_cloud.yaml",
    "pyproject.toml",
    "ci",
    "deploy",
    "dagster_branch",
    "example_project",
]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "data", "*.egg-info", "build")
MAIN_TIME = 1722500000  # 2024-08-01T08:13:20Z
BRANCH_TIME = 1722586400  # a day later: the pull request's last commit
BRANCH = "feature/orders"


@dataclass(frozen=True)
class Project:
    """A git repository with main and one pull request branch, on a GitHub-like remote."""

    path: Path
    main_sha: str
    branch_sha: str


def _commit(path: Path, message: str, when: int) -> str:
    stamp = f"{when} +0000"
    env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    git(path, "commit", "--quiet", "--allow-empty", "-m", message, env=env)
    return git(path, "rev-parse", "HEAD")


def make_project(folder: Path) -> Project:
    """The repository's files in ``folder``/shop, committed on main and on a PR branch."""
    path = folder / "shop"
    path.mkdir()
    for name in CHECKED_OUT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=IGNORED)
        else:
            shutil.copy2(source, path / name)
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "config", "user.name", "Ada Lovelace")
    git(path, "config", "user.email", "ada@example.com")
    git(path, "remote", "add", "origin", "git@github.com:octo-org/shop.git")
    git(path, "add", "--all")
    main_sha = _commit(path, "The shop", MAIN_TIME)
    git(path, "checkout", "--quiet", "-b", BRANCH)
    branch_sha = _commit(path, "Orders by region", BRANCH_TIME)
    git(path, "checkout", "--quiet", "main")
    return Project(path, main_sha, branch_sha)


@contextmanager
def dagster_plus_standin() -> Iterator[DagsterPlusStandIn]:
    """A Dagster+ stand-in on a free loopback port, stopped on exit."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield DagsterPlusStandIn(server, dagster_version=version("dagster"))
    finally:
        server.clear()
        server.stop()


@pytest.fixture(scope="session")
def played(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Any]]]:
    """Each selected module's ``play`` result (a future), keyed by the module's name (under
    pytest-xdist, tests/support/scheduling.py keeps these modules on one worker)."""
    modules = {item.module for item in request.session.items if hasattr(item.module, "play")}
    with ExitStack() as stack, ThreadPoolExecutor(max(len(modules), 1)) as pool:
        futures = {}
        for module in modules:
            project = make_project(tmp_path_factory.mktemp("checkout"))
            standin = stack.enter_context(dagster_plus_standin())
            temp = tmp_path_factory.mktemp(module.__name__.rsplit(".", 1)[-1])
            futures[module.__name__] = pool.submit(module.play, project, standin, temp)
        yield futures


@pytest.fixture(scope="module")
def runs(played: dict[str, Future[Any]], request: pytest.FixtureRequest) -> Any:
    """What this module's ``play`` recorded (its ``Runs``), once it has finished."""
    return played[request.module.__name__].result()


@pytest.fixture(scope="module")
def project(runs: Any) -> Project:
    """The repository this module's ``play`` ran in."""
    project: Project = runs.project
    return project


@pytest.fixture(scope="module")
def dagster_plus(runs: Any) -> DagsterPlusStandIn:
    """The stand-in this module's ``play`` talked to."""
    standin: DagsterPlusStandIn = runs.dagster_plus
    return standin


@pytest.fixture
def cleanup_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dg.JobDefinition:
    """The example project's production ``branch_cleanup`` job, to validate run configs."""
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    monkeypatch.setenv("WAREHOUSE_URL", f"duckdb:///{tmp_path / 'w.duckdb'}")
    from example_project.definitions import build_definitions

    return build_definitions().resolve_job_def("branch_cleanup")
