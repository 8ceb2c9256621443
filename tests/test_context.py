from datetime import datetime, timezone

import pytest

from dagster_branch import DagsterBranchConfigError, DeploymentContext, Namespace
from dagster_branch.context import DeploymentKind
from dagster_branch.pull_requests import PullRequestStatus

BRANCH_ENV = {
    "DAGSTER_CLOUD_DEPLOYMENT_NAME": "7d3f0c9b2a1e4f5d8c6b",
    "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "1",
    "DAGSTER_CLOUD_LOCATION_NAME": "analytics",
    "DAGSTER_CLOUD_PULL_REQUEST_ID": "1234",
    "DAGSTER_CLOUD_PULL_REQUEST_STATUS": "OPEN",
    "DAGSTER_CLOUD_GIT_SHA": "3f8a2b1c9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
    "DAGSTER_CLOUD_GIT_TIMESTAMP": "1724871941",
    "DAGSTER_CLOUD_GIT_AUTHOR_EMAIL": "ada@example.com",
    "DAGSTER_CLOUD_GIT_AUTHOR_NAME": "Ada Lovelace",
    "DAGSTER_CLOUD_GIT_MESSAGE": "Add orders model",
    "DAGSTER_CLOUD_GIT_BRANCH": "feature/orders",
    "DAGSTER_CLOUD_GIT_REPO": "acme/analytics",
    "DAGSTER_CLOUD_GIT_URL": "https://github.com/acme/analytics/tree/3f8a2b1c",
    "DAGSTER_CLOUD_RAW_GIT_URL": "https://github.com/acme/analytics",
}


def test_branch_deployment_reads_every_variable() -> None:
    ctx = DeploymentContext.from_env(BRANCH_ENV)
    assert ctx.kind is DeploymentKind.BRANCH
    assert ctx.is_branch_deployment and not ctx.is_production
    assert ctx.namespace == Namespace.parse("pr_1234")
    assert ctx.deployment_name == "7d3f0c9b2a1e4f5d8c6b"
    assert ctx.location_name == "analytics"
    assert ctx.pull_request_id == "1234"
    assert ctx.pull_request_status is PullRequestStatus.OPEN
    assert ctx.git_sha == "3f8a2b1c9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
    assert ctx.git_timestamp == datetime(2024, 8, 28, 19, 5, 41, tzinfo=timezone.utc)
    assert ctx.git_timestamp.tzinfo is not None
    assert ctx.git_author_email == "ada@example.com"
    assert ctx.git_author_name == "Ada Lovelace"
    assert ctx.git_message == "Add orders model"
    assert ctx.git_branch == "feature/orders"
    assert ctx.git_repo == "acme/analytics"
    assert ctx.git_url == "https://github.com/acme/analytics/tree/3f8a2b1c"
    assert ctx.raw_git_url == "https://github.com/acme/analytics"


def test_namespace_never_comes_from_the_generated_deployment_name() -> None:
    env = {**BRANCH_ENV}
    del env["DAGSTER_CLOUD_PULL_REQUEST_ID"]
    ctx = DeploymentContext.from_env(env)
    assert ctx.namespace == Namespace.for_branch("feature/orders")
    assert "7d3f0c9b" not in str(ctx.namespace)


def test_production_has_no_namespace() -> None:
    ctx = DeploymentContext.from_env({"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod"})
    assert ctx.kind is DeploymentKind.PRODUCTION
    assert ctx.namespace is None
    assert ctx.pull_request_id is None and ctx.git_timestamp is None


@pytest.mark.parametrize("flag", ["0", ""])
def test_0_or_empty_is_not_a_branch(flag: str) -> None:
    ctx = DeploymentContext.from_env(
        {"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod", "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": flag}
    )
    assert ctx.kind is DeploymentKind.PRODUCTION


@pytest.mark.parametrize("flag", ["true", "yes", "TRUE", "2", "1.0"])
def test_a_branch_flag_other_than_1_or_0_is_refused(flag: str) -> None:
    with pytest.raises(DagsterBranchConfigError) as info:
        DeploymentContext.from_env(
            {"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod", "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": flag}
        )
    assert f"DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT={flag!r} is not valid" in str(info.value)
    assert "only '1' marks a branch deployment" in str(info.value)


BRANCH_ONLY = {
    "DAGSTER_CLOUD_PULL_REQUEST_ID": "7",
    "DAGSTER_CLOUD_PULL_REQUEST_STATUS": "OPEN",
    "DAGSTER_CLOUD_GIT_BRANCH": "feature/orders",
}


