"""The ops of the cleanup job, and the values they hand to one another.

Each op is built per job (its definition name is prefixed by the job's name, so two cleanup jobs
can share a code location) and reaches the stores and the PR source only through the
``BranchStore`` and ``PullRequestSource`` protocols, by resource key. Library errors become
:class:`dagster.Failure` with metadata; a removal op never fails for one object, it reports it.
"""

# No `from __future__ import annotations` here: Dagster resolves the ops' annotations (the
# Config class, the input types) when the ops are defined.
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import dagster as dg
import pydantic
from pydantic import Field

from dagster_branch.cleanup.plan import CleanupPlan, build_cleanup_plan
from dagster_branch.cleanup.report import (
    StoreRemoval,
    failures_of,
    plan_metadata,
    removal_metadata,
)
from dagster_branch.cleanup.verify import (
    DEFAULT_MAX_OBJECTS,
    check_plan,
    ownership_problems,
    refusal_message,
    refuse_in_branch_deployment,
)
from dagster_branch.errors import (
    CleanupIncompleteError,
    DagsterBranchError,
)
from dagster_branch.inventory import (
    BranchStore,
    OwnedObject,
    RemovalResult,
    Survey,
    SurveyingStore,
    require_store,
)
from dagster_branch.pull_requests import PullRequestState
from dagster_branch.sources.base import PullRequestSource, require_source

__all__ = [
    "RETRY_DELAY_SECONDS",
    "BranchCleanupConfig",
    "CleanupOutcome",
    "CleanupTicket",
    "plan_op",
    "record_op",
    "removal_op",
    "remove_from_store",
    "verify_op",
]

RETRY_DELAY_SECONDS = 1.0


class BranchCleanupConfig(dg.Config):
    """Run config of the ``plan`` op: which namespace to clean, and how carefully."""

    namespace: str = Field(description="The branch namespace to clean, for example 'pr_42'.")
    dry_run: bool = Field(
        default=False, description="Plan, verify and report what would be removed; remove nothing."
    )
    max_objects: int = Field(
        default=DEFAULT_MAX_OBJECTS,
        ge=0,
        description="Circuit breaker: refuse the whole run if it would remove more than this "
        "many objects, contents counted (each relation inside a schema; each S3 key, version, "
        "delete marker and incomplete upload inside a prefix or bucket).",
    )
    require_closed: bool = Field(
        default=True,
        description="Ask the pull-request source again right before deleting, and stop unless "
        "the PR is closed or merged.",
    )
    include_unrecorded: bool = Field(
        default=False,
        description="Also remove objects found by their name alone (no ledger row, marker or "
        "tag of this code location records them). By default they are listed and kept.",
    )


@dataclass(frozen=True)
class CleanupTicket:
    """What flows from op to op: the plan, the run's options and, once verified, the PR."""

    plan: CleanupPlan
    dry_run: bool = False
    max_objects: int = DEFAULT_MAX_OBJECTS
    require_closed: bool = True
    pull_request: PullRequestState | None = None
    verified: bool = False


@dataclass(frozen=True)
class CleanupOutcome:
    """The record op's output: what every store did (read it with ``output_for_node``)."""

    plan: CleanupPlan
    removals: tuple[StoreRemoval, ...]
    dry_run: bool

    def results(self) -> list[RemovalResult]:
        """Every store's results, in plan order."""
        return [result for removal in self.removals for result in removal.results]


@contextmanager
def _failures_as_dagster(namespace: str | None) -> Iterator[None]:
    """Turn library errors into :class:`dagster.Failure` with metadata (no Python traceback)."""
    try:
        yield
    except DagsterBranchError as exc:
        raise dg.Failure(
            description=str(exc),
            metadata={
                "namespace": dg.MetadataValue.text(namespace or "-"),
                "error": dg.MetadataValue.text(type(exc).__name__),
            },
            allow_retries=False,
        ) from exc


def _store(context: dg.OpExecutionContext, key: str) -> BranchStore:
    return require_store(getattr(context.resources, key), f"The resource {key!r}")


