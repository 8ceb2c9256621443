"""Switching a test between deployments the way Dagster+ does: with environment variables.

``dagster_branch.testing.deployment_env`` does the same for a ``with`` block; the ``deploy``
fixture switches for the rest of the test (pytest's ``monkeypatch`` restores the environment),
which is what tests that write from several deployments in turn need.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from dagster_branch.context import DeploymentContext
from dagster_branch.testing import DEPLOYMENT_VARIABLE_PREFIXES, deployment_variables

Deploy = Callable[..., DeploymentContext]
"""``deploy(kind, *, pr=…, branch=…, user=…, …)``: see :func:`deploy`."""

# What the ledger records of a branch deployment of pull request N: deployment 5f2c0a9e1b7dN.
BRANCH_DEPLOYMENT_PREFIX = "5f2c0a9e1b7d"
BRANCH_GIT_SHA = "a1b2c3d4e5f6"


def set_deployment_variables(monkeypatch: pytest.MonkeyPatch, variables: Mapping[str, str]) -> None:
    """Unset every Dagster+ deployment variable, then set ``variables`` (even a half-set
    environment, which no real deployment has)."""
    for name in list(os.environ):
        if name.startswith(DEPLOYMENT_VARIABLE_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def deploy(monkeypatch: pytest.MonkeyPatch) -> Deploy:
    """Switch the environment to a deployment and return the context resources will see.

    ``deploy("production")``, ``deploy("branch", pr=7)``, ``deploy("branch", branch="x")``,
    ``deploy("local")`` (developer ``alice``) or ``deploy("local", user="bob")``; any other
    keyword of ``deployment_variables`` (``location=``, ``status=``, …) is passed on. A pull
    request's branch deployment is named ``5f2c0a9e1b7d<pr>`` and deploys commit
    ``a1b2c3d4e5f6``, so that tests can recognise both in the ledger.
    """

    def switch(kind: str, *, pr: int | None = None, **described: Any) -> DeploymentContext:
        if kind == "branch" and pr is not None:
            described.setdefault("deployment_name", f"{BRANCH_DEPLOYMENT_PREFIX}{pr}")
            described.setdefault("git_sha", BRANCH_GIT_SHA)
        if kind == "local":
            described.setdefault("user", "alice")
        set_deployment_variables(monkeypatch, deployment_variables(kind, pr=pr, **described))  # type: ignore[arg-type]
        return DeploymentContext.from_env()

    return switch