@pytest.mark.parametrize("variable", sorted(BRANCH_ONLY))
@pytest.mark.parametrize("flag", [None, "0"])
@pytest.mark.parametrize("deployment_name", ["prod", None])
def test_a_branch_only_variable_without_the_flag_is_refused(
    variable: str, flag: str | None, deployment_name: str | None
) -> None:
    env = {variable: BRANCH_ONLY[variable], "USER": "alice"}
    if flag is not None:
        env["DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT"] = flag
    if deployment_name is not None:
        env["DAGSTER_CLOUD_DEPLOYMENT_NAME"] = deployment_name
    with pytest.raises(DagsterBranchConfigError) as info:
        DeploymentContext.from_env(env)
    message = str(info.value)
    assert message.startswith(f"{variable} is set but DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT is ")
    assert "set DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1" in message
    assert f"unset {variable}." in message


def test_every_branch_only_variable_is_named() -> None:
    with pytest.raises(DagsterBranchConfigError) as info:
        DeploymentContext.from_env({"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod", **BRANCH_ONLY})
    assert str(info.value).startswith(
        "DAGSTER_CLOUD_PULL_REQUEST_ID, DAGSTER_CLOUD_PULL_REQUEST_STATUS, "
        "DAGSTER_CLOUD_GIT_BRANCH are set but DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT is unset"
    )


def test_commit_metadata_alone_does_not_make_a_branch() -> None:
    commit = {k: v for k, v in BRANCH_ENV.items() if k.startswith("DAGSTER_CLOUD_GIT_")}
    del commit["DAGSTER_CLOUD_GIT_BRANCH"]
    ctx = DeploymentContext.from_env({"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod", **commit})
    assert ctx.kind is DeploymentKind.PRODUCTION and ctx.namespace is None
    assert ctx.git_sha == "3f8a2b1c9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"


def test_local_uses_the_developer() -> None:
    ctx = DeploymentContext.from_env({"USER": "alice"})
    assert ctx.kind is DeploymentKind.LOCAL
    assert ctx.namespace == Namespace.for_developer("alice")
    assert DeploymentContext.from_env({"DAGSTER_BRANCH_USER": "bob", "USER": "x"}).namespace == (
        Namespace.for_developer("bob")
    )


def test_forced_namespace_for_open_source_preview_environments() -> None:
    ctx = DeploymentContext.from_env(
        {"DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "1", "DAGSTER_BRANCH_NAMESPACE": "pr_77"}
    )
    assert ctx.namespace == Namespace.parse("pr_77")
    assert DeploymentContext.from_env({"DAGSTER_BRANCH_NAMESPACE": "pr_5"}).namespace == (
        Namespace.parse("pr_5")
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DAGSTER_CLOUD_PULL_REQUEST_ID", "0", "positive whole number"),
        ("DAGSTER_CLOUD_PULL_REQUEST_ID", "-1", "positive whole number"),
        ("DAGSTER_CLOUD_PULL_REQUEST_ID", "1e3", "positive whole number"),
        ("DAGSTER_CLOUD_PULL_REQUEST_ID", "42; DROP TABLE x", "positive whole number"),
        ("DAGSTER_CLOUD_GIT_TIMESTAMP", "2024-08-28T19:05:41Z", "Unix time in seconds"),
        ("DAGSTER_CLOUD_GIT_TIMESTAMP", "-5", "Unix time in seconds"),
        ("DAGSTER_CLOUD_PULL_REQUEST_STATUS", "DRAFT", "OPEN, CLOSED or MERGED"),
        ("DAGSTER_CLOUD_GIT_SHA", "not-a-sha", "hexadecimal"),
        ("DAGSTER_BRANCH_NAMESPACE", "analytics; drop", "not a dagster-branch namespace"),
    ],
)
def test_malformed_values_name_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(DagsterBranchConfigError) as info:
        DeploymentContext.from_env({**BRANCH_ENV, variable: value})
    assert variable in str(info.value)
    assert expected in str(info.value)


def test_branch_without_pr_or_branch_says_what_to_set() -> None:
    with pytest.raises(DagsterBranchConfigError, match="DAGSTER_BRANCH_NAMESPACE"):
        DeploymentContext.from_env({"DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "1"})


def test_forced_namespace_in_production_is_refused() -> None:
    with pytest.raises(DagsterBranchConfigError, match="production"):
        DeploymentContext.from_env(
            {"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod", "DAGSTER_BRANCH_NAMESPACE": "pr_1"}
        )


def test_status_is_case_insensitive_and_absent_values_are_none() -> None:
    ctx = DeploymentContext.from_env({**BRANCH_ENV, "DAGSTER_CLOUD_PULL_REQUEST_STATUS": "merged"})
    assert ctx.pull_request_status is PullRequestStatus.MERGED
    bare = DeploymentContext.from_env({"DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "1",
                                       "DAGSTER_CLOUD_PULL_REQUEST_ID": "3"})  # fmt: skip
    assert bare.git_sha is None and bare.git_repo is None and bare.pull_request_status is None


def test_context_is_frozen() -> None:
    ctx = DeploymentContext.from_env(BRANCH_ENV)
    with pytest.raises(ValueError):
        ctx.kind = DeploymentKind.PRODUCTION  # type: ignore[misc]
