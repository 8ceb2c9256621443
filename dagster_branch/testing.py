"""Test your branch-aware assets as each deployment would run them.

Dagster+ tells a code location which deployment it is only through ``DAGSTER_CLOUD_*``
environment variables, which dagster-branch reads when a resource is set up. To test what your
assets write in production and in a pull request's branch deployment, run them inside
:func:`deployment_env`: it sets the variables Dagster+ would set, unsets every other one (so the
machine running the tests never leaks into them), and restores the environment afterwards.

Example::

    from dagster_branch import BranchDatabaseResource
    from dagster_branch.testing import deployment_env

    def test_a_branch_writes_into_its_own_schema(tmp_path):
        url = f"duckdb:///{tmp_path}/warehouse.duckdb"
        with deployment_env("branch", pr=42):
            warehouse = BranchDatabaseResource(url=url, base_schema="analytics")
            assert warehouse.target_schema == "analytics__pr_42"
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from typing import Literal

from dagster_branch.context import (
    DEPLOYMENT_NAME,
    DEVELOPER,
    GIT_BRANCH,
    GIT_REPO,
    GIT_SHA,
    IS_BRANCH,
    LOCATION_NAME,
    PULL_REQUEST_ID,
    PULL_REQUEST_STATUS,
)
from dagster_branch.errors import DagsterBranchConfigError

__all__ = ["DEPLOYMENT_VARIABLE_PREFIXES", "deployment_env", "deployment_variables"]

DEPLOYMENT_VARIABLE_PREFIXES = ("DAGSTER_CLOUD_", "DAGSTER_BRANCH_")
"""The variables that decide the deployment: :func:`deployment_env` unsets all others."""

Kind = Literal["production", "branch", "local"]


def deployment_variables(
    kind: Kind,
    *,
    pr: int | str | None = None,
    branch: str | None = None,
    status: str | None = None,
    location: str | None = None,
    repository: str | None = None,
    deployment_name: str | None = None,
    git_sha: str | None = None,
    user: str | None = None,
) -> dict[str, str]:
    """The variables Dagster+ sets for a deployment of ``kind`` (see :func:`deployment_env`)."""
    variables: dict[str, str] = {}
    if kind == "production":
        if pr is not None or branch is not None or status is not None:
            raise DagsterBranchConfigError(
                "deployment_env('production') takes no pr, branch or status: Dagster+ sets them "
                "in branch deployments only."
            )
        variables[DEPLOYMENT_NAME] = deployment_name or "prod"
    elif kind == "branch":
        if pr is None and branch is None:
            raise DagsterBranchConfigError(
                "deployment_env('branch') needs pr=… or branch=…: a branch deployment is made "
                "for a pull request or a branch."
            )
        # Dagster+ names a branch deployment with an opaque id; derive a stable one.
        opaque = hashlib.sha1(f"{pr}:{branch}".encode()).hexdigest()[:12]  # noqa: S324 (an id)
        variables[DEPLOYMENT_NAME] = deployment_name or opaque
        variables[IS_BRANCH] = "1"
        variables[GIT_BRANCH] = branch or f"feature/pr-{pr}"
        if pr is not None:
            variables[PULL_REQUEST_ID] = str(pr)
            variables[PULL_REQUEST_STATUS] = status or "OPEN"
    elif kind == "local":
        if user is not None:
            variables[DEVELOPER] = user
    else:
        raise DagsterBranchConfigError(
            f"deployment_env kind {kind!r} is not one of 'production', 'branch', 'local'."
        )
    optional = {LOCATION_NAME: location, GIT_REPO: repository, GIT_SHA: git_sha}
    if kind != "local":
        variables.update({name: value for name, value in optional.items() if value is not None})
    return variables


@contextlib.contextmanager
def deployment_env(
    kind: Kind,
    *,
    pr: int | str | None = None,
    branch: str | None = None,
    status: str | None = None,
    location: str | None = None,
    repository: str | None = None,
    deployment_name: str | None = None,
    git_sha: str | None = None,
    user: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> Iterator[dict[str, str]]:
    """Run the block in the environment Dagster+ gives a deployment of ``kind``.

    Every ``DAGSTER_CLOUD_*`` and ``DAGSTER_BRANCH_*`` variable is unset first, and the whole
    environment is restored when the block ends, whatever happens in it. Resources resolve the
    deployment when they are set up, so create (or set up) them inside the block.

    Args:
        kind: ``"production"`` (the full deployment), ``"branch"`` (a branch deployment) or
            ``"local"`` (``dagster dev`` on a laptop, with no Dagster+ variable).
        pr: the pull request of a branch deployment (``DAGSTER_CLOUD_PULL_REQUEST_ID``).
        branch: its git branch (default: ``feature/pr-<pr>``).
        status: the pull request's status (default ``OPEN`` when ``pr`` is given).
        location: the code location's name (``DAGSTER_CLOUD_LOCATION_NAME``).
        repository: ``owner/name`` of the git repository (``DAGSTER_CLOUD_GIT_REPO``).
        deployment_name: the deployment's name (default ``prod``, or an opaque id for a branch).
        git_sha: the commit being deployed.
        user: for ``"local"``, the developer whose namespace ``dev_<user>`` is used.
        extra: more variables to set, such as your own configuration (set last).

    Yields:
        The variables set, ``extra`` included.

    Raises:
        DagsterBranchConfigError: a combination Dagster+ never sets (a production deployment
            with a pull request, a branch deployment with neither ``pr`` nor ``branch``).

    Example::

        with deployment_env("branch", branch="feature/orders-v2", location="data"):
            result = dg.materialize([orders], resources={"warehouse": warehouse})
    """
    variables = deployment_variables(
        kind,
        pr=pr,
        branch=branch,
        status=status,
        location=location,
        repository=repository,
        deployment_name=deployment_name,
        git_sha=git_sha,
        user=user,
    ) | dict(extra or {})
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.startswith(DEPLOYMENT_VARIABLE_PREFIXES):
                del os.environ[name]
        os.environ.update(variables)
        yield variables
    finally:
        os.environ.clear()
        os.environ.update(saved)
