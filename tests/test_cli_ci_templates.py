"""The CI templates launch the real cleanup job with a run config that job accepts."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "ci" / "dagster-cloud-cli.sh"


def _script(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_BRANCH_CI_DRY_RUN": "1", **variables}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False
    )


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


@pytest.fixture
def cleanup_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dg.JobDefinition:
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    monkeypatch.setenv("WAREHOUSE_URL", f"duckdb:///{tmp_path / 'w.duckdb'}")
    from example_project.definitions import build_definitions

    return build_definitions().resolve_job_def("branch_cleanup")


def test_script_launches_branch_cleanup_for_the_prs_namespace(
    cleanup_job: dg.JobDefinition,
) -> None:
    finished = _script("cleanup", "42", DAGSTER_CLOUD_ORGANIZATION="hooli")

    assert finished.returncode == 0, finished.stderr
    command = shlex.split(finished.stdout)
    assert command[:3] == ["dagster-cloud", "job", "launch"]
    assert _option(command, "--job") == "branch_cleanup"
    assert _option(command, "--location") == "example_project"
    assert _option(command, "--deployment") == "prod"
    config = json.loads(_option(command, "--config-json"))
    assert config == {"ops": {"plan": {"config": {"namespace": "pr_42"}}}}
    assert dg.validate_run_config(cleanup_job, config)
    assert json.loads(_option(command, "--tags"))["dagster-branch/namespace"] == "pr_42"


@pytest.mark.parametrize("number", ["42; rm -rf /", "0", "-1", "1e3", ""])
def test_script_refuses_anything_but_a_pr_number(number: str) -> None:
    finished = _script("cleanup", number, DAGSTER_CLOUD_ORGANIZATION="hooli")

    assert finished.returncode == 2
    assert "is not a pull request number" in finished.stderr
    assert finished.stdout == ""


def test_script_needs_the_organization() -> None:
    env_without = {k: v for k, v in os.environ.items() if k != "DAGSTER_CLOUD_ORGANIZATION"}
    finished = subprocess.run(
        ["bash", str(SCRIPT), "cleanup", "42"],
        env={**env_without, "DAGSTER_BRANCH_CI_DRY_RUN": "1"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert finished.returncode == 2
    assert "DAGSTER_CLOUD_ORGANIZATION is not set" in finished.stderr


def test_script_marks_a_merged_branch_deployment_closed() -> None:
    finished = _script(
        "close", "42", "merged",
        DAGSTER_CLOUD_ORGANIZATION="hooli",
        GIT_REPO_NAME="git@github.com:octo-org/shop.git",
        GIT_BRANCH="feature/orders",
        GIT_COMMIT="a1b2c3d4",
    )  # fmt: skip

    assert finished.returncode == 0, finished.stderr
    command = shlex.split(finished.stdout)
    assert command[:3] == ["dagster-cloud", "branch-deployment", "create-or-update"]
    assert _option(command, "--git-repo-name") == "octo-org/shop"
    assert _option(command, "--pull-request-status") == "MERGED"
    assert _option(command, "--code-review-id") == "42"


def test_gitlab_stop_job_launches_the_same_accepted_config(
    cleanup_job: dg.JobDefinition,
) -> None:
    pipeline = yaml.safe_load((ROOT / "ci" / "gitlab" / ".gitlab-ci.yml").read_text())
    stop = pipeline["close_branch"]
    assert stop["environment"]["action"] == "stop"
    assert pipeline["deploy_branch"]["environment"]["on_stop"] == "close_branch"
    script = "\n".join(stop["script"])
    shell = f"CI_MERGE_REQUEST_IID=17\ndagster-cloud() {{ printf '%q ' \"$@\"; }}\n{script}"

    printed = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True)

    command = shlex.split(printed.stdout)
    assert command[:2] == ["job", "launch"]
    config = json.loads(_option(command, "--config-json"))
    assert config == {"ops": {"plan": {"config": {"namespace": "pr_17"}}}}
    assert dg.validate_run_config(cleanup_job, config)


def test_github_workflow_cleans_up_on_pull_request_closed() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "dagster-plus.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "closed" in triggers["pull_request"]["types"]
    cleanup = workflow["jobs"]["cleanup"]
    assert "github.event.action == 'closed'" in cleanup["if"]
    runs = [step.get("run", "") for step in cleanup["steps"]]
    assert any("ci/dagster-cloud-cli.sh cleanup" in run for run in runs)
