"""The cleanup job: plan → verify → remove from each store (in parallel) → record.

:func:`build_branch_cleanup_job` wires the branch-aware resources and the PR state source in by
resource key, the same keys the sensor uses, so that each is configured once in the production
deployment's ``Definitions``. The job knows nothing about SQL or S3: it talks to the stores only
through the :class:`~dagster_branch.inventory.BranchStore` protocol.

Run config (one block, on the ``plan`` op)::

    ops:
      plan:
        config:
          namespace: pr_42        # required
          dry_run: false          # plan, verify and report; remove nothing
          max_objects: 10000      # refuse plans with more objects than this
          require_closed: true    # ask the PR source again right before deleting

Why the source key is optional at build time and not at run time: Dagster checks, when the
``Definitions`` load, that every resource key an op requires is bound, and has no notion of an
optional resource. So the choice is made when the job is built: with ``source_key`` set (the
default, ``"pull_requests"``) the ``verify`` op requires that resource and the ``Definitions``
fail to load without it, which is what production wants; with ``source_key=None`` the job needs
no source, and then every run must say ``require_closed: false`` or ``verify`` refuses it. A
missing source can therefore never silently turn into "closed".
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from dagster_branch.cleanup.ops import (
    BranchCleanupConfig,
    CleanupOutcome,
    CleanupTicket,
    plan_op,
    record_op,
    removal_op,
    verify_op,
)
from dagster_branch.errors import DagsterBranchConfigError

__all__ = ["BranchCleanupConfig", "CleanupOutcome", "CleanupTicket", "build_branch_cleanup_job"]


def _check_keys(store_keys: Sequence[str], source_key: str | None) -> tuple[str, ...]:
    keys = tuple(store_keys)
    if isinstance(store_keys, str) or not keys:
        raise DagsterBranchConfigError(
            "store_keys must be a non-empty sequence of resource keys, e.g. ('warehouse', 'lake')."
        )
    for key in (*keys, *([source_key] if source_key else [])):
        if not key.isidentifier():
            raise DagsterBranchConfigError(f"Resource key {key!r} is not a valid identifier.")
    if len(set(keys)) != len(keys):
        raise DagsterBranchConfigError(f"store_keys {keys} holds the same key twice.")
    if source_key in keys:
        raise DagsterBranchConfigError(
            f"source_key {source_key!r} is also a store key: the PR source needs its own key."
        )
    return keys


def build_branch_cleanup_job(
    *,
    name: str = "branch_cleanup",
    store_keys: Sequence[str] = ("warehouse", "lake"),
    source_key: str | None = "pull_requests",
    io_manager_key: str = "io_manager",
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dg.JobDefinition:
    """The job that removes exactly what a closed branch created.

    Ops (run config goes to ``plan``, see the module docstring): ``plan`` → ``verify`` →
    ``remove_from_<store key>`` for each store, in parallel under the multiprocess executor →
    ``record``. The stores mark their ledger rows dropped as they remove; whatever could not be
    removed stays live, the run fails listing every failure, and the next run retries only that.

    Args:
        name: job name; also prefixes the op definitions so that two cleanup jobs can live in
            one code location.
        store_keys: resource keys of the branch-aware stores (``BranchStore``) to clean.
        source_key: resource key of the pull-request source; ``None`` builds a job that needs no
            source, whose runs must then set ``require_closed: false``.
        io_manager_key: IO manager for the small values passed between ops (the plan, the
            results). They are plain Python objects: if your ``io_manager`` writes tables to a
            warehouse, bind a pickling one (``dagster.FilesystemIOManager``, ``S3PickleIOManager``)
            under another key and name it here.
        description: job description shown in the UI.
        tags: extra job tags.

    Example::

        defs = dg.Definitions(
            jobs=[build_branch_cleanup_job()],
            resources={"warehouse": warehouse, "lake": lake, "pull_requests": github},
        )
        defs.get_job_def("branch_cleanup").execute_in_process(
            run_config={"ops": {"plan": {"config": {"namespace": "pr_42", "dry_run": True}}}}
        )
    """
    keys = _check_keys(store_keys, source_key)
    plan = plan_op(name, keys, io_manager_key).alias("plan")
    verify = verify_op(name, keys, source_key, io_manager_key).alias("verify")
    removals = [removal_op(name, key, io_manager_key).alias(f"remove_from_{key}") for key in keys]
    record = record_op(name, io_manager_key).alias("record")

    @dg.job(
        name=name,
        description=description
        or "Remove every object a closed branch deployment created, and nothing else.",
        tags={"dagster-branch/job": "cleanup", **(tags or {})},
    )
    def cleanup_job() -> None:
        verified = verify(plan())
        results: list[Any] = [remove(verified) for remove in removals]
        record(verified, results)

    return cleanup_job
