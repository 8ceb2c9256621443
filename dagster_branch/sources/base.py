"""What every pull-request state source answers, whatever the Git host.

A source tells, for a namespace, whether its pull request (or branch) is open, closed or merged.
Sources fail closed: when they cannot give a trustworthy answer they raise
:class:`~dagster_branch.errors.SourceError`; they never guess "closed".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from dagster_branch.naming import Namespace
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus

__all__ = ["PullRequestSource", "PullRequestState", "PullRequestStatus", "SourceAnswer"]


class SourceAnswer(BaseModel):
    """A source's answer for a batch of namespaces, plus the cursor to send next time.

    ``states`` maps each namespace the source could resolve to its PR; ``unknown`` lists the
    namespaces it could not (with the reason), which the caller must not clean.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    states: Mapping[Namespace, PullRequestState]
    unknown: Mapping[Namespace, str] = {}
    cursor: str | None = None
    requests: int = 0


@runtime_checkable
class PullRequestSource(Protocol):
    """The small interface the sensor, the cleanup job and the CLI share."""

    def states_of(
        self, namespaces: Collection[Namespace], *, cursor: str | None = None
    ) -> SourceAnswer:
        """The current state of each namespace's PR; cheap when nothing changed since ``cursor``.

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
