"""A Dagster project that uses dagster-branch the recommended way.

Run it with ``dagster dev -m example_project`` or
``dagster asset materialize -m example_project --select '*'``; configure it with environment
variables only (see :mod:`example_project.resources`).
"""

import dagster as dg

from example_project.definitions import build_definitions

__all__ = ["build_definitions", "defs"]


def __getattr__(name: str) -> dg.Definitions:
    # ``defs`` is built when Dagster first reads it, not when the package is imported: importing
    # a submodule (``python -m example_project.demo``) must not prepare the dbt project or read
    # the environment before the caller has set the deployment's variables.
    if name != "defs":
        raise AttributeError(f"module 'example_project' has no attribute {name!r}")
    value = globals()["defs"] = build_definitions()
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), "defs"})
