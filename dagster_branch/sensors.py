"""The cleanup sensor and the nightly sweep: find closed branches, request their cleanup.

Both run in the production deployment (Dagster+ runs no sensors in branch deployments), take the
branch-aware stores and the pull request source by resource key, like the cleanup job, and make
their decisions with one shared tick (:func:`~dagster_branch.detection.run_cleanup_tick`).

Example::

    import dagster as dg
    from dagster_branch import build_branch_cleanup_sensor

    sensor = build_branch_cleanup_sensor(grace_period=timedelta(minutes=30))
    defs = dg.Definitions(sensors=[sensor], jobs=[...], resources={...})
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from dagster_branch.decision import DEFAULT_GRACE_PERIOD
from dagster_branch.detection import (
    TAG_NAMESPACE,
    TAG_PULL_REQUEST,
    TAG_STATE,
    CleanupCursor,
    Evaluation,
    ReportsActivity,
    TickOutcome,
    cleanup_run_request,
    evaluate_namespaces,
    run_cleanup_tick,
)
from dagster_branch.errors import DagsterBranchConfigError
from dagster_branch.inventory import BranchStore
from dagster_branch.sources.base import PullRequestSource

__all__ = [
    "TAG_NAMESPACE",
    "TAG_PULL_REQUEST",
    "TAG_STATE",
    "CleanupCursor",
    "Evaluation",
    "ReportsActivity",
    "TickOutcome",
    "build_branch_cleanup_schedule",
    "build_branch_cleanup_sensor",
    "cleanup_run_request",
    "evaluate_namespaces",
    "run_cleanup_tick",
]

DEFAULT_STORE_KEYS = ("warehouse", "lake")
DEFAULT_SOURCE_KEY = "pull_requests"


def _resources(
    context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext,
    store_keys: Sequence[str],
    source_key: str,
) -> tuple[dict[str, BranchStore], PullRequestSource]:
    stores: dict[str, BranchStore] = {}
    for key in store_keys:
        store = getattr(context.resources, key)
        if not isinstance(store, BranchStore):
            raise DagsterBranchConfigError(
                f"Resource {key!r} is a {type(store).__name__}, not a branch-aware store (it "
                "needs list_namespaces and objects_of): pass BranchDatabaseResource or "
                "BranchS3Resource, or fix store_keys."
            )
        stores[key] = store
    source = getattr(context.resources, source_key)
    if not isinstance(source, PullRequestSource):
        raise DagsterBranchConfigError(
            f"Resource {source_key!r} is a {type(source).__name__}, not a pull request source: "
            "pass GitHubPullRequests, GitLabMergeRequests, DagsterPlusBranchDeployments or "
            "GitRemoteBranches, or fix source_key."
        )
    return stores, source


def build_branch_cleanup_sensor(
    *,
    job_name: str = "branch_cleanup",
    store_keys: Sequence[str] = DEFAULT_STORE_KEYS,
    source_key: str = DEFAULT_SOURCE_KEY,
    name: str = "branch_cleanup_sensor",
    grace_period: timedelta = DEFAULT_GRACE_PERIOD,
    stale_after: timedelta | None = None,
    max_runs_per_tick: int = 10,
    minimum_interval_seconds: int = 300,
    time_budget_seconds: float = 40.0,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that requests the cleanup job for every namespace whose pull request closed.

    Meant for the production deployment. It takes the branch-aware stores (``store_keys``) and
    the pull request source (``source_key``) by resource key, like the cleanup job does.

    Each closing is requested once (its run key names the namespace and the closing time, and
    the cursor remembers it). A pull request reopened and closed again is requested again; a
    cleanup run that failed is retried by re-executing it, or with ``dagster-branch cleanup``.

    Args:
        job_name: the cleanup job it requests runs of.
        store_keys: resource keys of the branch-aware stores whose namespaces it watches.
        source_key: resource key of the pull request source.
        name: the sensor's name.
        grace_period: wait this long after a pull request closes before cleaning.
        stale_after: also clean namespaces idle this long (open, or without a pull request).
        max_runs_per_tick: most run requests per tick; the rest follow on later ticks.
        minimum_interval_seconds: the least time between two ticks.
        time_budget_seconds: how long a tick may spend asking the source (keep it under
            Dagster's sensor timeout of 60 seconds).
        default_status: whether the sensor starts running when first deployed.

    Example::

        sensor = build_branch_cleanup_sensor(
            store_keys=("warehouse",), stale_after=timedelta(days=14)
        )
    """
    if max_runs_per_tick < 1:
        raise DagsterBranchConfigError("max_runs_per_tick must be at least 1.")
    keys = tuple(store_keys)

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        required_resource_keys={*keys, source_key},
        default_status=default_status,
        description="Requests the branch cleanup job for namespaces whose pull request was "
        f"closed or merged more than {grace_period} ago (dagster-branch).",
    )
    def branch_cleanup_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        stores, source = _resources(context, keys, source_key)
        outcome = run_cleanup_tick(
            stores,
            source,
            cursor=CleanupCursor.parse(context.cursor),
            grace_period=grace_period,
            stale_after=stale_after,
            max_runs_per_tick=max_runs_per_tick,
            time_budget_seconds=time_budget_seconds,
            logger=context.log,
        )
        return dg.SensorResult(
            run_requests=outcome.run_requests,
            skip_reason=outcome.skip_reason,
            cursor=outcome.cursor.model_dump_json(),
        )

    return branch_cleanup_sensor


def build_branch_cleanup_schedule(
    *,
    job_name: str = "branch_cleanup",
    store_keys: Sequence[str] = DEFAULT_STORE_KEYS,
    source_key: str = DEFAULT_SOURCE_KEY,
    cron_schedule: str = "0 3 * * *",
    name: str = "branch_cleanup_schedule",
    grace_period: timedelta = DEFAULT_GRACE_PERIOD,
    stale_after: timedelta | None = None,
    max_runs_per_tick: int = 50,
    time_budget_seconds: float = 40.0,
    execution_timezone: str | None = None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """A nightly janitor making exactly the sensor's decisions, for teams that prefer one sweep.

    A schedule keeps no cursor, so each run reads the source afresh (a few requests, once a day).

    Example::

        schedule = build_branch_cleanup_schedule(cron_schedule="0 4 * * *")
    """
    keys = tuple(store_keys)

    @dg.schedule(
        name=name,
        cron_schedule=cron_schedule,
        job_name=job_name,
        required_resource_keys={*keys, source_key},
        execution_timezone=execution_timezone,
        default_status=default_status,
        description="Requests the branch cleanup job for every namespace whose pull request "
        "is closed or merged (dagster-branch).",
    )
    def branch_cleanup_schedule(
        context: dg.ScheduleEvaluationContext,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        stores, source = _resources(context, keys, source_key)
        outcome = run_cleanup_tick(
            stores,
            source,
            cursor=CleanupCursor(),
            grace_period=grace_period,
            stale_after=stale_after,
            max_runs_per_tick=max_runs_per_tick,
            time_budget_seconds=time_budget_seconds,
            logger=context.log,
        )
        if outcome.run_requests:
            return outcome.run_requests
        return dg.SkipReason(outcome.skip_reason)

    return branch_cleanup_schedule
