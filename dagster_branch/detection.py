"""Which live branch namespaces to clean now, and the run requests that clean them.

One tick, shared by the cleanup sensor, the nightly schedule and the ``orphans`` command:

1. live namespaces: the union of ``list_namespaces()`` over the branch-aware stores;
2. their pull requests' states, from the source (cheap thanks to the source's cursor);
3. :func:`~dagster_branch.decision.should_clean` for each;
4. one ``RunRequest`` per namespace to clean, keyed ``cleanup:<namespace>:<ended at>``.

It fails closed: a store or source that cannot answer turns the tick into a skip reason that says
why, with no run request; a namespace whose state is unknown is kept.

Example::

    outcome = run_cleanup_tick({"warehouse": warehouse}, github, cursor=CleanupCursor())
    for request in outcome.run_requests:
        print(request.run_key)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol, runtime_checkable

import dagster as dg
from pydantic import BaseModel, ValidationError

from dagster_branch.decision import DEFAULT_GRACE_PERIOD, Decision, DecisionKind, decide_all
from dagster_branch.errors import DagsterBranchConfigError, DagsterBranchError, SourceError
from dagster_branch.inventory import BranchStore
from dagster_branch.naming import Namespace
from dagster_branch.previous_runs import (
    ATTEMPT_SEPARATOR,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_AFTER,
    PreviousRunLookup,
    follow_up,
)
from dagster_branch.run_tags import TAG_NAMESPACE, TAG_PULL_REQUEST, TAG_STATE
from dagster_branch.sources.base import PullRequestSource, SourceAnswer

__all__ = [
    "DEFAULT_POLICY",
    "CleanupCursor",
    "CleanupPolicy",
    "Evaluation",
    "ReportsActivity",
    "TickOutcome",
    "cleanup_run_key",
    "cleanup_run_request",
    "evaluate_namespaces",
    "run_cleanup_tick",
]

log = logging.getLogger(__name__)

EXAMPLES_SHOWN = 5


@runtime_checkable
class ReportsActivity(Protocol):
    """A store that can tell when a namespace was last written (used by ``stale_after``)."""

    def last_activity_of(self, namespace: Namespace) -> datetime | None:
        """The latest write to ``namespace`` in this store, or ``None`` when unknown."""
        ...


class CleanupCursor(BaseModel):
    """The sensor's cursor: the source's own cursor and the cleanups already requested.

    ``requested`` maps a namespace to the run key last requested for it, so a tick that hit
    ``max_runs_per_tick`` moves on to the next namespaces instead of repeating the first ones.
    """

    version: Literal[1] = 1
    source: str | None = None
    requested: dict[str, str] = {}

    @classmethod
    def parse(cls, text: str | None) -> CleanupCursor:
        """Read a stored cursor; an unreadable one resets (the source re-reads, nothing lost)."""
        if not text:
            return cls()
        try:
            return cls.model_validate_json(text)
        except ValidationError:
            log.warning("The cleanup sensor's cursor is unreadable; starting from a fresh one")
            return cls()


@dataclass(frozen=True)
class Evaluation:
    """Every live namespace, what the source said, and the decision for each."""

    live: set[Namespace]
    answer: SourceAnswer
    decisions: dict[Namespace, Decision]


@dataclass
class TickOutcome:
    """What one tick decided: run requests, or why there are none, and the next cursor."""

    run_requests: list[dg.RunRequest] = field(default_factory=list)
    skip_reason: str | None = None
    cursor: CleanupCursor = field(default_factory=CleanupCursor)
    evaluation: Evaluation | None = None


def _live_namespaces(stores: Mapping[str, BranchStore]) -> set[Namespace]:
    live: set[Namespace] = set()
    for key, store in stores.items():
        try:
            live |= store.list_namespaces()
        except Exception as exc:  # any failure of a store means: decide nothing this tick
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            redact = getattr(store, "redact", None)  # stores that hold URLs hide their secrets
            if callable(redact):
                text = str(redact(text))
            raise DagsterBranchError(
                f"store {key!r} could not list its namespaces ({type(exc).__name__}: {text})"
            ) from exc
    return live


def _last_activity(
    stores: Mapping[str, BranchStore], namespaces: set[Namespace]
) -> dict[Namespace, datetime]:
    activity: dict[Namespace, datetime] = {}
    reporters = [s for s in stores.values() if isinstance(s, ReportsActivity)]
    for namespace in namespaces:
        times = [t for s in reporters if (t := s.last_activity_of(namespace)) is not None]
        if times:
            activity[namespace] = max(times)
    return activity


def evaluate_namespaces(
    stores: Mapping[str, BranchStore],
    source: PullRequestSource,
    *,
    now: datetime | None = None,
    cursor: str | None = None,
    grace_period: timedelta = DEFAULT_GRACE_PERIOD,
    stale_after: timedelta | None = None,
    deadline: float | None = None,
) -> Evaluation:
    """Live namespaces of ``stores``, their states from ``source``, and a decision for each.

    The sensor, the schedule and the ``orphans`` command all call this.

    Raises:
        DagsterBranchError: a store could not list its namespaces.
        SourceError: the source could not answer.
    """
    live = _live_namespaces(stores)
    if not live:
        return Evaluation(live=live, answer=SourceAnswer(states={}, cursor=cursor), decisions={})
    answer = source.states_of(live, cursor=cursor, deadline=deadline)
    current = now or datetime.now(timezone.utc)  # after the answer: sources stamp what they see
    activity: dict[Namespace, datetime] = {}
    if stale_after is not None:
        candidates = {
            ns for ns in live if ns not in answer.states or not answer.states[ns].is_finished
        }
        activity = _last_activity(stores, candidates)
    decisions = decide_all(
        live,
        answer,
        now=current,
        grace_period=grace_period,
        stale_after=stale_after,
        last_activity=activity,
    )
    return Evaluation(live=live, answer=answer, decisions=decisions)


def cleanup_run_key(namespace: Namespace, decision: Decision) -> str:
    """``cleanup:<namespace>:<ended at>``: one cleanup run per closing of a pull request (or
    per idle spell of a stale namespace). The format is unchanged since the field was called
    ``closed_at``, so runs requested before are still recognised."""
    if not decision.clean or decision.ended_at is None:
        raise ValueError(f"{namespace} is not to be cleaned: {decision.reason}")
    return f"cleanup:{namespace.key}:{decision.ended_at.isoformat()}"


def cleanup_run_request(
    namespace: Namespace, decision: Decision, *, run_key: str | None = None
) -> dg.RunRequest:
    """The run request for the cleanup job of ``namespace`` (run config on its ``plan`` op).

    ``run_key`` defaults to :func:`cleanup_run_key`; a retry passes its attempt's key.
    """
    base_key = cleanup_run_key(namespace, decision)
    config: dict[str, Any] = {"namespace": namespace.key}
    if not decision.requires_closed:  # stale: nothing is closed, the job must not insist
        config["require_closed"] = False
    tags = {TAG_NAMESPACE: namespace.key, TAG_STATE: _state_tag(decision)}
    if decision.state is not None and decision.state.number is not None:
        tags[TAG_PULL_REQUEST] = str(decision.state.number)
    return dg.RunRequest(
        run_key=run_key or base_key,
        run_config={"ops": {"plan": {"config": config}}},
        tags=tags,
    )


def _state_tag(decision: Decision) -> str:
    if decision.kind is DecisionKind.STALE or decision.state is None:
        return "stale"
    return decision.state.state.value


def _summary(evaluation: Evaluation, already: int) -> str:
    groups: dict[DecisionKind, list[str]] = {}
    for namespace, decision in evaluation.decisions.items():
        if not decision.clean:
            groups.setdefault(decision.kind, []).append(f"{namespace}: {decision.reason}")
    parts = [f"{len(evaluation.live)} live namespace(s), none to clean now"]
    if already:
        parts.append(f"{already} cleanup(s) already requested")
    for kind in (DecisionKind.WAITING, DecisionKind.UNKNOWN, DecisionKind.ACTIVE):
        lines = groups.get(kind, [])
        if lines:
            shown = "; ".join(lines[:EXAMPLES_SHOWN])
            more = (
                f"; and {len(lines) - EXAMPLES_SHOWN} more" if len(lines) > EXAMPLES_SHOWN else ""
            )
            parts.append(f"{len(lines)} {kind.value} ({shown}{more})")
    return ". ".join(parts) + "."


@dataclass(frozen=True)
class CleanupPolicy:
    """When a namespace is cleaned, and how often a cleanup is tried: one object for the sensor,
    the schedule and :func:`~dagster_branch.definitions.branch_cleanup_definitions`, so both
    triggers make the same decisions.

    Args:
        grace_period: wait this long after a pull request closes before cleaning.
        stale_after: also clean namespaces idle this long (open, or without a pull request);
            off when ``None``.
        time_budget_seconds: how long one tick may spend asking the source (keep it under
            Dagster's sensor timeout of 60 seconds).
        retry_after: how long after a cleanup run finished a namespace still live (the run
            failed, or a late branch run wrote again) is requested again.
        max_attempts: most cleanup runs per closing; then the tick logs that a person must look.

    Example::

        policy = CleanupPolicy(grace_period=timedelta(minutes=30), stale_after=timedelta(days=14))
        defs = branch_cleanup_definitions(stores=..., source=..., policy=policy)
    """

    grace_period: timedelta = DEFAULT_GRACE_PERIOD
    stale_after: timedelta | None = None
    time_budget_seconds: float = 40.0
    retry_after: timedelta = DEFAULT_RETRY_AFTER
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DagsterBranchConfigError(
                f"CleanupPolicy(max_attempts={self.max_attempts}) must be at least 1 (1: never "
                "request a second cleanup run)."
            )


DEFAULT_POLICY = CleanupPolicy()


def run_cleanup_tick(
    stores: Mapping[str, BranchStore],
    source: PullRequestSource,
    *,
    cursor: CleanupCursor,
    policy: CleanupPolicy = DEFAULT_POLICY,
    max_runs_per_tick: int = 10,
    now: datetime | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    previous_run: PreviousRunLookup | None = None,
) -> TickOutcome:
    """One tick of the sensor (or the schedule): decide, and build the run requests.

    With ``previous_run`` (the sensor passes a lookup on the Dagster instance), a namespace still
    live after its cleanup run finished is requested again after ``policy.retry_after``, up to
    ``policy.max_attempts`` runs per closing (see :mod:`dagster_branch.previous_runs`).
    """
    out = logger or log
    deadline = time.monotonic() + policy.time_budget_seconds
    try:
        evaluation = evaluate_namespaces(
            stores,
            source,
            now=now,
            cursor=cursor.source,
            grace_period=policy.grace_period,
            stale_after=policy.stale_after,
            deadline=deadline,
        )
    except SourceError as exc:
        reason = f"The pull request source could not answer, so nothing is cleaned now: {exc}"
        return TickOutcome(skip_reason=reason, cursor=cursor)
    except DagsterBranchError as exc:
        return TickOutcome(skip_reason=f"Nothing is cleaned now: {exc}", cursor=cursor)
    if not evaluation.live:
        keys = ", ".join(stores)
        reason = f"No branch namespace owns objects in {keys}: nothing to clean."
        return TickOutcome(skip_reason=reason, cursor=cursor, evaluation=evaluation)

    requested: dict[str, str] = {}
    run_requests: list[dg.RunRequest] = []
    already = 0
    cleanable = [(ns, d) for ns, d in evaluation.decisions.items() if d.clean]
    cleanable.sort(
        key=lambda item: (item[1].ended_at or datetime.max.replace(tzinfo=timezone.utc), item[0])
    )
    current = now or datetime.now(timezone.utc)
    for namespace, decision in cleanable:
        run_key = cleanup_run_key(namespace, decision)
        if previous_run is not None:
            follow = follow_up(
                run_key,
                previous_run(namespace),
                now=current,
                retry_after=policy.retry_after,
                max_attempts=policy.max_attempts,
            )
            if follow.run_key is None:
                if follow.gave_up:
                    out.warning("Not requesting cleanup of %s again: %s", namespace, follow.reason)
                requested[namespace.key] = cursor.requested.get(namespace.key, run_key)
                already += 1
                continue
            run_key = follow.run_key
        if cursor.requested.get(namespace.key) == run_key:
            requested[namespace.key] = run_key
            already += 1
            continue
        if len(run_requests) >= max_runs_per_tick:
            continue  # left for the next tick
        run_requests.append(cleanup_run_request(namespace, decision, run_key=run_key))
        requested[namespace.key] = run_key
        again = " again" if ATTEMPT_SEPARATOR in run_key else ""
        out.info("Requesting cleanup of %s%s: %s", namespace, again, decision.reason)
    unknown = [(ns, d) for ns, d in evaluation.decisions.items() if d.kind is DecisionKind.UNKNOWN]
    for namespace, decision in unknown[:EXAMPLES_SHOWN]:
        out.info("Keeping %s: %s", namespace, decision.reason)
    if len(unknown) > EXAMPLES_SHOWN:
        out.info(
            "Keeping %d more namespace(s) whose state is unknown", len(unknown) - EXAMPLES_SHOWN
        )
    waiting = len(cleanable) - already - len(run_requests)
    if waiting > 0:
        out.info(
            "%d more cleanup(s) wait for the next tick (max_runs_per_tick=%d)",
            waiting,
            max_runs_per_tick,
        )
    next_cursor = CleanupCursor(source=evaluation.answer.cursor, requested=requested)
    skip = None if run_requests else _summary(evaluation, already)
    return TickOutcome(
        run_requests=run_requests, skip_reason=skip, cursor=next_cursor, evaluation=evaluation
    )
