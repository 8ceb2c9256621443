"""dagster-branch: per-branch routing and closed-PR cleanup for Dagster+ branch deployments.

The names below are what a code location needs: the resources and IO managers that route each
deployment's writes, the pull-request sources, the builders of the cleanup's sensor, schedule and
whole ``Definitions`` with their ``CleanupPolicy``, the component, and the errors worth
catching. Everything else is importable from its own module, documented there:

- ``dagster_branch.naming``: the name rules (``schema_name``, ``bucket_name``, their inverses);
- ``dagster_branch.context``: ``DeploymentKind`` beside ``DeploymentContext``;
- ``dagster_branch.cleanup.job`` / ``.plan`` / ``.verify``: the cleanup job, its plan and checks;
- ``dagster_branch.stores``: the store adapters each resource hands out (``as_store()``), and
  ``dagster_branch.stores.s3_purge``'s ``purge_prefix`` and ``purge_bucket``, usable on their own;
- ``dagster_branch.decision``, ``dagster_branch.sensors``: the pure decision and one tick;
- ``dagster_branch.inventory``, ``dagster_branch.ledger``: the store protocol and the records;
- ``dagster_branch.sources.base``: ``PullRequestSource``, to write a source of your own;
- ``dagster_branch.errors``: every error, drawn as a tree;
- ``dagster_branch.testing``: ``deployment_env``, to test branch-aware assets.
"""

from dagster_branch.components import BranchCleanupComponent
from dagster_branch.context import DeploymentContext
from dagster_branch.definitions import branch_cleanup_definitions
from dagster_branch.detection import CleanupPolicy
from dagster_branch.errors import (
    CleanupIncompleteError,
    CleanupRefusedError,
    DagsterBranchConfigError,
    DagsterBranchError,
    NamespaceViolationError,
    SourceError,
)
from dagster_branch.io_managers.database import BranchTableIOManager
from dagster_branch.io_managers.existing import branch_io_manager
from dagster_branch.io_managers.s3 import BranchS3PickleIOManager
from dagster_branch.naming import Namespace
from dagster_branch.resources.database import BranchDatabaseResource
from dagster_branch.resources.s3 import BranchS3Resource
from dagster_branch.sensors import build_branch_cleanup_schedule, build_branch_cleanup_sensor
from dagster_branch.sources.dagster_plus import DagsterPlusBranchDeployments
from dagster_branch.sources.git import GitRemoteBranches
from dagster_branch.sources.github import GitHubPullRequests
from dagster_branch.sources.gitlab import GitLabMergeRequests

__version__ = "0.1.0"

__all__ = [
    "BranchCleanupComponent",
    "BranchDatabaseResource",
    "BranchS3PickleIOManager",
    "BranchS3Resource",
    "BranchTableIOManager",
    "CleanupIncompleteError",
    "CleanupPolicy",
    "CleanupRefusedError",
    "DagsterBranchConfigError",
    "DagsterBranchError",
    "DagsterPlusBranchDeployments",
    "DeploymentContext",
    "GitHubPullRequests",
    "GitLabMergeRequests",
    "GitRemoteBranches",
    "Namespace",
    "NamespaceViolationError",
    "SourceError",
    "branch_cleanup_definitions",
    "branch_io_manager",
    "build_branch_cleanup_schedule",
    "build_branch_cleanup_sensor",
]
