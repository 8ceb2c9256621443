"""The GitLab pipeline, run with the real dagster-cloud CLI against a Dagster+ stand-in.

Merge request !17's life, in the order GitLab runs it: the merge request pipeline
(``deploy_branch``), the environment's stop job when the MR is merged (``close_branch``, with no
checkout), then the main pipeline (``deploy_production``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_branch import DagsterPlusBranchDeployments
from dagster_branch.errors import DagsterBranchConfigError
from dagster_branch.naming import Namespace
from dagster_branch.pull_requests import PullRequestStatus
from tests.ci.conftest import BRANCH, BRANCH_TIME, MAIN_TIME, Project
from tests.ci.dagster_plus_standin import TOKEN, Call, DagsterPlusStandIn
from tests.ci.expect import cleanup_launched, one
from tests.ci.templates import (
    GITLAB_PIPELINE,
    all_shell_blocks,
    base_environment,
    git,
    run_gitlab,
)

PROJECT_NAME = "shop"  # what Dagster+ records as the repository on GitLab
PROJECT_PATH = "acme/data/shop"
IID = 17


@dataclass(frozen=True)
class Runs:
    """What reached the stand-in during each job, and the jobs that ran."""

    project: Project
    dagster_plus: DagsterPlusStandIn
    branch: list[Call]
    closed: list[Call]
    production: list[Call]
    jobs: list[str]


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def play(project: Project, dagster_plus: DagsterPlusStandIn, temp: Path) -> Runs:
    """MR !17's pipeline, its stop job when merged, then the main pipeline, as GitLab runs them."""
    jobs: list[str] = []
    seen = 0
    url = f"https://gitlab.example.com/{PROJECT_PATH}"
    common = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PROJECT_NAME": PROJECT_NAME,
        "CI_PROJECT_PATH": PROJECT_PATH,
        "CI_PROJECT_URL": url,
        "CI_JOB_URL": f"{url}/-/jobs/1",
        "CI_PIPELINE_URL": f"{url}/-/pipelines/1",
    }
    merge_request = {
        **common,
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_COMMIT_REF_NAME": BRANCH,
        "CI_COMMIT_SHA": project.branch_sha,
        "CI_COMMIT_TIMESTAMP": _iso(BRANCH_TIME),
        "CI_MERGE_REQUEST_IID": str(IID),
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": BRANCH,
    }
    main = {
        **common,
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_BRANCH": "main",
        "CI_COMMIT_REF_NAME": "main",
        "CI_COMMIT_SHA": project.main_sha,
        "CI_COMMIT_TIMESTAMP": _iso(MAIN_TIME),
    }
    settings = {  # Settings > CI/CD > Variables
        "DAGSTER_CLOUD_ORGANIZATION": "hooli",
        "DAGSTER_CLOUD_API_TOKEN": TOKEN,
        "DAGSTER_CLOUD_URL": dagster_plus.url,
    }

    def run(job: str, predefined: dict[str, str]) -> list[Call]:
        nonlocal seen
        home = temp / f"home-{len(jobs)}"
        home.mkdir()
        git_checkout = ["checkout", "--quiet", "--detach", predefined["CI_COMMIT_SHA"]]
        git(project.path, *git_checkout)  # GitLab checks out the pipeline's commit, detached
        run_gitlab(
            job,
            checkout=project.path,
            base_env=base_environment(home),
            predefined=predefined,
            project_variables=settings,
            log=jobs,
        )
        calls, seen = dagster_plus.calls[seen:], len(dagster_plus.calls)
        return calls

    return Runs(
        project,
        dagster_plus,
        run("deploy_branch", merge_request),
        run("close_branch", merge_request),
        run("deploy_production", main),
        jobs,
    )


