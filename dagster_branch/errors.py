"""Errors raised by dagster-branch.

Every error derives from one root, so callers can catch the library as a whole::

    DagsterBranchError
     ├── DagsterBranchConfigError        bad environment variable or resource configuration
     ├── DagsterBranchNamingError        a name that cannot be built or parsed safely
     ├── NamespaceViolationError         a write or drop outside the deployment's own namespace
 │    └── OwnershipConflictError     the name is already recorded by another owner
     ├── SourceError                     a PR state source could not give a trustworthy answer
     │    ├── SourceUnavailableError     network error, timeout, 5xx
     │    ├── RateLimitedError           the Git host asked us to wait
     │    └── UnexpectedResponseError    an answer we could not parse (fail closed)
     └── CleanupError                   the cleanup refused to run, or some removals failed
          ├── CleanupRefusedError       verification failed: nothing was removed
          └── CleanupIncompleteError    some objects could not be removed: rerun to retry them

Lower-level errors (boto3, SQLAlchemy, HTTP) are mapped at the boundary with ``raise … from exc``.
Messages name the object concerned and say what to do next; they never contain secrets.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CleanupError",
    "CleanupIncompleteError",
    "CleanupRefusedError",
    "DagsterBranchConfigError",
    "DagsterBranchError",
    "DagsterBranchNamingError",
    "NamespaceViolationError",
    "OwnershipConflictError",
    "RateLimitedError",
    "SourceError",
    "SourceUnavailableError",
    "UnexpectedResponseError",
]


class DagsterBranchError(Exception):
    """Root of every error raised by dagster-branch."""


class DagsterBranchConfigError(DagsterBranchError, ValueError):
    """An environment variable or a resource field holds a value we cannot use."""

    @classmethod
    def for_variable(cls, variable: str, value: str, expected: str) -> DagsterBranchConfigError:
        """Build the standard message for a malformed environment variable."""
        shown = value if len(value) <= 80 else value[:77] + "..."
        return cls(f"{variable}={shown!r} is not valid: expected {expected}.")


class DagsterBranchNamingError(DagsterBranchError, ValueError):
    """A backend name could not be built, or a name does not parse back to a namespace."""


class NamespaceViolationError(DagsterBranchError):
    """A resource was asked to create, change or drop something outside its own namespace."""


class OwnershipConflictError(NamespaceViolationError):
    """A branch would write into a name another owner (code location, repository) recorded."""


class SourceError(DagsterBranchError):
    """A pull-request state source gave no trustworthy answer; cleanup must not proceed."""


class SourceUnavailableError(SourceError):
    """The source could not be reached (connection error, timeout, 5xx)."""


class RateLimitedError(SourceError):
    """The source rate-limited us; ``retry_after`` says how long it asked us to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnexpectedResponseError(SourceError):
    """The source answered with something we could not parse."""


class CleanupError(DagsterBranchError):
    """Base class of cleanup failures."""


class CleanupRefusedError(CleanupError):
    """Verification refused the cleanup: nothing was removed."""


class CleanupIncompleteError(CleanupError):
    """Some objects could not be removed; the ledger keeps them so the next run retries."""

    def __init__(self, failures: Sequence[str]) -> None:
        self.failures = list(failures)
        lines = "\n".join(f"  - {failure}" for failure in self.failures)
        super().__init__(
            f"{len(self.failures)} object(s) could not be removed; run the cleanup again "
            f"to retry only these:\n{lines}"
        )
