"""The cleanup sensor and the nightly sweep: find closed branches, request their cleanup.

Both run in the production deployment (Dagster+ runs no sensors in branch deployments, and both
refuse to tick inside one), take the
branch-aware stores and the pull request source by resource key, like the cleanup job, and make
their decisions with one shared tick (:func:`~dagster_branch.detection.run_cleanup_tick`).

Example::

    import dagster as dg
    from dagster_branch import build_branch_cleanup_sensor
    from dagster_branch.detection import CleanupPolicy

    sensor = build_branch_cleanup_sensor(policy=CleanupPolicy(grace_period=timedelta(minutes=30)))
    defs = dg.Definitions(sensors=[sensor], jobs=[...], resources={...})
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from dagster_branch.cleanup.verify import refuse_in_branch_deployment
from dagster_branch.detection import (
    DEFAULT_POLICY,
    CleanupCursor,
    CleanupPolicy,
    Evaluation,
    ReportsActivity,
    TickOutcome,
    cleanup_run_request,
    evaluate_namespaces,
    run_cleanup_tick,
)
from dagster_branch.errors import DagsterBranchConfigError
from dagster_branch.inventory import BranchStore, require_store
from dagster_branch.previous_runs import (
    PreviousRunLookup,
    instance_lookup,
)
from dagster_branch.run_tags import TAG_NAMESPACE, TAG_PULL_REQUEST, TAG_STATE
from dagster_branch.sources.base import PullRequestSource, require_source

__all__ = [
    "TAG_NAMESPACE",
    "TAG_PULL_REQUEST",
    "TAG_STATE",
    "CleanupCursor",
    "CleanupPolicy",
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
    stores = {
        key: require_store(getattr(context.resources, key), f"The resource {key!r}")
        for key in store_keys
    }
    source = getattr(context.resources, source_key)
    return stores, require_source(source, f"The resource {source_key!r}")


@dataclass(frozen=True)
class _Tick:
    """What the sensor and the schedule share: their settings and one evaluation."""

    job_name: str
    store_keys: tuple[str, ...]
    source_key: str
    policy: CleanupPolicy
    max_runs_per_tick: int

    def __post_init__(self) -> None:
        if self.max_runs_per_tick < 1:
            raise DagsterBranchConfigError("max_runs_per_tick must be at least 1.")

    @property
    def resource_keys(self) -> set[str]:
        return {*self.store_keys, self.source_key}

    def run(
        self,
        context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext,
        cursor: CleanupCursor,
        *,
        entry_point: str,
    ) -> TickOutcome:
        refuse_in_branch_deployment(entry_point)  # before any store or source is asked
        stores, source = _resources(context, self.store_keys, self.source_key)
        return run_cleanup_tick(
            stores,
            source,
            cursor=cursor,
            policy=self.policy,
            max_runs_per_tick=self.max_runs_per_tick,
            logger=context.log,
            previous_run=_previous_runs(context, self.job_name),
        )


def _previous_runs(
    context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext, job_name: str
) -> PreviousRunLookup | None:
    """Look up earlier cleanup runs on the instance; none when evaluated without one (a test)."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:
        return None
    return instance_lookup(instance, job_name)


def build_branch_cleanup_sensor(
    *,
    job_name: str = "branch_cleanup",
    store_keys: Sequence[str] = DEFAULT_STORE_KEYS,
    source_key: str = DEFAULT_SOURCE_KEY,
    name: str = "branch_cleanup_sensor",
    policy: CleanupPolicy = DEFAULT_POLICY,
    max_runs_per_tick: int = 10,
    minimum_interval_seconds: int = 300,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that requests the cleanup job for every namespace whose pull request closed.

    Meant for the production deployment. It takes the branch-aware stores (``store_keys``) and
    the pull request source (``source_key``) by resource key, like the cleanup job does.

    Each closing is requested once (its run key names the namespace and the closing time, and
    the cursor remembers it). A pull request reopened and closed again is requested again. A
    namespace still live ``policy.retry_after`` after its cleanup run finished (the run failed,
    or a late branch run wrote again) is requested again, up to ``policy.max_attempts`` runs per
    closing.

    Args:
        job_name: the cleanup job it requests runs of.
        store_keys: resource keys of the branch-aware stores whose namespaces it watches.
        source_key: resource key of the pull request source.
        name: the sensor's name.
        policy: when to clean and how often to retry (:class:`CleanupPolicy`).
        max_runs_per_tick: most run requests per tick; the rest follow on later ticks.
        minimum_interval_seconds: the least time between two ticks.
        default_status: whether the sensor starts running when first deployed.

    Example::

        sensor = build_branch_cleanup_sensor(
            store_keys=("warehouse",), policy=CleanupPolicy(stale_after=timedelta(days=14))
        )
    """
    tick = _Tick(job_name, tuple(store_keys), source_key, policy, max_runs_per_tick)

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        required_resource_keys=tick.resource_keys,
        default_status=default_status,
        description="Requests the branch cleanup job for namespaces whose pull request was "
        f"closed or merged more than {policy.grace_period} ago (dagster-branch).",
    )
    def branch_cleanup_sensor(
        context: dg.SensorEvaluationContext, **_direct: object
    ) -> dg.SensorResult:
        # Dagster passes required resources as keywords when a test calls the sensor directly
        # (``sensor(context)``); they are read from the context either way.
        outcome = tick.run(
            context, CleanupCursor.parse(context.cursor), entry_point=f"The sensor {name!r}"
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
    policy: CleanupPolicy = DEFAULT_POLICY,
    max_runs_per_tick: int = 50,
    execution_timezone: str | None = None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """A nightly janitor making exactly the sensor's decisions, for teams that prefer one sweep.

    A schedule keeps no cursor, so each run reads the source afresh (a few requests, once a day).
    Namespaces still live after their cleanup ran are retried as the sensor does. The arguments
    are the sensor's (same ``policy``), plus ``cron_schedule`` and ``execution_timezone``.

    Example::

        schedule = build_branch_cleanup_schedule(cron_schedule="0 4 * * *")
    """
    tick = _Tick(job_name, tuple(store_keys), source_key, policy, max_runs_per_tick)

    @dg.schedule(
        name=name,
        cron_schedule=cron_schedule,
        job_name=job_name,
        required_resource_keys=tick.resource_keys,
        execution_timezone=execution_timezone,
        default_status=default_status,
        description="Requests the branch cleanup job for every namespace whose pull request "
        "is closed or merged (dagster-branch).",
    )
    def branch_cleanup_schedule(
        context: dg.ScheduleEvaluationContext, **_direct: object
    ) -> list[dg.RunRequest] | dg.SkipReason:
        # No cursor: a schedule reads the source afresh.
        outcome = tick.run(context, CleanupCursor(), entry_point=f"The schedule {name!r}")
        if outcome.run_requests:
            return outcome.run_requests
        return dg.SkipReason(outcome.skip_reason)

    return branch_cleanup_schedule
