"""Should this namespace be cleaned now, and why: one pure function for every caller.

The cleanup sensor, the nightly schedule, the ``dagster-branch orphans`` command and a CI job on
``pull_request: closed`` all decide with :func:`should_clean`, so they always agree. It does no
I/O: the caller brings the pull request's state (from a source, or from the CI event) and the
current time.

The rules, in order:

1. A closed or merged pull request is cleaned once ``grace_period`` has passed since it closed
   (a last deployment may still be writing right after the merge).
2. An open pull request is kept, unless ``stale_after`` is set and it has been untouched that long.
3. A namespace without a pull request (a developer's, or a branch nobody opened one for) is kept,
   unless ``stale_after`` is set and its last known activity is that old.
4. Anything uncertain keeps the namespace: a ``pr_`` namespace whose pull request was not found,
   a closing time or an activity time that is unknown, a state that names another pull request.

Example::

    >>> from datetime import datetime, timedelta, timezone
    >>> now = datetime(2024, 8, 28, 12, 0, tzinfo=timezone.utc)
    >>> merged = PullRequestState(number=42, state="merged", merged_at=now - timedelta(hours=1))
    >>> should_clean(Namespace.parse("pr_42"), merged, now=now).clean
    True
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from dagster_branch.naming import Namespace
from dagster_branch.pull_requests import PullRequestState
from dagster_branch.sources.base import SourceAnswer

__all__ = ["DEFAULT_GRACE_PERIOD", "Decision", "DecisionKind", "decide_all", "should_clean"]

DEFAULT_GRACE_PERIOD = timedelta(minutes=10)


class DecisionKind(str, Enum):
    """Why a namespace is cleaned or kept, as a short machine-readable word."""

    FINISHED = "finished"  # clean: the pull request is closed or merged, grace period over
    STALE = "stale"  # clean: open or without a pull request, and idle past stale_after
    WAITING = "waiting"  # keep for now: closed, but within the grace period
    ACTIVE = "active"  # keep: open (or without a pull request) and not stale
    UNKNOWN = "unknown"  # keep: the state could not be established


@dataclass(frozen=True)
class Decision:
    """The answer for one namespace.

    Attributes:
        clean: whether the namespace should be cleaned now.
        reason: one readable sentence saying why.
        ended_at: when the namespace's work ended: the pull request's closing (or merge)
            time, or for a stale namespace its last activity (the time it went idle, not a
            closing). Stable between calls, so it keys the run.
        kind: the rule that decided.
        state: the pull request state the decision was made from, if any.
    """

    clean: bool
    reason: str
    ended_at: datetime | None = None
    kind: DecisionKind = DecisionKind.UNKNOWN
    state: PullRequestState | None = None

    @property
    def requires_closed(self) -> bool:
        """Whether the cleanup job should re-check the pull request is closed before deleting.

        True for finished pull requests; a stale namespace is cleaned although nothing is closed.
        """
        return self.kind is not DecisionKind.STALE


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future (clock skew?)"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return f"{seconds} seconds ago"


def _label(state: PullRequestState) -> str:
    return f"pull request #{state.number}" if state.number is not None else "the branch"


def should_clean(
    namespace: Namespace,
    state: PullRequestState | None,
    *,
    now: datetime,
    grace_period: timedelta = DEFAULT_GRACE_PERIOD,
    stale_after: timedelta | None = None,
    last_activity: datetime | None = None,
) -> Decision:
    """Decide whether ``namespace`` should be cleaned at ``now``; see the module docstring.

    Args:
        namespace: the namespace in question.
        state: its pull request's state, or ``None`` when it has no pull request.
        now: the current time (timezone-aware).
        grace_period: how long after closing to wait before cleaning.
        stale_after: clean open or pull-request-less namespaces idle this long; off when None.
        last_activity: the latest known write to the namespace, when a store can tell.
    """
    if state is None:
        return _without_pull_request(namespace, now, stale_after, last_activity)
    expected = namespace.pull_request_id
    if expected is not None and str(state.number) != expected:
        return Decision(
            False,
            f"the source answered with pull request #{state.number} for {namespace}; not "
            "cleaning on a mismatched answer",
            state=state,
        )
    label = _label(state)
    if state.is_finished:
        finished_at = state.finished_at
        if finished_at is None:
            return Decision(
                False,
                f"{label} is {state.state.value} but the source gave no closing time; not "
                "cleaning without knowing the grace period has passed",
                state=state,
            )
        ready_at = finished_at + grace_period
        if now < ready_at:
            return Decision(
                False,
                f"{label} was {state.state.value} {_ago(now - finished_at)}; waiting for the "
                f"grace period of {grace_period} (until {ready_at.isoformat()})",
                ended_at=finished_at,
                kind=DecisionKind.WAITING,
                state=state,
            )
        return Decision(
            True,
            f"{label} was {state.state.value} {_ago(now - finished_at)}",
            ended_at=finished_at,
            kind=DecisionKind.FINISHED,
            state=state,
        )
    activity = max((t for t in (state.updated_at, last_activity) if t is not None), default=None)
    if stale_after is not None and activity is not None and now - activity >= stale_after:
        return Decision(
            True,
            f"{label} is open but untouched since {activity.isoformat()} "
            f"({_ago(now - activity)}; stale after {stale_after})",
            ended_at=activity,
            kind=DecisionKind.STALE,
            state=state,
        )
    return Decision(False, f"{label} is open", kind=DecisionKind.ACTIVE, state=state)


def _without_pull_request(
    namespace: Namespace,
    now: datetime,
    stale_after: timedelta | None,
    last_activity: datetime | None,
) -> Decision:
    if namespace.pull_request_id is not None:
        return Decision(
            False,
            f"no pull request #{namespace.pull_request_id} was found; a pull request namespace "
            "is never cleaned without its pull request's word",
        )
    if stale_after is None:
        return Decision(
            False,
            "it has no pull request; set stale_after to clean such namespaces once idle",
            kind=DecisionKind.ACTIVE,
        )
    if last_activity is None:
        return Decision(
            False,
            "it has no pull request and no store reports when it was last written; not "
            "cleaning on an unknown age",
        )
    if now - last_activity < stale_after:
        return Decision(
            False,
            f"it has no pull request and was last written {_ago(now - last_activity)} "
            f"(stale after {stale_after})",
            kind=DecisionKind.ACTIVE,
        )
    return Decision(
        True,
        f"it has no pull request and was last written {_ago(now - last_activity)} "
        f"(stale after {stale_after})",
        ended_at=last_activity,
        kind=DecisionKind.STALE,
    )


def decide_all(
    namespaces: Collection[Namespace],
    answer: SourceAnswer,
    *,
    now: datetime,
    grace_period: timedelta = DEFAULT_GRACE_PERIOD,
    stale_after: timedelta | None = None,
    last_activity: Mapping[Namespace, datetime] | None = None,
) -> dict[Namespace, Decision]:
    """:func:`should_clean` for every namespace of a source's answer, unknown ones kept."""
    activity = last_activity or {}
    decisions: dict[Namespace, Decision] = {}
    for namespace in sorted(namespaces):
        reason = answer.reason_unknown(namespace)
        if reason is not None:
            decisions[namespace] = Decision(False, f"state unknown: {reason}")
            continue
        decisions[namespace] = should_clean(
            namespace,
            answer.states.get(namespace),
            now=now,
            grace_period=grace_period,
            stale_after=stale_after,
            last_activity=activity.get(namespace),
        )
    return decisions