def _source(context: dg.OpExecutionContext, key: str | None) -> PullRequestSource | None:
    if key is None:
        return None
    return require_source(getattr(context.resources, key), f"The resource {key!r}")


# What each bounded field allows, for config errors that say how to fix the value.
_ALLOWED = {
    "max_objects": f"0 or more (the most objects one run may remove; default "
    f"{DEFAULT_MAX_OBJECTS:,})",
}


def _checked_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Validate the plan op's config with its pydantic bounds while the run config is validated.

    Dagster turns a ``Config`` class into a config schema of plain types and drops pydantic's
    bounds (``ge=0``), which it checks only when the op starts. Run as the config function of a
    configured op, this check makes an out-of-range value fail run config validation (the
    launchpad's launch, ``execute_in_process``, the sensor's run request) before any run starts.
    """
    try:
        BranchCleanupConfig(**config)
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            allowed = _ALLOWED.get(field)
            problems.append(
                f"{field} must be {allowed}, got {error.get('input')!r}"
                if allowed
                else f"{field}: {error['msg']}"
            )
        raise dg.DagsterInvalidConfigError(  # type: ignore[no-untyped-call]
            "Invalid run config for the cleanup's plan op: " + "; ".join(problems) + ".",
            [],
            config,
        ) from None
    return config


def plan_op(job_name: str, store_keys: Sequence[str], io_key: str) -> dg.OpDefinition:
    """The plan op, configured so that its config is checked with its bounds (see above)."""
    unchecked = _unchecked_plan_op(job_name, store_keys, io_key)
    return unchecked.configured(
        _checked_config,
        name=f"{job_name}_plan",
        config_schema=BranchCleanupConfig.to_config_schema().as_field(),
        description=unchecked.description,
    )


def _unchecked_plan_op(job_name: str, store_keys: Sequence[str], io_key: str) -> dg.OpDefinition:
    @dg.op(
        name=f"{job_name}_plan_unchecked",
        description="Inventory of every branch-aware store for the namespace (ledger and "
        "discovery), deduplicated.",
        required_resource_keys=set(store_keys),
        out=dg.Out(io_manager_key=io_key),
        tags={"kind": "dagster-branch"},
    )
    def plan_op(
        context: dg.OpExecutionContext, config: BranchCleanupConfig
    ) -> dg.Output[CleanupTicket]:
        with _failures_as_dagster(config.namespace):
            refuse_in_branch_deployment(f"The cleanup job {job_name!r}")
            stores = {key: _store(context, key) for key in store_keys}
            plan = build_cleanup_plan(
                config.namespace,
                stores,
                max_objects=config.max_objects,
                include_unrecorded=config.include_unrecorded,
            )
            problems = ownership_problems(plan, stores)
        context.log.info(
            f"{len(plan.removable)} object(s) of {plan.namespace} planned across "
            f"{', '.join(store_keys)}: {plan.counts() or 'nothing to remove'}; "
            f"{plan.contents:,}{'' if plan.contents_complete else '+'} object(s) with contents"
        )
        for planned in plan.refused():
            context.log.warning(
                f"{planned.describe()} will be refused: objects outside {plan.namespace} depend "
                f"on it: {'; '.join(planned.survey.dependents)}"
            )
        if plan.kept:
            context.log.warning(
                f"{len(plan.kept)} unrecorded object(s) of {plan.namespace} kept (found by name "
                "only; include_unrecorded: true removes them): "
                + ", ".join(p.describe() for p in plan.kept)
            )
        ticket = CleanupTicket(
            plan=plan,
            dry_run=config.dry_run,
            max_objects=config.max_objects,
            require_closed=config.require_closed,
        )
        return dg.Output(ticket, metadata=plan_metadata(plan, problems))

    return plan_op


def verify_op(
    job_name: str, store_keys: Sequence[str], source_key: str | None, io_key: str
) -> dg.OpDefinition:
    @dg.op(
        name=f"{job_name}_verify",
        description="Refuse production, protected names, objects whose names do not parse back "
        "to the namespace, oversized plans, and a PR that is not closed (asked again now).",
        required_resource_keys={*store_keys, *([source_key] if source_key else [])},
        out=dg.Out(io_manager_key=io_key),
        tags={"kind": "dagster-branch"},
    )
    def verify_op(context: dg.OpExecutionContext, ticket: CleanupTicket) -> CleanupTicket:
        plan = ticket.plan
        with _failures_as_dagster(plan.namespace.key):
            stores = {key: _store(context, key) for key in store_keys}
            source = _source(context, source_key)
            verdict = check_plan(
                plan,
                stores,
                source=source,
                require_closed=ticket.require_closed,
                max_objects=ticket.max_objects,
                source_key=source_key,
            )
        if verdict.reasons:
            raise dg.Failure(
                description=refusal_message(plan, verdict.reasons),
                metadata={
                    "namespace": dg.MetadataValue.text(plan.namespace.key),
                    "error": dg.MetadataValue.text("CleanupRefusedError"),
                    "reasons": dg.MetadataValue.md(
                        "\n".join(f"- {reason}" for reason in verdict.reasons)
                    ),
                },
                allow_retries=False,
            )
        state = verdict.pull_request
        context.log.info(
            f"Verified {len(plan)} object(s) of {plan.namespace}"
            + (f"; its PR is {state.state.value}" if state is not None else "")
            + (" (dry run: nothing will be removed)" if ticket.dry_run else "")
        )
        return replace(ticket, pull_request=state, verified=True)

    return verify_op


def _complete(
    objects: Sequence[OwnedObject], results: Sequence[RemovalResult]
) -> list[RemovalResult]:
    """Every planned object gets a result; one the store left out counts as a failure."""
    answered = {result.obj for result in results}
    missing = [
        RemovalResult(obj=obj, removed=False, error="the store returned no result for it")
        for obj in objects
        if obj not in answered
    ]
    return [*results, *missing]


def _attempt(
    store: BranchStore,
    store_key: str,
    objects: Sequence[OwnedObject],
    *,
    dry_run: bool,
    log: logging.Logger,
    surveys: Mapping[OwnedObject, Survey] | None = None,
) -> list[RemovalResult]:
    try:
        if surveys is not None and isinstance(store, SurveyingStore):
            results = store.remove_objects(objects, dry_run=dry_run, log=log, surveys=surveys)
        else:
            results = list(store.remove_objects(objects, dry_run=dry_run, log=log))
    except DagsterBranchError as exc:
        # The whole store failed (unreachable, no rights): report each object, and let the
        # other stores finish; record fails the run with every failure listed.
        log.error(f"The {store_key!r} store failed before removing anything: {exc}")
        results = [
            RemovalResult(obj=obj, removed=False, error=f"not attempted: {exc}") for obj in objects
        ]
    return _complete(objects, results)


def remove_from_store(
    store: BranchStore,
    store_key: str,
    objects: Sequence[OwnedObject],
    *,
    dry_run: bool,
    log: logging.Logger,
    retry_delay_seconds: float = RETRY_DELAY_SECONDS,
    surveys: Mapping[OwnedObject, Survey] | None = None,
) -> list[RemovalResult]:
    """Ask ``store`` to remove ``objects``; the ones that failed are tried once more.

    A second attempt after a pause clears what is transient: a concurrent cleanup of the same
    namespace holding the object (DuckDB reports a write-write conflict), a connection dropped
    between two statements. Removal is idempotent, so the retry is safe; what still fails is
    reported, and the ledger keeps it for the next run. ``surveys`` (the plan's counts and
    listings) serve the first attempt only; the retry reads the store afresh.
    """
    results = _attempt(store, store_key, objects, dry_run=dry_run, log=log, surveys=surveys)
    if dry_run:
        return results
    failed = [r.obj for r in results if r.error or not (r.removed or r.pending)]
    if not failed:
        return results
    log.warning(
        f"{len(failed)} object(s) of {store_key!r} could not be removed; trying them once more "
        f"in {retry_delay_seconds:g}s."
    )
    time.sleep(retry_delay_seconds)
    retried = {r.obj: r for r in _attempt(store, store_key, failed, dry_run=False, log=log)}
    return [_merge(r, retried.get(r.obj)) for r in results]


def _merge(first: RemovalResult, retry: RemovalResult | None) -> RemovalResult:
    """The retry's verdict; an object the first attempt already removed keeps its counts."""
    if retry is None:
        return first
    if first.removed:  # only its ledger update failed; the retry found nothing left to count
        return replace(retry, objects=first.objects, bytes=first.bytes)
    return retry


