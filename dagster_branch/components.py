"""``BranchCleanupComponent``: dagster-branch for projects that configure Dagster in YAML.

One ``defs.yaml`` adds the branch-aware warehouse (and S3 lake), the pull request source, and in
the production deployment the cleanup job ``branch_cleanup`` and sensor
``branch_cleanup_sensor``. In a branch deployment it adds the resources only (Dagster+ runs no
sensors there). Secrets are never written in the YAML: fields ending in ``_env`` name the
environment variable that holds them, read at run time through ``dagster.EnvVar``.

Example ``defs.yaml`` (registered through the ``dagster_dg_cli.registry_modules`` entry point,
so ``dg list components`` shows it)::

    type: dagster_branch.components.BranchCleanupComponent
    attributes:
      warehouse:
        url_env: WAREHOUSE_URL
        base_schema: analytics
      lake:
        bucket: acme-data
        prefix: lake
      pull_requests:
        kind: github
        repository: octo-org/analytics
      grace_period_minutes: 30
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from dagster_branch.context import DeploymentContext
from dagster_branch.errors import DagsterBranchConfigError
from dagster_branch.ownership import OWNER_FIELD_DESCRIPTION

__all__ = ["BranchCleanupComponent", "LakeSpec", "PullRequestSourceSpec", "WarehouseSpec"]

CLEANUP_IO_MANAGER_KEY = "branch_cleanup_io_manager"
_DEFAULT_TOKEN_ENV = {
    "github": "GITHUB_TOKEN",
    "gitlab": "GITLAB_TOKEN",
    "dagster_plus": "DAGSTER_CLOUD_API_TOKEN",
}


class WarehouseSpec(dg.Resolvable, dg.Model):
    """The branch-aware warehouse (a :class:`~dagster_branch.BranchDatabaseResource`)."""

    url_env: str = Field(
        default="WAREHOUSE_URL",
        description="Environment variable holding the SQLAlchemy URL (it may hold a password).",
    )
    branch_url_env: str | None = Field(
        default=None,
        description="Environment variable holding the URL of the role branch deployments and "
        "the cleanup use (see docs/credentials.md).",
    )
    base_schema: str = Field(description="The production schema, e.g. 'analytics'.")
    strategy: Literal["schema", "table_prefix"] = Field(
        default="schema", description="'schema' (one schema per branch) or 'table_prefix'."
    )
    branch_schema: str | None = Field(
        default=None, description="The shared development schema for strategy 'table_prefix'."
    )
    protected_schemas: list[str] = Field(
        default=[], description="Schemas that branches never write or drop."
    )
    owner: str | None = Field(default=None, description=OWNER_FIELD_DESCRIPTION)

    def build(self, store_key: str) -> Any:
        from dagster_branch.resources.database import BranchDatabaseResource

        return BranchDatabaseResource(
            url=dg.EnvVar(self.url_env),
            branch_url=dg.EnvVar(self.branch_url_env) if self.branch_url_env else None,
            base_schema=self.base_schema,
            strategy=self.strategy,
            branch_schema=self.branch_schema,
            protected_schemas=self.protected_schemas,
            store_key=store_key,
            owner=self.owner,
        )


class LakeSpec(dg.Resolvable, dg.Model):
    """The branch-aware S3 data lake (a :class:`~dagster_branch.BranchS3Resource`)."""

    bucket: str = Field(description="The production bucket.")
    prefix: str = Field(default="", description="The production folder in the bucket.")
    strategy: Literal["prefix", "bucket"] = Field(
        default="prefix", description="'prefix' (a folder per branch) or 'bucket' (a bucket each)."
    )
    branch_bucket: str | None = Field(
        default=None, description="A separate bucket for all branches (recommended)."
    )
    branch_root: str = Field(
        default="_branches",
        description="Folder holding every namespace under strategy 'prefix' (one per code "
        "location when locations share a bucket).",
    )
    owner: str | None = Field(default=None, description=OWNER_FIELD_DESCRIPTION)
    ledger_url_env: str | None = Field(
        default=None,
        description="Environment variable holding the URL of the ownership ledger (usually the "
        "warehouse's); without it a marker object records ownership.",
    )

    def build(self, store_key: str) -> Any:
        from dagster_branch.resources.s3 import BranchS3Resource

        return BranchS3Resource(
            bucket=self.bucket,
            prefix=self.prefix,
            strategy=self.strategy,
            branch_bucket=self.branch_bucket,
            branch_root=self.branch_root,
            ledger_url=dg.EnvVar(self.ledger_url_env) if self.ledger_url_env else None,
            store_key=store_key,
            owner=self.owner,
        )


class PullRequestSourceSpec(dg.Resolvable, dg.Model):
    """Where the state of pull requests comes from."""

    kind: Literal["github", "gitlab", "dagster_plus", "git"] = Field(
        description="github, gitlab, dagster_plus (the Dagster+ API) or git (a plain remote)."
    )
    repository: str | None = Field(
        default=None,
        description="github: 'owner/repo'. dagster_plus: only this repository's branches.",
    )
    project: str | None = Field(default=None, description="gitlab: the project id or path.")
    organization: str | None = Field(
        default=None, description="dagster_plus: the organization name."
    )
    remote: str | None = Field(default=None, description="git: the remote's URL or path.")
    token_env: str | None = Field(
        default=None,
        description="Environment variable holding the token (default GITHUB_TOKEN, "
        "GITLAB_TOKEN or DAGSTER_CLOUD_API_TOKEN).",
    )
    api_url: str | None = Field(
        default=None, description="github/gitlab: the API root, for self-hosted servers."
    )

    def _need(self, value: str | None, field: str) -> str:
        if not value:
            raise DagsterBranchConfigError(
                f"pull_requests.{field} is required for kind {self.kind!r} in defs.yaml."
            )
        return value

    def build(self) -> Any:
        from dagster_branch.sources.dagster_plus import DagsterPlusBranchDeployments
        from dagster_branch.sources.git import GitRemoteBranches
        from dagster_branch.sources.github import GitHubPullRequests
        from dagster_branch.sources.gitlab import GitLabMergeRequests

        if self.kind == "git":
            return GitRemoteBranches(remote=self._need(self.remote, "remote"))
        token = dg.EnvVar(self.token_env or _DEFAULT_TOKEN_ENV[self.kind])
        extra: dict[str, Any] = {"api_url": self.api_url} if self.api_url else {}
        if self.kind == "github":
            repository = self._need(self.repository, "repository")
            return GitHubPullRequests(repository=repository, token=token, **extra)
        if self.kind == "gitlab":
            project = self._need(self.project, "project")
            return GitLabMergeRequests(project=project, token=token, **extra)
        return DagsterPlusBranchDeployments(
            organization=self._need(self.organization, "organization"),
            api_token=token,
            repository=self.repository,
        )


class BranchCleanupComponent(dg.Component, dg.Resolvable, dg.Model):
    """The branch-aware resources, and in production the cleanup job and sensor, from YAML.

    Example (in Python, as the YAML above resolves)::

        component = BranchCleanupComponent(
            warehouse=WarehouseSpec(base_schema="analytics"),
            pull_requests=PullRequestSourceSpec(kind="github", repository="octo-org/analytics"),
        )
        defs = dg.build_defs_for_component(component)
    """

    warehouse: WarehouseSpec | None = Field(default=None, description="The warehouse store.")
    lake: LakeSpec | None = Field(default=None, description="The S3 store.")
    pull_requests: PullRequestSourceSpec = Field(description="The pull request source.")
    warehouse_key: str = Field(default="warehouse", description="Resource key of the warehouse.")
    lake_key: str = Field(default="lake", description="Resource key of the lake.")
    source_key: str = Field(default="pull_requests", description="Resource key of the source.")
    table_io_manager: bool = Field(
        default=False,
        description="Also bind BranchTableIOManager on the warehouse as the 'io_manager', so "
        "assets store their outputs as routed tables.",
    )
    grace_period_minutes: float = Field(
        default=10, ge=0, description="Minutes to wait after a pull request closes."
    )
    stale_after_days: float | None = Field(
        default=None, gt=0, description="Also clean namespaces idle this many days."
    )
    include_schedule: bool = Field(
        default=False, description="Also add the nightly branch_cleanup_schedule."
    )
    sensor_running: bool = Field(
        default=False, description="Start the sensor as soon as it is deployed."
    )

    def _stores(self) -> dict[str, Any]:
        stores: dict[str, Any] = {}
        if self.warehouse is not None:
            stores[self.warehouse_key] = self.warehouse.build(self.warehouse_key)
        if self.lake is not None:
            stores[self.lake_key] = self.lake.build(self.lake_key)
        if not stores:
            raise DagsterBranchConfigError(
                "BranchCleanupComponent needs a warehouse, a lake, or both in its attributes."
            )
        return stores

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """Resources everywhere; the job and sensor outside branch deployments."""
        from dagster_branch.definitions import branch_cleanup_definitions
        from dagster_branch.detection import CleanupPolicy
        from dagster_branch.io_managers.database import BranchTableIOManager

        stores = self._stores()
        resources: dict[str, Any] = dict(stores)
        if self.table_io_manager:
            if self.warehouse is None:
                raise DagsterBranchConfigError("table_io_manager: true needs a warehouse.")
            resources["io_manager"] = BranchTableIOManager(database=stores[self.warehouse_key])
        if DeploymentContext.from_env().is_branch_deployment:
            return dg.Definitions(resources=resources)
        stale = timedelta(days=self.stale_after_days) if self.stale_after_days else None
        cleanup = branch_cleanup_definitions(
            stores=stores,
            source=self.pull_requests.build(),
            source_key=self.source_key,
            policy=CleanupPolicy(
                grace_period=timedelta(minutes=self.grace_period_minutes), stale_after=stale
            ),
            include_schedule=self.include_schedule,
            sensor_status=(
                dg.DefaultSensorStatus.RUNNING
                if self.sensor_running
                else dg.DefaultSensorStatus.STOPPED
            ),
            io_manager_key=CLEANUP_IO_MANAGER_KEY,
        )
        extra = dg.Definitions(
            resources={**resources, CLEANUP_IO_MANAGER_KEY: dg.FilesystemIOManager()}
        )
        return dg.Definitions.merge(cleanup, extra)
