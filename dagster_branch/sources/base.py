"""What every pull-request state source answers, whatever the Git host.

A source tells, for a namespace, whether its pull request (or branch) is open, closed or merged.
Sources fail closed: when they cannot give a trustworthy answer they raise
:class:`~dagster_branch.errors.SourceError`; they never guess "closed".
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import ClassVar, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from dagster_branch.errors import DagsterBranchConfigError
from dagster_branch.naming import Namespace
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus

__all__ = [
    "PullRequestSource",
    "PullRequestState",
    "PullRequestStatus",
    "SourceAnswer",
    "SourceCursor",
    "require_source",
]

log = logging.getLogger(__name__)

_Cursor = TypeVar("_Cursor", bound="SourceCursor")


class SourceAnswer(BaseModel):
    """A source's answer for a batch of namespaces, plus the cursor to send next time.

    Every namespace asked about lands in exactly one of three places:

    - ``states``: the namespace's pull request (or branch) and its state;
    - ``without_pull_request``: the source is sure no pull request exists for it (developer
      namespaces, or a branch no pull request was ever opened from);
    - ``unknown``: the source could not tell, with the reason. The caller must not clean these.

    A namespace missing from all three counts as unknown. ``requests`` is how many requests the
    source sent to answer; ``cursor`` is what to pass back next time (opaque to the caller).

    Example::

        >>> answer = SourceAnswer(states={}, unknown={Namespace.parse("pr_7"): "not found"})
        >>> answer.reason_unknown(Namespace.parse("pr_7"))
        'not found'
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    states: Mapping[Namespace, PullRequestState]
    unknown: Mapping[Namespace, str] = {}
    without_pull_request: frozenset[Namespace] = frozenset()
    cursor: str | None = None
    requests: int = 0

    def reason_unknown(self, namespace: Namespace) -> str | None:
        """Why the source could not tell ``namespace``'s state, or ``None`` when it could."""
        if namespace in self.states or namespace in self.without_pull_request:
            return None
        return self.unknown.get(namespace, "the source gave no answer for this namespace")


class SourceCursor(BaseModel):
    """What a source remembers between calls, tied to the configuration that wrote it.

    ``identity`` names the repository (or endpoint) the cursor describes: a cursor written for
    another one is ignored, so pointing a source elsewhere never reuses stale answers. Subclasses
    add their own fields, each with a default, so a fresh cursor needs only the identity.
    """

    kind: ClassVar[str] = "source"  # names the source in the log line of an unreadable cursor

    version: Literal[1] = 1
    identity: str

    @classmethod
    def load(cls: type[_Cursor], cursor: str | None, identity: str) -> _Cursor:
        """The stored cursor, or a fresh one when it is absent, unreadable or for another
        ``identity`` (the source then reads afresh: nothing is lost, it costs requests)."""
        if cursor:
            try:
                loaded = cls.model_validate_json(cursor)
            except ValidationError as exc:
                log.warning(
                    "Ignoring an unreadable %s cursor (%d errors)", cls.kind, exc.error_count()
                )
            else:
                if loaded.identity == identity:
                    return loaded
                log.info("The %s changed; starting from a fresh cursor", cls.kind)
        return cls(identity=identity)


@runtime_checkable
class PullRequestSource(Protocol):
    """The small interface the sensor, the cleanup job and the CLI share."""

    def states_of(
        self,
        namespaces: Collection[Namespace],
        *,
        cursor: str | None = None,
        deadline: float | None = None,
    ) -> SourceAnswer:
        """The current state of each namespace's PR; cheap when nothing changed since ``cursor``.

        ``deadline`` (a :func:`time.monotonic` instant) bounds the work: a source that runs out
        of time answers what it knows and lists the rest as unknown, so the next call continues.

        Raises:
            SourceError: the source could not answer at all (network, rate limit, bad JSON).
        """
        ...

    def state_of(self, namespace: Namespace) -> PullRequestState | None:
        """The state of one namespace's PR, asked fresh (no cache); ``None`` when unknown.

        Raises:
            SourceError: the source could not answer.
        """
        ...


def require_source(value: object, where: str) -> PullRequestSource:
    """``value`` as a :class:`PullRequestSource`, or a configuration error naming ``where``.

    Args:
        value: what was bound, e.g. a resource read from a context.
        where: names the place in the message, e.g. ``"The resource 'pull_requests'"``.

    Raises:
        DagsterBranchConfigError: ``value`` lacks ``states_of`` and ``state_of``.
    """
    if not isinstance(value, PullRequestSource):
        raise DagsterBranchConfigError(
            f"{where} is a {type(value).__name__}, not a pull request source (it needs "
            "states_of and state_of): bind GitHubPullRequests, GitLabMergeRequests, "
            "DagsterPlusBranchDeployments or GitRemoteBranches there."
        )
    return value
