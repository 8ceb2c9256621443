"""Exit codes of ``dagster-branch`` and the one place errors become messages and codes.

=====  ==========================================================================================
code   meaning
=====  ==========================================================================================
0      done (also: nothing to clean, or a dry run)
1      error: configuration, a store or the pull request source failed, or the user declined
2      usage error: a missing or conflicting option, a malformed namespace or PR number
3      the cleanup was refused by verification (PR still open, protected or foreign object,
       too many objects): nothing was removed
4      the cleanup is incomplete: some objects could not be removed; run it again to retry them
=====  ==========================================================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dagster_branch.errors import (
    CleanupIncompleteError,
    CleanupRefusedError,
    DagsterBranchError,
)

__all__ = [
    "EXIT_ERROR",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "CommandFailed",
    "failure",
    "reports_errors",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_INCOMPLETE = 4

F = TypeVar("F", bound=Callable[..., Any])


class CommandFailed(click.ClickException):
    """A failure printed as ``Error: <message>``; build one with :func:`failure`."""

    exit_code = EXIT_ERROR


class _Refused(CommandFailed):
    exit_code = EXIT_REFUSED


class _Incomplete(CommandFailed):
    exit_code = EXIT_INCOMPLETE


class _Usage(CommandFailed):
    exit_code = EXIT_USAGE


_BY_CODE: dict[int, type[CommandFailed]] = {
    EXIT_ERROR: CommandFailed,
    EXIT_USAGE: _Usage,
    EXIT_REFUSED: _Refused,
    EXIT_INCOMPLETE: _Incomplete,
}


def failure(message: str, exit_code: int = EXIT_ERROR) -> CommandFailed:
    """An error that prints ``message`` and exits with ``exit_code``."""
    return _BY_CODE.get(exit_code, CommandFailed)(message)


def exit_code_for(exc: DagsterBranchError) -> int:
    """The exit code of a library error."""
    if isinstance(exc, CleanupRefusedError):
        return EXIT_REFUSED
    if isinstance(exc, CleanupIncompleteError):
        return EXIT_INCOMPLETE
    return EXIT_ERROR


def reports_errors(command: F) -> F:
    """Turn library errors into ``Error: …`` and their exit code, without a traceback.

    Library messages name the object and the fix, and never hold secrets (docs/safety.md,
    promise 7), so they are printed as they are. Anything else is a bug and keeps its traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DagsterBranchError as exc:
            raise failure(str(exc), exit_code_for(exc)) from exc

    return wrapper  # type: ignore[return-value]