def test_the_mr_pipeline_creates_the_branch_deployment_with_the_mrs_git_facts(
    runs: Runs, dagster_plus: DagsterPlusStandIn, project: Project
) -> None:
    created = one(runs.branch, "CliCreateOrUpdateBranchDeployment").variables

    assert created["branchData"]["repoName"] == PROJECT_NAME
    assert created["branchData"]["branchName"] == BRANCH
    assert created["branchData"]["pullRequestNumber"] == str(IID)
    assert created["branchData"]["pullRequestStatus"] == "OPEN"
    assert created["commit"]["commitHash"] == project.branch_sha
    assert created["commit"]["timestamp"] == BRANCH_TIME
    deployed = one(runs.branch, "CliDeployLocations")
    assert deployed.deployment == dagster_plus.branches[(PROJECT_NAME, BRANCH)].name
    assert deployed.variables["document"]["locations"][0]["location_name"] == "example_project"


def test_the_stop_job_marks_the_same_branch_deployment_closed_then_launches_the_cleanup(
    runs: Runs, dagster_plus: DagsterPlusStandIn, cleanup_job: dg.JobDefinition, project: Project
) -> None:
    operations = [c.operation for c in runs.closed if c.operation != "MarkCliEventMutation"]
    assert operations == ["CliCreateOrUpdateBranchDeployment", "CliLaunchRun"]
    closed = one(runs.closed, "CliCreateOrUpdateBranchDeployment").variables
    assert closed["branchData"]["repoName"] == PROJECT_NAME
    assert closed["branchData"]["branchName"] == BRANCH
    assert closed["branchData"]["pullRequestNumber"] == str(IID)
    assert closed["branchData"]["pullRequestStatus"] == "CLOSED"
    assert closed["commit"]["commitHash"] == project.branch_sha
    assert closed["commit"]["timestamp"] == BRANCH_TIME
    assert dagster_plus.branches[(PROJECT_NAME, BRANCH)].history == ["OPEN", "CLOSED"]

    tags = cleanup_launched(runs.closed, f"pr_{IID}", cleanup_job)
    assert tags["dagster-branch/trigger"] == "gitlab-close"


def test_the_dagster_plus_source_sees_the_mr_closed_under_the_bare_project_name(
    runs: Runs, dagster_plus: DagsterPlusStandIn
) -> None:
    endpoint = f"{dagster_plus.url}/prod/graphql"
    source = DagsterPlusBranchDeployments(
        organization="hooli", api_token=TOKEN, url=endpoint, repository=PROJECT_NAME
    )

    state = source.state_of(Namespace.for_pull_request(str(IID)))

    assert state is not None and state.state is PullRequestStatus.CLOSED


def test_the_dagster_plus_source_refuses_a_gitlab_path_dagster_plus_never_records(
    runs: Runs, dagster_plus: DagsterPlusStandIn
) -> None:
    endpoint = f"{dagster_plus.url}/prod/graphql"
    source = DagsterPlusBranchDeployments(
        organization="hooli", api_token=TOKEN, url=endpoint, repository=PROJECT_PATH
    )

    with pytest.raises(DagsterBranchConfigError, match=r"repository='shop'"):
        source.state_of(Namespace.for_pull_request(str(IID)))


def test_the_main_pipeline_deploys_production_and_no_branch_deployment(runs: Runs) -> None:
    deployed = one(runs.production, "CliDeployLocations")

    assert deployed.deployment == "prod"
    assert not [c for c in runs.production if c.operation == "CliCreateOrUpdateBranchDeployment"]


def test_the_stop_job_belongs_to_the_branch_environment() -> None:
    pipeline = yaml.safe_load(GITLAB_PIPELINE.read_text())

    assert pipeline["deploy_branch"]["environment"]["on_stop"] == "close_branch"
    assert pipeline["close_branch"]["environment"]["action"] == "stop"
    assert (
        pipeline["close_branch"]["environment"]["name"]
        == (pipeline["deploy_branch"]["environment"]["name"])
    )


def test_every_dagster_cloud_job_of_the_pipeline_ran(runs: Runs) -> None:
    calling = {
        b.name
        for b in all_shell_blocks()
        if b.name.startswith("gitlab:") and "dagster-cloud" in b.shell
    }

    assert calling, "the pipeline has no dagster-cloud job?"
    assert calling <= set(runs.jobs), calling - set(runs.jobs)