def removal_op(job_name: str, store_key: str, io_key: str) -> dg.OpDefinition:
    @dg.op(
        name=f"{job_name}_remove_from_{store_key}",
        description=f"Remove the namespace's objects from the {store_key!r} store, each "
        "handled separately; failures are collected, not raised, so every object is attempted.",
        required_resource_keys={store_key},
        out=dg.Out(io_manager_key=io_key),
        tags={"kind": "dagster-branch"},
    )
    def remove_op(context: dg.OpExecutionContext, ticket: CleanupTicket) -> dg.Output[StoreRemoval]:
        if not ticket.verified:  # never reachable through the job's graph; a guard for reuse
            raise dg.Failure(description="The cleanup plan was not verified; nothing removed.")
        objects = ticket.plan.objects_for(store_key)
        started = time.time()
        if not objects:
            context.log.info(f"{ticket.plan.namespace} owns nothing in {store_key!r}.")
            results: list[RemovalResult] = []
        else:
            verb = "Dry run: would remove" if ticket.dry_run else "Removing"
            context.log.info(f"{verb} {len(objects)} object(s) from {store_key!r}.")
            with _failures_as_dagster(ticket.plan.namespace.key):
                store = _store(context, store_key)
            surveys = {p.obj: p.survey for p in ticket.plan if p.store_key == store_key}
            results = remove_from_store(
                store, store_key, objects, dry_run=ticket.dry_run, log=context.log, surveys=surveys
            )
        removal = StoreRemoval(
            store_key=store_key,
            results=tuple(results),
            started_at=started,
            finished_at=time.time(),
            dry_run=ticket.dry_run,
        )
        for failure in failures_of([removal]):
            context.log.warning(f"Not removed: {failure}")
        return dg.Output(removal, metadata=removal_metadata([removal]))

    return remove_op


