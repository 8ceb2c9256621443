"""``dagster_branch.testing.deployment_env``: the environment Dagster+ gives each deployment."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dagster_branch import DagsterBranchConfigError, DeploymentContext, Namespace
from dagster_branch.context import DeploymentKind
from dagster_branch.testing import deployment_env

ROOT = Path(__file__).resolve().parents[1]


def test_each_kind_resolves_to_its_deployment_and_namespace() -> None:
    with deployment_env("branch", pr=42, location="data", repository="acme/data"):
        branch = DeploymentContext.from_env()
    assert (branch.kind, str(branch.namespace)) == (DeploymentKind.BRANCH, "pr_42")
    assert (branch.location_name, branch.git_repo, branch.git_branch) == (
        "data",
        "acme/data",
        "feature/pr-42",
    )
    with deployment_env("branch", branch="feature/orders-v2"):
        assert DeploymentContext.from_env().namespace == Namespace.for_branch("feature/orders-v2")
    with deployment_env("production"):
        assert DeploymentContext.from_env().kind is DeploymentKind.PRODUCTION
    with deployment_env("local", user="alice"):
        local = DeploymentContext.from_env()
    assert local.kind is DeploymentKind.LOCAL
    assert str(local.namespace).startswith("dev_alice_")


def test_the_machines_variables_are_hidden_and_everything_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_PULL_REQUEST_ID", "9")  # a leftover of the machine's own
    monkeypatch.setenv("UNRELATED", "kept")
    before = dict(os.environ)
    with pytest.raises(RuntimeError), deployment_env("production", extra={"WAREHOUSE_URL": "x"}):
        assert "DAGSTER_CLOUD_PULL_REQUEST_ID" not in os.environ
        assert os.environ["WAREHOUSE_URL"] == "x" and os.environ["UNRELATED"] == "kept"
        assert DeploymentContext.from_env().kind is DeploymentKind.PRODUCTION
        raise RuntimeError("the block fails")
    assert dict(os.environ) == before


def test_combinations_dagster_plus_never_sets_are_refused() -> None:
    with pytest.raises(DagsterBranchConfigError, match="needs pr=… or branch="):
        deployment_env("branch").__enter__()
    with pytest.raises(DagsterBranchConfigError, match="takes no pr, branch or status"):
        deployment_env("production", pr=7).__enter__()


def test_the_getting_started_example_passes(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "getting-started.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "deployment_env" in b]
    namespace: dict[str, object] = {}
    exec(block, namespace)
    test = namespace["test_a_pull_request_writes_into_its_own_schema"]
    test(tmp_path)  # type: ignore[operator]
    assert (tmp_path / "warehouse.duckdb").exists()
