"""dagster-branch: per-branch routing and closed-PR cleanup for Dagster+ branch deployments."""

from dagster_branch.cleanup.job import build_branch_cleanup_job
from dagster_branch.cleanup.plan import CleanupPlan, build_cleanup_plan
from dagster_branch.cleanup.s3 import PurgeReport, purge_bucket, purge_prefix
from dagster_branch.components import BranchCleanupComponent
from dagster_branch.context import DeploymentContext, DeploymentKind
from dagster_branch.decision import Decision, DecisionKind, decide_all, should_clean
from dagster_branch.definitions import branch_cleanup_definitions
from dagster_branch.errors import (
    CleanupError,
    CleanupIncompleteError,
    CleanupRefusedError,
    DagsterBranchConfigError,
    DagsterBranchError,
    DagsterBranchNamingError,
    NamespaceViolationError,
    RateLimitedError,
    SourceError,
    SourceUnavailableError,
    UnexpectedResponseError,
)
from dagster_branch.inventory import BranchStore, ObjectKind, OwnedObject, RemovalResult
from dagster_branch.io_managers.database import BranchTableIOManager
from dagster_branch.io_managers.existing import branch_io_manager
from dagster_branch.io_managers.s3 import BranchS3PickleIOManager
from dagster_branch.ledger import Ledger, LedgerEntry
from dagster_branch.naming import Namespace, NamespaceKind
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus
from dagster_branch.resources.database import BranchDatabaseResource, TableLocation
from dagster_branch.resources.s3 import BranchS3Resource
from dagster_branch.sensors import (
    build_branch_cleanup_schedule,
    build_branch_cleanup_sensor,
    evaluate_namespaces,
)
from dagster_branch.sources.base import PullRequestSource, SourceAnswer
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
    "BranchStore",
    "BranchTableIOManager",
    "CleanupError",
    "CleanupIncompleteError",
    "CleanupPlan",
    "CleanupRefusedError",
    "DagsterBranchConfigError",
    "DagsterBranchError",
    "DagsterBranchNamingError",
    "DagsterPlusBranchDeployments",
    "Decision",
    "DecisionKind",
    "DeploymentContext",
    "DeploymentKind",
    "GitHubPullRequests",
    "GitLabMergeRequests",
    "GitRemoteBranches",
    "Ledger",
    "LedgerEntry",
    "Namespace",
    "NamespaceKind",
    "NamespaceViolationError",
    "ObjectKind",
    "OwnedObject",
    "PullRequestSource",
    "PullRequestState",
    "PullRequestStatus",
    "PurgeReport",
    "RateLimitedError",
    "RemovalResult",
    "SourceAnswer",
    "SourceError",
    "SourceUnavailableError",
    "TableLocation",
    "UnexpectedResponseError",
    "__version__",
    "branch_cleanup_definitions",
    "branch_io_manager",
    "build_branch_cleanup_job",
    "build_branch_cleanup_schedule",
    "build_branch_cleanup_sensor",
    "build_cleanup_plan",
    "decide_all",
    "evaluate_namespaces",
    "purge_bucket",
    "purge_prefix",
    "should_clean",
]
