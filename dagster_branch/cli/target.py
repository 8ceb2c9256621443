"""What a command acts on: the user's Definitions (``-m``/``-f``), its branch-aware resources,
and the namespace (``--namespace``, ``--pr`` or ``--branch``).

Resources are found by what they are, not by their key: every resource of the ``Definitions``
that is a :class:`~dagster_branch.inventory.BranchStore` is a store, and the one that is a
:class:`~dagster_branch.sources.base.PullRequestSource` is the source. They are initialised with
:func:`dagster.build_resources`, exactly as a run would (``EnvVar`` resolved, set-up and
tear-down run), and torn down when the command is done.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import dagster as dg

from dagster_branch.cli.loading import load_definitions
from dagster_branch.errors import DagsterBranchConfigError, DagsterBranchError
from dagster_branch.inventory import BranchStore
from dagster_branch.naming import Namespace
from dagster_branch.sources.base import PullRequestSource

__all__ = ["OpenedResources", "definitions_options", "namespace_options", "open_resources"]

F = TypeVar("F", bound=Callable[..., Any])


def definitions_options(command: F) -> F:
    """``-m MODULE`` / ``-f FILE``: where the production ``Definitions`` are."""
    command = click.option(
        "-f",
        "--python-file",
        "python_file",
        metavar="FILE",
        help="Python file declaring the Definitions (as with `dagster dev -f`).",
    )(command)
    return click.option(
        "-m",
        "--module-name",
        "module_name",
        metavar="MODULE",
        help="Module declaring the Definitions (as with `dagster dev -m`), e.g. example_project.",
    )(command)


def namespace_options(command: F) -> F:
    """``--namespace KEY`` / ``--pr NUMBER`` / ``--branch NAME``: which namespace."""
    command = click.option(
        "--branch", metavar="NAME", help="A branch without a pull request (br_ namespace)."
    )(command)
    command = click.option(
        "--pr", "pull_request", metavar="NUMBER", help="A pull request number: pr_<number>."
    )(command)
    return click.option(
        "--namespace",
        metavar="KEY",
        help="A namespace key, e.g. pr_42 or br_feature_x_1a2b3c4d5e6f7a8b.",
    )(command)


def load_target(module_name: str | None, python_file: str | None) -> dg.Definitions:
    """The Definitions, or a usage error saying what to pass."""
    if (module_name is None) == (python_file is None):
        raise click.UsageError("Give exactly one of -m MODULE or -f FILE.")
    return load_definitions(module=module_name, file=python_file)


def resolve_namespace(
    namespace: str | None, pull_request: str | None, branch: str | None
) -> Namespace:
    """The namespace named by exactly one of the three options, or a usage error."""
    given = [value for value in (namespace, pull_request, branch) if value is not None]
    if len(given) != 1:
        raise click.UsageError("Give exactly one of --namespace, --pr or --branch.")
    try:
        if namespace is not None:
            return Namespace.parse(namespace.strip())
        if pull_request is not None:
            return Namespace.for_pull_request(pull_request)
        return Namespace.for_branch(str(branch))
    except DagsterBranchError as exc:
        raise click.BadParameter(str(exc)) from None


@dataclass(frozen=True)
class OpenedResources:
    """The initialised stores (by resource key) and the pull request source, if any."""

    stores: Mapping[str, BranchStore]
    source: PullRequestSource | None
    source_key: str | None


def _branch_resources(defs: dg.Definitions) -> tuple[dict[str, Any], str | None]:
    raw: Mapping[str, Any] = defs.resources or {}
    wanted = {key: value for key, value in raw.items() if isinstance(value, BranchStore)}
    if not wanted:
        raise DagsterBranchConfigError(
            "These Definitions bind no branch-aware store: add a BranchDatabaseResource or a "
            "BranchS3Resource to their resources (see docs/getting-started.md)."
        )
    sources = sorted(key for key, value in raw.items() if isinstance(value, PullRequestSource))
    if len(sources) > 1:
        raise DagsterBranchConfigError(
            f"These Definitions bind {len(sources)} pull request sources ({', '.join(sources)}); "
            "keep one."
        )
    source_key = sources[0] if sources else None
    if source_key is not None:
        wanted[source_key] = raw[source_key]
    return wanted, source_key


@contextlib.contextmanager
def open_resources(defs: dg.Definitions) -> Iterator[OpenedResources]:
    """Initialise the branch-aware resources of ``defs`` for the duration of the block."""
    wanted, source_key = _branch_resources(defs)
    try:
        with dg.build_resources(wanted) as built:
            stores = {key: getattr(built, key) for key in wanted if key != source_key}
            source = getattr(built, source_key) if source_key else None
            yield OpenedResources(stores=stores, source=source, source_key=source_key)
    except dg.DagsterInvalidConfigError as exc:
        # Typically an EnvVar that is not set; Dagster's message names it, never its value.
        raise DagsterBranchConfigError(
            f"The resources could not be configured: {_config_problems(exc)}"
        ) from exc


_UNSET_VARIABLE = re.compile(r'environment variable "([^"]+)" which is not set')


def _config_problems(exc: dg.DagsterInvalidConfigError) -> str:
    """Dagster's config errors in one line: no stack traces, unset variables by name."""
    unset: list[str] = []
    other: list[str] = []
    for error in exc.errors:
        message = error.message.split("Stack Trace:", 1)[0]
        if match := _UNSET_VARIABLE.search(message):
            unset.append(match.group(1))
        else:
            other.append(" ".join(message.split()))
    if unset:
        names = ", ".join(dict.fromkeys(unset))
        other.insert(0, f"the environment variable(s) {names} are not set: set them and retry")
    return "; ".join(other) or str(exc)
