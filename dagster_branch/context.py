"""The deployment a piece of code runs in, read from the environment Dagster+ sets.

Dagster+ injects ``DAGSTER_CLOUD_*`` variables into every code location; teams on open-source
Dagster with their own preview environments set the same variables themselves. This module turns
them into a typed, validated :class:`DeploymentContext` once, so that every resource routes from
the same facts.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict

from dagster_branch.errors import DagsterBranchConfigError, DagsterBranchNamingError
from dagster_branch.naming import Namespace
from dagster_branch.pull_requests import PullRequestStatus

__all__ = ["DeploymentContext", "DeploymentKind"]

IS_BRANCH = "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT"
DEPLOYMENT_NAME = "DAGSTER_CLOUD_DEPLOYMENT_NAME"
LOCATION_NAME = "DAGSTER_CLOUD_LOCATION_NAME"
PULL_REQUEST_ID = "DAGSTER_CLOUD_PULL_REQUEST_ID"
PULL_REQUEST_STATUS = "DAGSTER_CLOUD_PULL_REQUEST_STATUS"
GIT_SHA = "DAGSTER_CLOUD_GIT_SHA"
GIT_TIMESTAMP = "DAGSTER_CLOUD_GIT_TIMESTAMP"
GIT_AUTHOR_EMAIL = "DAGSTER_CLOUD_GIT_AUTHOR_EMAIL"
GIT_AUTHOR_NAME = "DAGSTER_CLOUD_GIT_AUTHOR_NAME"
GIT_MESSAGE = "DAGSTER_CLOUD_GIT_MESSAGE"
GIT_BRANCH = "DAGSTER_CLOUD_GIT_BRANCH"
GIT_REPO = "DAGSTER_CLOUD_GIT_REPO"
GIT_URL = "DAGSTER_CLOUD_GIT_URL"
RAW_GIT_URL = "DAGSTER_CLOUD_RAW_GIT_URL"
FORCED_NAMESPACE = "DAGSTER_BRANCH_NAMESPACE"
DEVELOPER = "DAGSTER_BRANCH_USER"

BRANCH_ONLY = (PULL_REQUEST_ID, PULL_REQUEST_STATUS, GIT_BRANCH)
"""Variables that name a pull request or a branch: Dagster+ sets them in branch deployments only,
and they choose the namespace. Seen without ``DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1`` they mean a
half-set branch environment, never production. The commit metadata (``GIT_SHA``, author,
message, timestamp, repository, URLs) is not on this list: it describes a commit, which a
production build may carry too, and it never decides where data goes."""


class DeploymentKind(str, Enum):
    """Where code runs: the production (full) deployment, a branch deployment, or locally."""

    PRODUCTION = "production"
    BRANCH = "branch"
    LOCAL = "local"


class DeploymentContext(BaseModel):
    """The resolved deployment: which kind it is, its git metadata, and its namespace.

    Example::

        >>> ctx = DeploymentContext.from_env({
        ...     "DAGSTER_CLOUD_DEPLOYMENT_NAME": "5f2c0a9e1b7d",
        ...     "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "1",
        ...     "DAGSTER_CLOUD_PULL_REQUEST_ID": "42",
        ... })
        >>> ctx.kind.value, str(ctx.namespace)
        ('branch', 'pr_42')
    """

    model_config = ConfigDict(frozen=True)

    kind: DeploymentKind
    namespace: Namespace | None = None
    deployment_name: str | None = None
    location_name: str | None = None
    pull_request_id: str | None = None
    pull_request_status: PullRequestStatus | None = None
    git_branch: str | None = None
    git_sha: str | None = None
    git_timestamp: datetime | None = None
    git_author_name: str | None = None
    git_author_email: str | None = None
    git_message: str | None = None
    git_repo: str | None = None
    git_url: str | None = None
    raw_git_url: str | None = None

    @property
    def is_branch_deployment(self) -> bool:
        """True in a Dagster+ branch deployment (``DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1``)."""
        return self.kind is DeploymentKind.BRANCH

    @property
    def is_production(self) -> bool:
        """True in the production (full) deployment, the only one that may touch production."""
        return self.kind is DeploymentKind.PRODUCTION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeploymentContext:
        """Read the context from ``env`` (default: ``os.environ``).

        Only ``DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1`` makes a branch deployment; an environment
        that is half a branch deployment is refused rather than run as production.

        Raises:
            DagsterBranchConfigError: a variable is present but malformed, the branch flag is
                neither ``1`` nor ``0``, or a branch-only variable (:data:`BRANCH_ONLY`) is set
                without the flag; the message names the variables and the fix.
        """
        source: Mapping[str, str] = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = source.get(name)
            return value.strip() if value is not None and value.strip() else None

        deployment_name = get(DEPLOYMENT_NAME)
        _refuse_half_set_branch(get(IS_BRANCH), [name for name in BRANCH_ONLY if get(name)])
        if get(IS_BRANCH) == "1":
            kind = DeploymentKind.BRANCH
        elif deployment_name is not None:
            kind = DeploymentKind.PRODUCTION
        else:
            kind = DeploymentKind.LOCAL

        pull_request_id = _pull_request_id(get(PULL_REQUEST_ID))
        git_branch = get(GIT_BRANCH)
        namespace = _namespace(
            kind,
            forced=get(FORCED_NAMESPACE),
            pull_request_id=pull_request_id,
            git_branch=git_branch,
            developer=get(DEVELOPER) or _local_user(source, use_os=env is None),
        )
        return cls(
            kind=kind,
            namespace=namespace,
            deployment_name=deployment_name,
            location_name=get(LOCATION_NAME),
            pull_request_id=pull_request_id,
            pull_request_status=_status(get(PULL_REQUEST_STATUS)),
            git_branch=git_branch,
            git_sha=_sha(get(GIT_SHA)),
            git_timestamp=_timestamp(get(GIT_TIMESTAMP)),
            git_author_name=get(GIT_AUTHOR_NAME),
            git_author_email=get(GIT_AUTHOR_EMAIL),
            git_message=get(GIT_MESSAGE),
            git_repo=get(GIT_REPO),
            git_url=get(GIT_URL),
            raw_git_url=get(RAW_GIT_URL),
        )

    def describe(self) -> dict[str, str | None]:
        """A flat, printable summary (used by the CLI and in run metadata)."""
        return {
            "kind": self.kind.value,
            "namespace": str(self.namespace) if self.namespace else None,
            "deployment_name": self.deployment_name,
            "location_name": self.location_name,
            "pull_request_id": self.pull_request_id,
            "pull_request_status": (
                self.pull_request_status.value if self.pull_request_status else None
            ),
            "git_branch": self.git_branch,
            "git_sha": self.git_sha,
            "git_timestamp": self.git_timestamp.isoformat() if self.git_timestamp else None,
            "git_repo": self.git_repo,
        }


def _refuse_half_set_branch(flag: str | None, branch_only: list[str]) -> None:
    """Fail closed on an environment that is half a branch deployment (never fall back to
    production): a flag other than ``1``/``0``, or branch-only variables without the flag."""
    if flag is not None and flag not in ("0", "1"):
        raise DagsterBranchConfigError(
            f"{IS_BRANCH}={flag[:20]!r} is not valid: only '1' marks a branch deployment (what "
            f"Dagster+ sets). Set {IS_BRANCH}=1 in a branch or preview deployment; unset it, or "
            "set '0', in production."
        )
    if flag != "1" and branch_only:
        state = "unset" if flag is None else f"{flag!r}"
        raise DagsterBranchConfigError(
            f"{', '.join(branch_only)} {'is' if len(branch_only) == 1 else 'are'} set but "
            f"{IS_BRANCH} is {state}: only branch deployments carry them, so this environment is "
            "half a branch deployment, refused rather than guessed (production is never the "
            f"fallback). In a branch or preview deployment set {IS_BRANCH}=1 (or set "
            f"{FORCED_NAMESPACE} instead of them); in production or local development unset "
            f"{', '.join(branch_only)}."
        )


def _pull_request_id(value: str | None) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[1-9][0-9]{0,11}", value):
        raise DagsterBranchConfigError.for_variable(
            PULL_REQUEST_ID, value, "the pull request number as a positive whole number, e.g. '42'"
        )
    return value


def _status(value: str | None) -> PullRequestStatus | None:
    if value is None:
        return None
    try:
        return PullRequestStatus(value.lower())
    except ValueError:
        raise DagsterBranchConfigError.for_variable(
            PULL_REQUEST_STATUS, value, "one of OPEN, CLOSED or MERGED"
        ) from None


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,12}(\.[0-9]+)?", value):
        raise DagsterBranchConfigError.for_variable(
            GIT_TIMESTAMP, value, "Unix time in seconds, e.g. '1724871941'"
        )
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


def _sha(value: str | None) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{4,64}", value):
        raise DagsterBranchConfigError.for_variable(
            GIT_SHA, value, "a hexadecimal git commit id, e.g. 'a1b2c3d4'"
        )
    return value.lower()


def _local_user(env: Mapping[str, str], *, use_os: bool) -> str:
    for name in ("USER", "USERNAME", "LOGNAME"):
        if env.get(name, "").strip():
            return env[name].strip()
    if use_os:
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            pass
    return "local"


def _namespace(
    kind: DeploymentKind,
    *,
    forced: str | None,
    pull_request_id: str | None,
    git_branch: str | None,
    developer: str,
) -> Namespace | None:
    if forced is not None:
        if kind is DeploymentKind.PRODUCTION:
            raise DagsterBranchConfigError(
                f"{FORCED_NAMESPACE} is set in the production deployment, which has no "
                f"namespace: unset it there, or set {IS_BRANCH}=1 if this is a preview deployment."
            )
        try:
            return Namespace.parse(forced)
        except DagsterBranchNamingError as exc:
            raise DagsterBranchConfigError(f"{FORCED_NAMESPACE}: {exc}") from None
    if kind is DeploymentKind.PRODUCTION:
        return None
    if kind is DeploymentKind.BRANCH:
        if pull_request_id is not None:
            return Namespace.for_pull_request(pull_request_id)
        if git_branch is not None:
            return Namespace.for_branch(git_branch)
        raise DagsterBranchConfigError(
            f"This is a branch deployment ({IS_BRANCH}=1) but neither {PULL_REQUEST_ID} nor "
            f"{GIT_BRANCH} is set: set one of them, or set {FORCED_NAMESPACE} (e.g. 'pr_42')."
        )
    return Namespace.for_developer(developer)
