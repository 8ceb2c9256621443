"""The GitHub workflow, run with the real dagster-cloud CLI against a Dagster+ stand-in.

One pull request's life, in the order GitHub runs it: PR 42 opened (the ``deploy`` job), then
merged (the ``cleanup`` job). The production deploy runs the same steps (the GitLab test runs
its production job); here only the choice of jobs on a push is checked.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from dagster_branch import DagsterPlusBranchDeployments
from dagster_branch.naming import Namespace
from dagster_branch.pull_requests import PullRequestStatus
from tests.ci.conftest import BRANCH, BRANCH_TIME, Project
from tests.ci.dagster_plus_standin import TOKEN, Call, DagsterPlusStandIn
from tests.ci.expect import cleanup_launched, one
from tests.ci.templates import (
    GITHUB_WORKFLOW,
    all_shell_blocks,
    base_environment,
    github_blocks,
    run_github,
)

REPOSITORY = "octo-org/shop"
PR = 42


@dataclass(frozen=True)
class Runs:
    """What reached the stand-in during each event, and the steps that ran."""

    project: Project
    dagster_plus: DagsterPlusStandIn
    opened: list[Call]
    merged: list[Call]
    steps: list[str]


def _event(project: Project, action: str, *, merged: bool = False) -> dict[str, Any]:
    pull_request = {
        "number": PR,
        "state": "closed" if action == "closed" else "open",
        "merged": merged,
        "html_url": f"https://github.com/{REPOSITORY}/pull/{PR}",
        "head": {"ref": BRANCH, "sha": project.branch_sha},
        "base": {"ref": "main", "sha": project.main_sha},
    }
    return {
        "action": action,
        "number": PR,
        "pull_request": pull_request,
        "repository": {"full_name": REPOSITORY},
    }


def play(project: Project, dagster_plus: DagsterPlusStandIn, temp: Path) -> Runs:
    """PR 42 opened, then merged, as GitHub runs the workflow for each event."""
    steps: list[str] = []
    seen = 0

    def run(
        event_name: str, event: dict[str, Any], sha: str, ref: str, head_ref: str
    ) -> list[Call]:
        nonlocal seen
        runner_temp = temp / f"runner-{len(steps)}"
        runner_temp.mkdir()
        (runner_temp / "event.json").write_text(json.dumps(event))
        runner = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION": "__run",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(runner_temp / "event.json"),
            "GITHUB_SHA": sha,
            "GITHUB_REF": ref,
            "GITHUB_HEAD_REF": head_ref,
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_RUN_ID": str(9000 + len(steps)),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_WORKSPACE": str(project.path),
            "RUNNER_TEMP": str(runner_temp),
        }
        run_github(
            event_name,
            event,
            checkout=project.path,
            base_env=base_environment(runner_temp),
            runner=runner,
            variables={
                "DAGSTER_CLOUD_ORGANIZATION": "hooli",
                "DAGSTER_CLOUD_URL": dagster_plus.url,
            },
            # GITHUB_TOKEN is left empty: `ci notify` would post its comment to github.com.
            secrets={"DAGSTER_CLOUD_API_TOKEN": TOKEN},
            log=steps,
        )
        calls, seen = dagster_plus.calls[seen:], len(dagster_plus.calls)
        return calls

    pr_ref = f"refs/pull/{PR}/merge"
    opened = run("pull_request", _event(project, "opened"), project.branch_sha, pr_ref, BRANCH)
    merged = run(
        "pull_request", _event(project, "closed", merged=True), project.branch_sha, pr_ref, BRANCH
    )
    return Runs(project, dagster_plus, opened, merged, steps)


def test_opening_the_pr_creates_its_branch_deployment_with_the_prs_git_facts(
    runs: Runs, project: Project
) -> None:
    created = one(runs.opened, "CliCreateOrUpdateBranchDeployment").variables

    assert created["branchData"]["repoName"] == REPOSITORY
    assert created["branchData"]["branchName"] == BRANCH
    assert created["branchData"]["pullRequestNumber"] == str(PR)
    assert created["branchData"]["pullRequestStatus"] == "OPEN"
    assert created["commit"]["commitHash"] == project.branch_sha
    assert created["commit"]["timestamp"] == BRANCH_TIME
    assert created["baseDeploymentName"] == "prod"


def test_the_build_uploads_a_pex_with_both_packages_and_deploys_it_to_the_branch(
    runs: Runs, dagster_plus: DagsterPlusStandIn, project: Project, tmp_path: Path
) -> None:
    branch = dagster_plus.branches[(REPOSITORY, BRANCH)].name
    deployed = one(runs.opened, "CliDeployLocations")
    (location,) = deployed.variables["document"]["locations"]

    assert deployed.deployment == branch
    assert location["location_name"] == "example_project"
    assert location["code_source"] == {"module_name": "example_project"}
    assert location["git"]["commit_hash"] == project.branch_sha
    pex_files = location["pex_metadata"]["pex_tag"].removeprefix("files=").split(":")
    source = next(name for name in pex_files if name.startswith("source-"))
    (tmp_path / source).write_bytes(dagster_plus.uploads[source])
    with zipfile.ZipFile(tmp_path / source) as pex:
        names = set(pex.namelist())
    assert {"example_project/definitions.py", "dagster_branch/cleanup/job.py"} <= names


def test_merging_marks_the_same_branch_deployment_merged_then_launches_the_cleanup(
    runs: Runs, dagster_plus: DagsterPlusStandIn, cleanup_job: dg.JobDefinition, project: Project
) -> None:
    operations = [c.operation for c in runs.merged if c.operation != "MarkCliEventMutation"]
    assert operations == ["CliCreateOrUpdateBranchDeployment", "CliLaunchRun"]
    closed = one(runs.merged, "CliCreateOrUpdateBranchDeployment").variables
    assert (closed["branchData"]["repoName"], closed["branchData"]["branchName"]) == (
        REPOSITORY,
        BRANCH,
    )
    assert closed["branchData"]["pullRequestStatus"] == "MERGED"
    assert closed["branchData"]["pullRequestUrl"] == f"https://github.com/{REPOSITORY}/pull/{PR}"
    assert closed["commit"]["commitHash"] == project.branch_sha
    assert closed["commit"]["timestamp"] == BRANCH_TIME
    assert dagster_plus.branches[(REPOSITORY, BRANCH)].history == ["OPEN", "MERGED"]

    tags = cleanup_launched(runs.merged, f"pr_{PR}", cleanup_job)
    assert tags["dagster-branch/namespace"] == f"pr_{PR}"


def test_the_dagster_plus_source_then_sees_the_pr_merged(
    runs: Runs, dagster_plus: DagsterPlusStandIn
) -> None:
    source = DagsterPlusBranchDeployments(
        organization="hooli",
        api_token=TOKEN,
        url=f"{dagster_plus.url}/prod/graphql",
        repository=REPOSITORY,
    )

    state = source.state_of(Namespace.for_pull_request(str(PR)))

    assert state is not None and state.state is PullRequestStatus.MERGED


def test_a_push_to_main_runs_the_deploy_job_and_no_cleanup() -> None:
    workflow = yaml.safe_load(GITHUB_WORKFLOW.read_text())
    context = {
        "github": {"event_name": "push", "event": {}, "ref": "refs/heads/main"},
        "vars": {"DAGSTER_CLOUD_ORGANIZATION": "hooli"},
    }

    jobs = {block.name.split("/")[0] for block in github_blocks(workflow, context)}

    assert jobs == {"github:deploy"}


def test_forks_without_the_organization_variable_run_nothing() -> None:
    workflow = yaml.safe_load(GITHUB_WORKFLOW.read_text())
    context = {"github": {"event_name": "pull_request", "event": {"action": "opened"}}}

    assert list(github_blocks(workflow, context)) == []


def test_every_dagster_cloud_step_of_the_workflow_ran(runs: Runs) -> None:
    calling = {
        b.name
        for b in all_shell_blocks()
        if b.name.startswith("github:") and ("dagster-cloud" in b.shell)
    }

    assert calling, "the workflow has no dagster-cloud step?"
    assert calling <= set(runs.steps), calling - set(runs.steps)
