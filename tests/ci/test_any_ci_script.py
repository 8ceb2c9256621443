"""ci/dagster-cloud-cli.sh, run with the real dagster-cloud CLI against a Dagster+ stand-in.

A detached checkout of the pull request's commit, as CircleCI, Buildkite, Jenkins and most CI
systems make it: the branch must come from the CI system's variables, the commit time from git.
The per-system variables are checked with the script's own dry run (no CLI needed for that).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from tests.ci.conftest import BRANCH, BRANCH_TIME, Project
from tests.ci.dagster_plus_standin import TOKEN, Call, DagsterPlusStandIn
from tests.ci.expect import cleanup_launched, one
from tests.ci.templates import ANY_CI_SCRIPT, base_environment, git

REPOSITORY = "octo-org/shop"  # from the origin remote
PR = 7
IMAGE = "registry.example.com/shop:abc123"


@dataclass(frozen=True)
class Runs:
    """What reached the stand-in for each command of the script, by command."""

    project: Project
    dagster_plus: DagsterPlusStandIn
    deploy: list[Call]
    close: list[Call]
    cleanup: list[Call]


def _script(
    *args: str, cwd: os.PathLike[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ANY_CI_SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def play(project: Project, dagster_plus: DagsterPlusStandIn, temp: Path) -> Runs:
    """PR 7 deployed, merged and cleaned up from a CircleCI-like detached checkout."""
    git(project.path, "checkout", "--quiet", "--detach", project.branch_sha)
    env = {
        **base_environment(temp),
        "CIRCLECI": "true",
        "CIRCLE_BRANCH": BRANCH,
        "DAGSTER_CLOUD_URL": dagster_plus.url,
        "DAGSTER_CLOUD_API_TOKEN": TOKEN,
    }
    seen = 0
    calls: dict[str, list[Call]] = {}
    for command in (["deploy", str(PR), IMAGE], ["close", str(PR), "merged"], ["cleanup", str(PR)]):
        finished = _script(*command, cwd=project.path, env=env)
        assert finished.returncode == 0, finished.stdout + finished.stderr
        calls[command[0]], seen = dagster_plus.calls[seen:], len(dagster_plus.calls)
    return Runs(project, dagster_plus, **calls)


def test_deploy_sends_the_ci_branch_and_the_commits_own_time_then_sets_the_image(
    runs: Runs, dagster_plus: DagsterPlusStandIn, project: Project
) -> None:
    created = one(runs.deploy, "CliCreateOrUpdateBranchDeployment").variables

    assert created["branchData"]["branchName"] == BRANCH  # not "HEAD"
    assert created["branchData"]["repoName"] == REPOSITORY
    assert created["branchData"]["pullRequestNumber"] == str(PR)
    assert created["branchData"]["pullRequestStatus"] == "OPEN"
    assert created["commit"]["commitHash"] == project.branch_sha
    assert created["commit"]["timestamp"] == BRANCH_TIME  # not the time of the CI run
    located = one(runs.deploy, "CliAddOrUpdateLocation")
    assert located.deployment == dagster_plus.branches[(REPOSITORY, BRANCH)].name
    assert located.variables["document"]["location_name"] == "example_project"
    assert located.variables["document"]["image"] == IMAGE


def test_close_marks_the_same_branch_deployment_merged(
    runs: Runs, dagster_plus: DagsterPlusStandIn
) -> None:
    closed = one(runs.close, "CliCreateOrUpdateBranchDeployment").variables

    assert closed["branchData"]["branchName"] == BRANCH
    assert closed["branchData"]["pullRequestStatus"] == "MERGED"
    assert dagster_plus.branches[(REPOSITORY, BRANCH)].history == ["OPEN", "MERGED"]


def test_cleanup_launches_branch_cleanup_in_production_for_the_prs_namespace(
    runs: Runs, cleanup_job: dg.JobDefinition
) -> None:
    tags = cleanup_launched(runs.cleanup, f"pr_{PR}", cleanup_job)
    assert tags == {"dagster-branch/namespace": f"pr_{PR}", "dagster-branch/trigger": "ci-close"}


def test_every_command_of_the_script_ran(runs: Runs) -> None:
    arms = re.findall(r"^    (\w+)\)$", ANY_CI_SCRIPT.read_text(), flags=re.MULTILINE)

    assert set(arms) == {"deploy", "close", "cleanup"}
    assert all([runs.deploy, runs.close, runs.cleanup])


@pytest.mark.parametrize(
    ("variables", "branch"),
    [
        ({"GITHUB_HEAD_REF": BRANCH, "GITHUB_REF_NAME": "7/merge"}, BRANCH),
        ({"GITLAB_CI": "true", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": BRANCH}, BRANCH),
        ({"CIRCLECI": "true", "CIRCLE_BRANCH": BRANCH}, BRANCH),
        ({"BUILDKITE": "true", "BUILDKITE_BRANCH": BRANCH}, BRANCH),
        ({"JENKINS_URL": "https://ci", "CHANGE_BRANCH": BRANCH, "BRANCH_NAME": "PR-7"}, BRANCH),
        ({"JENKINS_URL": "https://ci", "GIT_BRANCH": f"origin/{BRANCH}"}, BRANCH),
        ({"BITBUCKET_BUILD_NUMBER": "3", "BITBUCKET_BRANCH": BRANCH}, BRANCH),
        ({"TF_BUILD": "True", "SYSTEM_PULLREQUEST_SOURCEBRANCH": f"refs/heads/{BRANCH}"}, BRANCH),
        ({"CIRCLE_BRANCH": "ignored", "GIT_BRANCH_NAME": "release/2"}, "release/2"),
    ],
    ids=[
        "github",
        "gitlab",
        "circleci",
        "buildkite",
        "jenkins-pr",
        "jenkins-git",
        "bitbucket",
        "azure",
        "override",
    ],
)
def test_the_branch_comes_from_each_ci_systems_variables(
    project: Project,
    tmp_path_factory: pytest.TempPathFactory,
    variables: dict[str, str],
    branch: str,
) -> None:
    git(project.path, "checkout", "--quiet", "--detach", project.branch_sha)
    env = {
        **base_environment(tmp_path_factory.mktemp("home")),
        "DAGSTER_BRANCH_CI_DRY_RUN": "1",
        "DAGSTER_CLOUD_ORGANIZATION": "hooli",
        **variables,
    }

    finished = _script("close", str(PR), cwd=project.path, env=env)

    assert finished.returncode == 0, finished.stderr
    command = shlex.split(finished.stdout)
    assert command[command.index("--branch-name") + 1] == branch
    assert command[command.index("--url") + 1] == "https://hooli.dagster.cloud"


def test_no_branch_variable_fails_with_what_to_set(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    git(project.path, "checkout", "--quiet", "--detach", project.branch_sha)
    env = {
        **base_environment(tmp_path_factory.mktemp("home")),
        "DAGSTER_BRANCH_CI_DRY_RUN": "1",
        "DAGSTER_CLOUD_ORGANIZATION": "hooli",
    }

    finished = _script("close", str(PR), cwd=project.path, env=env)

    assert finished.returncode == 2
    assert "no CI variable names the pull request's branch" in finished.stderr
    assert "set GIT_BRANCH_NAME" in finished.stderr
    assert finished.stdout == ""


@pytest.mark.parametrize("number", ["42; rm -rf /", "0", "-1", "1e3", ""])
def test_anything_but_a_pr_number_is_refused(project: Project, number: str) -> None:
    env = {**base_environment(project.path), "DAGSTER_CLOUD_ORGANIZATION": "hooli"}

    finished = _script("cleanup", number, cwd=project.path, env=env)

    assert finished.returncode == 2
    assert "is not a pull request number" in finished.stderr
    assert finished.stdout == ""


def test_without_organization_or_url_it_says_what_to_set(project: Project) -> None:
    finished = _script("cleanup", "42", cwd=project.path, env=base_environment(project.path))

    assert finished.returncode == 2
    assert "DAGSTER_CLOUD_ORGANIZATION is not set" in finished.stderr


def test_the_dry_run_prints_the_launch_without_the_token(project: Project) -> None:
    env = {
        **base_environment(project.path),
        "DAGSTER_BRANCH_CI_DRY_RUN": "1",
        "DAGSTER_CLOUD_ORGANIZATION": "hooli",
        "DAGSTER_CLOUD_API_TOKEN": TOKEN,
    }

    finished = _script("cleanup", "42", cwd=project.path, env=env)

    command = shlex.split(finished.stdout)
    assert command[:3] == ["dagster-cloud", "job", "launch"]
    assert json.loads(command[command.index("--config-json") + 1]) == {
        "ops": {"plan": {"config": {"namespace": "pr_42"}}}
    }
    assert TOKEN not in finished.stdout + finished.stderr
