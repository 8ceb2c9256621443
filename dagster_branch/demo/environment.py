"""Deployment environments for the demo: the variables Dagster+ would set, one phase at a time.

Dagster+ configures a deployment only through environment variables, and dagster-branch reads
them when a resource is set up, so the demo plays production and two branch deployments in one
process by setting exactly those variables around each phase, and restoring the caller's after.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

from dagster_branch.errors import DagsterBranchError

__all__ = ["DemoError", "deployment_environment", "import_example_project"]

_DEPLOYMENT_PREFIXES = ("DAGSTER_CLOUD_", "DAGSTER_BRANCH_")


class DemoError(DagsterBranchError):
    """The demo could not run, or did not end as it should."""


@contextlib.contextmanager
def deployment_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Run the block with ``variables`` set and every other Dagster+ variable unset."""
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.startswith(_DEPLOYMENT_PREFIXES):
                del os.environ[name]
        os.environ.update(variables)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def import_example_project() -> ModuleType:
    """``example_project.definitions``, from the current folder or this checkout.

    The example project lives at the root of the repository and is not part of the installed
    package, so ``make demo`` (run from the root) or an editable install finds it.
    """
    here = Path(__file__).resolve().parents[2]
    for folder in (Path.cwd(), here):
        if (folder / "example_project" / "__init__.py").is_file() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("example_project.definitions")
    except ModuleNotFoundError as exc:
        if exc.name != "example_project":
            raise
        raise DemoError(
            "The demo plays the example project, which lives in the dagster-branch repository: "
            "run `make demo` (or `dagster-branch demo`) from the root of a clone."
        ) from exc
