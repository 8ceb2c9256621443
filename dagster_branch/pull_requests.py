"""The state of a pull request, as the deployment saw it or as the Git host reports it now."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict

__all__ = ["PullRequestState", "PullRequestStatus"]


class PullRequestStatus(str, Enum):
    """Open, closed or merged: for a pull request, a GitLab merge request, or a bare branch."""

    OPEN = "open"
    CLOSED = "closed"
    MERGED = "merged"


class PullRequestState(BaseModel):
    """One pull request as a source reports it.

    Example::

        >>> PullRequestState(number=42, state="merged").is_finished
        True
    """

    model_config = ConfigDict(frozen=True)

    number: int | None = None
    state: PullRequestStatus
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    merged_at: datetime | None = None
    head_branch: str | None = None
    url: str | None = None

    @property
    def is_finished(self) -> bool:
        """Closed or merged: the branch's objects may be cleaned (after the grace period)."""
        return self.state is not PullRequestStatus.OPEN

    @property
    def finished_at(self) -> datetime | None:
        """When the PR was merged or closed, whichever the host reports."""
        return self.merged_at or self.closed_at
