"""``branch_cleanup_definitions``: the one call most production deployments need.

It bundles the branch-aware stores and the pull request source under their resource keys, the
cleanup job, the cleanup sensor and, when asked, the nightly schedule, ready to merge into the
production deployment's ``Definitions``. Leave it out of branch deployments: Dagster+ runs no
sensors there, and a branch has no business cleaning up other branches.

Example::

    import dagster as dg
    from dagster_branch import (
        BranchDatabaseResource, DeploymentContext, GitHubPullRequests, branch_cleanup_definitions,
    )

    warehouse = BranchDatabaseResource(url=dg.EnvVar("WAREHOUSE_URL"), base_schema="analytics")
    defs = dg.Definitions(assets=[...], resources={"warehouse": warehouse})
    if not DeploymentContext.from_env().is_branch_deployment:
        defs = dg.Definitions.merge(defs, branch_cleanup_definitions(
            stores={"warehouse": warehouse},
            source=GitHubPullRequests(repository="octo-org/analytics",
                                      token=dg.EnvVar("GITHUB_TOKEN")),
        ))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from dagster_branch.detection import DEFAULT_POLICY, CleanupPolicy
from dagster_branch.errors import DagsterBranchConfigError
from dagster_branch.inventory import require_store
from dagster_branch.sensors import (
    DEFAULT_SOURCE_KEY,
    build_branch_cleanup_schedule,
    build_branch_cleanup_sensor,
)
from dagster_branch.sources.base import require_source

__all__ = ["branch_cleanup_definitions"]


def _check(stores: Mapping[str, Any], source: Any, source_key: str) -> None:
    if not stores:
        raise DagsterBranchConfigError(
            "stores is empty: pass the branch-aware resources to watch and clean, for example "
            "stores={'warehouse': warehouse, 'lake': lake}."
        )
    if source_key in stores:
        raise DagsterBranchConfigError(
            f"{source_key!r} is both a store key and the source key; give the source its own key."
        )
    for key, store in stores.items():
        require_store(store, f"stores[{key!r}]")
    require_source(source, "source")


def branch_cleanup_definitions(
    *,
    stores: Mapping[str, Any],
    source: Any,
    job_name: str = "branch_cleanup",
    source_key: str = DEFAULT_SOURCE_KEY,
    include_sensor: bool = True,
    include_schedule: bool = False,
    sensor_name: str = "branch_cleanup_sensor",
    schedule_name: str = "branch_cleanup_schedule",
    cron_schedule: str = "0 3 * * *",
    policy: CleanupPolicy = DEFAULT_POLICY,
    max_runs_per_tick: int = 10,
    minimum_interval_seconds: int = 300,
    sensor_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    schedule_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
    io_manager_key: str = "io_manager",
) -> dg.Definitions:
    """Resources, cleanup job, sensor (and optionally the schedule) for the production deployment.

    Args:
        stores: branch-aware resources by resource key (``{"warehouse": ..., "lake": ...}``).
        source: the pull request source; bound under ``source_key``.
        job_name: name of the cleanup job the sensor and schedule request.
        source_key: resource key of the source (``pull_requests``).
        include_sensor: add the cleanup sensor.
        include_schedule: add the nightly sweep as well (same decisions, no second logic).
        sensor_name: the sensor's name.
        schedule_name: the schedule's name.
        cron_schedule: when the schedule runs.
        policy: when to clean and how often to retry, shared by the sensor and the schedule
            (:class:`~dagster_branch.detection.CleanupPolicy`: grace period, stale namespaces,
            time budget, retries).
        max_runs_per_tick: most cleanup runs the sensor requests per tick.
        minimum_interval_seconds: the least time between two sensor ticks.
        sensor_status: whether the sensor runs as soon as it is deployed.
        schedule_status: whether the schedule runs as soon as it is deployed.
        io_manager_key: IO manager for the small values the job's ops pass along.

    Raises:
        DagsterBranchConfigError: a store is not branch-aware, the source is not a source, or
            the keys collide.
    """
    _check(stores, source, source_key)
    from dagster_branch.cleanup.job import build_branch_cleanup_job  # heavy: import on use

    store_keys = tuple(stores)
    job = build_branch_cleanup_job(
        name=job_name, store_keys=store_keys, source_key=source_key, io_manager_key=io_manager_key
    )
    shared: dict[str, Any] = {
        "job_name": job_name,
        "store_keys": store_keys,
        "source_key": source_key,
        "policy": policy,
    }
    sensors = []
    if include_sensor:
        sensors.append(
            build_branch_cleanup_sensor(
                name=sensor_name,
                max_runs_per_tick=max_runs_per_tick,
                minimum_interval_seconds=minimum_interval_seconds,
                default_status=sensor_status,
                **shared,
            )
        )
    schedules = []
    if include_schedule:
        schedules.append(
            build_branch_cleanup_schedule(
                name=schedule_name,
                cron_schedule=cron_schedule,
                default_status=schedule_status,
                **shared,
            )
        )
    return dg.Definitions(
        jobs=[job],
        sensors=sensors,
        schedules=schedules,
        resources={**stores, source_key: source},
    )
