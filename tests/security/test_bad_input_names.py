"""Bad input catalogue, part 1: branch names and PR ids, from the environment to backend names.

Every hostile or odd value either becomes a safe name (only ``[a-z0-9_]`` in the namespace key,
valid for every backend, no path traversal) or is rejected with an error that names the variable
and says what is expected. docs/safety.md lists the same catalogue.
"""

from __future__ import annotations

import re

import pytest

from dagster_branch import DagsterBranchConfigError, DeploymentContext
from dagster_branch.errors import DagsterBranchNamingError
from dagster_branch.naming import (
    Namespace,
    bucket_name,
    key_prefix,
    namespace_of_bucket,
    namespace_of_key,
    namespace_of_schema,
    schema_name,
    validate_bucket_name,
)

BAD_BRANCH_NAMES = {
    "double quotes": 'feat/"quoted"',
    "single quote": "o'brien/fix",
    "semicolon and statement": "a;DROP TABLE orders;",
    "SQL line comment": "fix -- comment",
    "SQL block comment": "/* hi */ fix",
    "SQL injection classic": "Robert'); DROP SCHEMA analytics CASCADE;--",
    "dot dot": "..",
    "path traversal": "../../etc/passwd",
    "slashes": "feature/a/b",
    "backslashes": "feature\\a\\b",
    "unicode letters": "fünf-änderungen",
    "no ASCII at all": "分支",
    "emoji": "🚀🔥",
    "NUL and control chars": "fix\x00\x1b[31m",
    "newline": "line1\nline2",
    "1000 characters": "a" * 1000,
    "1000 emoji": "🚀" * 1000,
    "production schema name": "analytics",
    "reserved bucket prefix": "xn--",
    "looks like a namespace": "pr_42",
}

SAFE_KEY = re.compile(r"br_[a-z0-9]+(?:_[a-z0-9]+)*_[0-9a-f]{16}")
BRANCH_ENV = {
    "DAGSTER_CLOUD_DEPLOYMENT_NAME": "5f2c0a9e1b7d4c3a",
    "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "1",
}


@pytest.mark.parametrize("branch", BAD_BRANCH_NAMES.values(), ids=BAD_BRANCH_NAMES.keys())
def test_hostile_branch_names_become_safe_names_everywhere(branch: str) -> None:
    context = DeploymentContext.from_env({**BRANCH_ENV, "DAGSTER_CLOUD_GIT_BRANCH": branch})
    namespace = context.namespace
    assert namespace is not None and SAFE_KEY.fullmatch(namespace.key)

    schema = schema_name("analytics", namespace)
    assert re.fullmatch(r"[a-z0-9_]+", schema) and len(schema.encode()) <= 63
    assert schema != "analytics"
    assert namespace_of_schema(schema, "analytics") == namespace

    bucket = bucket_name("acme-data", namespace)
    assert validate_bucket_name(bucket) == bucket
    assert namespace_of_bucket(bucket, "acme-data") == namespace

    prefix = key_prefix("exports", namespace)
    assert prefix.startswith(f"_branches/{namespace.key}/") and prefix.endswith("/")
    assert ".." not in prefix.split("/") and "\\" not in prefix
    assert namespace_of_key(prefix + "x.parquet") == namespace


def test_hostile_branch_names_that_slugify_alike_stay_apart() -> None:
    namespaces = {Namespace.for_branch(b) for b in BAD_BRANCH_NAMES.values()}
    assert len(namespaces) == len(BAD_BRANCH_NAMES)
    # Three names with no usable ASCII fold to the same slug and differ by their hash only.
    assert len({Namespace.for_branch(b) for b in ("分支", "🚀🔥", "..")}) == 3


@pytest.mark.parametrize("branch", ["", "   ", "\t\n"])
def test_empty_branch_name_is_a_clear_error(branch: str) -> None:
    with pytest.raises(DagsterBranchNamingError, match="branch name is empty"):
        Namespace.for_branch(branch)
    # In the environment an empty variable counts as unset, so the deployment has no key.
    with pytest.raises(DagsterBranchConfigError, match="DAGSTER_CLOUD_GIT_BRANCH"):
        DeploymentContext.from_env({**BRANCH_ENV, "DAGSTER_CLOUD_GIT_BRANCH": branch})


BAD_PR_IDS = [
    "0",
    "-1",
    "1e3",
    "42; DROP",
    "42 OR 1=1",
    "0x2a",
    "042",
    "4.2",
    "\uff11\uff12",  # full-width digits
    "٤٢",
    "9" * 13,
]


@pytest.mark.parametrize("pull_request_id", BAD_PR_IDS)
def test_malformed_pull_request_ids_are_rejected_naming_the_variable(
    pull_request_id: str,
) -> None:
    with pytest.raises(DagsterBranchConfigError) as info:
        DeploymentContext.from_env({**BRANCH_ENV, "DAGSTER_CLOUD_PULL_REQUEST_ID": pull_request_id})
    message = str(info.value)
    assert "DAGSTER_CLOUD_PULL_REQUEST_ID" in message and "positive whole number" in message
    with pytest.raises(DagsterBranchNamingError, match="positive whole number"):
        Namespace.for_pull_request(pull_request_id)


@pytest.mark.parametrize(
    "key",
    [
        "pr_0",
        "pr_-1",
        "pr_1e3",
        "pr_42; DROP",
        "PR_42",
        "pr__42",
        "analytics",
        "",
        "pr_42 ",
        "../pr_42",
    ],
)
def test_malformed_namespace_keys_are_rejected_everywhere_they_enter(key: str) -> None:
    assert Namespace.try_parse(key) is None
    with pytest.raises(DagsterBranchNamingError):
        Namespace.parse(key)
    if key.strip() == key and key:  # the environment strips surrounding spaces
        env = {**BRANCH_ENV, "DAGSTER_BRANCH_NAMESPACE": key}
        with pytest.raises(DagsterBranchConfigError, match="DAGSTER_BRANCH_NAMESPACE"):
            DeploymentContext.from_env(env)


def test_a_forced_namespace_is_refused_in_production() -> None:
    env = {"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod", "DAGSTER_BRANCH_NAMESPACE": "pr_42"}
    with pytest.raises(DagsterBranchConfigError, match="production"):
        DeploymentContext.from_env(env)


def test_error_messages_truncate_huge_hostile_values() -> None:
    hostile = "1; DROP SCHEMA analytics CASCADE; " * 100
    with pytest.raises(DagsterBranchConfigError) as info:
        DeploymentContext.from_env({**BRANCH_ENV, "DAGSTER_CLOUD_PULL_REQUEST_ID": hostile})
    assert len(str(info.value)) < 300


def test_a_production_schema_is_never_a_branch_schema() -> None:
    for base in ("analytics", "analytics__pr_42", "pr_42"):
        assert namespace_of_schema(base, base) is None
    # A schema that merely looks like a branch schema of another base is not claimed.
    assert namespace_of_schema("sales__pr_42", "analytics") is None
    # Names shortened with a hash parse back only when rebuilt identically.
    long_base = "b" * 80
    ns = Namespace.for_pull_request(7)
    assert namespace_of_schema(schema_name(long_base, ns), long_base) == ns
    assert namespace_of_schema(schema_name(long_base, ns), "b" * 79) is None