def record_op(job_name: str, io_key: str) -> dg.OpDefinition:
    @dg.op(
        name=f"{job_name}_record",
        description="Attach what was removed to the run (table, totals, duration, time since "
        "the PR closed), and fail the run listing every object that could not be removed.",
        out=dg.Out(io_manager_key=io_key),
        tags={"kind": "dagster-branch"},
    )
    def record_op(
        context: dg.OpExecutionContext, ticket: CleanupTicket, removals: list[StoreRemoval]
    ) -> dg.Output[CleanupOutcome]:
        ordered = tuple(sorted(removals, key=lambda r: ticket.plan.store_keys.index(r.store_key)))
        metadata = removal_metadata(
            ordered, pull_request=ticket.pull_request, kept=ticket.plan.kept
        )
        failures = failures_of(ordered)
        if failures:
            error = CleanupIncompleteError(failures)
            raise dg.Failure(
                description=f"Cleanup of {ticket.plan.namespace} is incomplete. {error}",
                metadata={**metadata, "error": dg.MetadataValue.text(type(error).__name__)},
                allow_retries=False,
            )
        outcome = CleanupOutcome(plan=ticket.plan, removals=ordered, dry_run=ticket.dry_run)
        context.log.info(
            f"{'Dry run of' if ticket.dry_run else 'Cleaned'} {ticket.plan.namespace}: "
            f"{len(outcome.results())} object(s) across {len(ordered)} store(s)."
        )
        return dg.Output(outcome, metadata=metadata)

    return record_op
