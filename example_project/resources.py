"""The example's resources, configured only through environment variables with defaults.

=============================  ================================================================
variable                       meaning (default)
=============================  ================================================================
``WAREHOUSE_URL``              SQLAlchemy URL of the warehouse (a DuckDB file under
                               ``example_project/data/``)
``WAREHOUSE_BRANCH_URL``       URL of the role branch deployments and the cleanup use (unset:
                               ``WAREHOUSE_URL``); see docs/credentials.md
``DATA_BUCKET``                S3 bucket of the data lake (unset: the S3 asset is left out)
``AWS_ENDPOINT_URL``           boto3's own variable, for an S3-compatible server
``DAGSTER_BRANCH_PR_SOURCE``   ``github``, ``gitlab``, ``dagster_plus`` or ``git`` (``git``)
``DAGSTER_BRANCH_GRACE_MINUTES``  minutes the sensor waits after a PR closes (10)
``SHOP_DBT_STATE_DIR``         where production's dbt ``manifest.json`` is for branches to defer
                               to (``shop_dbt/state``)
=============================  ================================================================

The dbt models (:mod:`example_project.transformations`) run on the same warehouse: their
profile is pointed at ``WAREHOUSE_URL`` (``WAREHOUSE_BRANCH_URL`` in branch deployments, when
set) through ``SHOP_DBT_*`` variables.

Each source reads its usual variables: ``GITHUB_REPOSITORY``, ``GITHUB_TOKEN``,
``GITHUB_API_URL``; ``CI_PROJECT_ID``, ``GITLAB_TOKEN``, ``CI_API_V4_URL``;
``DAGSTER_CLOUD_ORGANIZATION``, ``DAGSTER_CLOUD_API_TOKEN``; ``DAGSTER_BRANCH_GIT_REMOTE`` (the
checkout this project lives in, when it is one: Dagster+ builds are not). Each is read where the
sensor runs, in production: not ``DAGSTER_CLOUD_GIT_REPO``, which Dagster+ sets only in branch
deployments. Secrets are passed as ``dg.EnvVar``, so their values never
appear in the Dagster UI.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_branch import BranchDatabaseResource
from dagster_branch.errors import DagsterBranchConfigError

__all__ = [
    "DATA_DIR",
    "PR_SOURCES",
    "dbt_warehouse_url",
    "grace_period",
    "is_single_writer",
    "lake",
    "pull_request_source",
    "warehouse",
]

log = logging.getLogger("example_project")

DATA_DIR = Path(__file__).resolve().parent / "data"
BASE_SCHEMA = "analytics"
MARTS_SCHEMA = "analytics_marts"  # dbt's production name for the custom schema "marts"
LAKE_PREFIX = "shop"
PR_SOURCES = ("github", "gitlab", "dagster_plus", "git")
_LAKE_NOTICE = "lake"
_said: set[str] = set()  # notices already logged by this process


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _required(name: str, why: str) -> str:
    value = _env(name)
    if value is None:
        raise DagsterBranchConfigError(f"{name} is not set: {why}")
    return value


def _warehouse_url() -> Any:
    """``WAREHOUSE_URL`` as an EnvVar (it may hold a password), else the local DuckDB file."""
    if _env("WAREHOUSE_URL"):
        return dg.EnvVar("WAREHOUSE_URL")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return f"duckdb:///{DATA_DIR / 'warehouse.duckdb'}"


def warehouse() -> BranchDatabaseResource:
    """The warehouse: ``WAREHOUSE_URL`` or the local DuckDB file; schema ``analytics``, and
    ``analytics_marts``, where dbt puts its custom schema ``marts``."""
    branch_url = dg.EnvVar("WAREHOUSE_BRANCH_URL") if _env("WAREHOUSE_BRANCH_URL") else None
    return BranchDatabaseResource(
        url=_warehouse_url(),
        branch_url=branch_url,
        base_schema=BASE_SCHEMA,
        extra_schemas=[MARTS_SCHEMA],
        store_key="warehouse",
    )


def dbt_warehouse_url() -> str:
    """The URL dbt connects with: the one the warehouse resource uses in this deployment."""
    branch = _env("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT") == "1"
    url = (_env("WAREHOUSE_BRANCH_URL") if branch else None) or _env("WAREHOUSE_URL")
    return url or str(_warehouse_url())


def is_single_writer() -> bool:
    """Whether the warehouse is a file that one process at a time may write (DuckDB, SQLite)."""
    url = _env("WAREHOUSE_URL") or "duckdb"  # the default is a DuckDB file
    return url.startswith(("duckdb", "sqlite"))


def lake() -> Any | None:
    """The data lake under ``DATA_BUCKET``, or ``None`` (with a log line) when it is unset."""
    bucket = _env("DATA_BUCKET")
    if bucket is None:
        if _LAKE_NOTICE in _said:
            return None
        _said.add(_LAKE_NOTICE)
        log.warning(
            "DATA_BUCKET is not set, so the S3 asset 'orders_export' and the 'lake' resource "
            "are left out. Set DATA_BUCKET=<bucket> (and AWS_ENDPOINT_URL for an "
            "S3-compatible server) to enable them."
        )
        return None
    from dagster_branch import BranchS3Resource

    # The ownership ledger lives in the warehouse, next to the warehouse's own records.
    return BranchS3Resource(
        bucket=bucket, prefix=LAKE_PREFIX, ledger_url=_warehouse_url(), store_key="lake"
    )


def pull_request_source() -> Any:
    """The pull request source named by ``DAGSTER_BRANCH_PR_SOURCE`` (default: ``git``)."""
    kind = (_env("DAGSTER_BRANCH_PR_SOURCE") or "git").lower()
    if kind == "github":
        from dagster_branch import GitHubPullRequests

        # Not DAGSTER_CLOUD_GIT_REPO: Dagster+ sets it in branch deployments only, and the
        # sensor runs in production.
        repository = _required(
            "GITHUB_REPOSITORY",
            "set it to 'owner/repo' in the production deployment's environment variables "
            "for the github source (Dagster+ sets DAGSTER_CLOUD_GIT_REPO only in branch "
            "deployments, where no sensor runs).",
        )
        return GitHubPullRequests(repository=repository, token=dg.EnvVar("GITHUB_TOKEN"))
    if kind == "gitlab":
        from dagster_branch import GitLabMergeRequests

        project = _required("CI_PROJECT_ID", "set it to the project id or path for gitlab.")
        return GitLabMergeRequests(project=project, token=dg.EnvVar("GITLAB_TOKEN"))
    if kind == "dagster_plus":
        from dagster_branch import DagsterPlusBranchDeployments

        organization = _required(
            "DAGSTER_CLOUD_ORGANIZATION", "set it to your organization for dagster_plus."
        )
        return DagsterPlusBranchDeployments(
            organization=organization, api_token=dg.EnvVar("DAGSTER_CLOUD_API_TOKEN")
        )
    if kind == "git":
        from dagster_branch import GitRemoteBranches

        return GitRemoteBranches(remote=_env("DAGSTER_BRANCH_GIT_REMOTE") or _this_checkout())
    raise DagsterBranchConfigError.for_variable(
        "DAGSTER_BRANCH_PR_SOURCE", kind, "one of " + ", ".join(PR_SOURCES)
    )


def _this_checkout() -> str:
    """The checkout this project lives in (its local branches: no network), when it is one."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        raise DagsterBranchConfigError(
            f"DAGSTER_BRANCH_GIT_REMOTE is not set and {root} is not a git checkout (Dagster+ "
            "builds do not ship .git): set it to the repository's URL, e.g. "
            "https://github.com/owner/repo.git, or choose another DAGSTER_BRANCH_PR_SOURCE."
        )
    return str(root)


def grace_period() -> timedelta:
    """How long the sensor waits after a PR closes: ``DAGSTER_BRANCH_GRACE_MINUTES`` (10)."""
    text = _env("DAGSTER_BRANCH_GRACE_MINUTES") or "10"
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if minutes < 0:
        raise DagsterBranchConfigError.for_variable(
            "DAGSTER_BRANCH_GRACE_MINUTES", text, "a number of minutes, 0 or more"
        )
    return timedelta(minutes=minutes)
