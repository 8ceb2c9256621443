"""A Dagster project that uses dagster-branch the recommended way.

Run it with ``dagster dev -m example_project`` or
``dagster asset materialize -m example_project --select '*'``; configure it with environment
variables only (see :mod:`example_project.resources`).
"""

from example_project.definitions import build_definitions

defs = build_definitions()

__all__ = ["build_definitions", "defs"]
