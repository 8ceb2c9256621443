"""The wheel on its own: built from the repository, installed in a fresh virtual environment
(dependencies from the package registry), and used as a user would, with no clone beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")

DEFS = textwrap.dedent(
    """
    import dagster as dg

    from dagster_branch import (
        BranchDatabaseResource,
        BranchTableIOManager,
        GitRemoteBranches,
        branch_cleanup_definitions,
    )

    warehouse = BranchDatabaseResource(url="sqlite:///warehouse.sqlite", base_schema="analytics")


    @dg.asset
    def orders() -> list[dict[str, int]]:
        return [{"id": 1}, {"id": 2}]


    defs = dg.Definitions.merge(
        dg.Definitions(
            assets=[orders], resources={"io_manager": BranchTableIOManager(database=warehouse)}
        ),
        branch_cleanup_definitions(
            stores={"warehouse": warehouse}, source=GitRemoteBranches(remote="remote.git")
        ),
    )
    """
)
# A pull request's branch deployment writes its table, as Dagster+ would run it.
WRITE_AS_PR_7 = textwrap.dedent(
    """
    import dagster as dg

    from dagster_branch.testing import deployment_env

    with deployment_env("branch", pr=7):
        from defs import defs

        assert defs.resolve_implicit_global_asset_job_def().execute_in_process().success
    """
)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    finished = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert finished.returncode == 0, f"{args}: {finished.stdout}{finished.stderr}"
    return finished.stdout


@pytest.mark.timeout(900)
def test_the_wheel_installs_alone_and_its_command_line_works(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VIRTUAL_ENV"))}
    env["HOME"] = str(tmp_path)  # a fresh user, with the machine's package cache still shared
    # The fresh environment has no .pyc files: let its first command write them for the next.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))
    dist = tmp_path / "dist"
    _run([str(UV), "build", "--wheel", "--out-dir", str(dist), str(ROOT)], ROOT, env)
    [wheel] = dist.glob("dagster_branch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        testing = archive.read("dagster_branch/testing.py").decode()
    # The demo and the test servers stay in the repository; what users test with ships.
    assert not [n for n in names if n.startswith(("dagster_branch/demo/", "example_project/"))]
    assert "def deployment_env" in testing and "local_postgres" not in testing

    venv = tmp_path / "venv"
    _run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], tmp_path, env)
    _run([str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
          str(wheel)], tmp_path, env)  # fmt: skip
    command = str(venv / "bin" / "dagster-branch")
    project = tmp_path / "project"
    project.mkdir()
    (project / "defs.py").write_text(DEFS)
    _run(["git", "init", "--quiet", "--bare", "remote.git"], project, env)

    assert "Commands:" in _run([command, "--help"], project, env)
    assert "demo" not in _run([command, "--help"], project, env)
    context = _run([command, "context"], project, {**env, "DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod"})
    assert "production" in context
    _run([str(venv / "bin" / "python"), "-c", WRITE_AS_PR_7], project, env)
    plan = _run([command, "plan", "-f", "defs.py", "--pr", "7"], project, env)
    assert "analytics__pr_7" in plan, plan
    assert "1 object(s) to remove: 1 schema; 2 to remove with contents." in plan, plan
