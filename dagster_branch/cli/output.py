"""Plain-text tables and JSON for the command line: readable in a terminal and in CI logs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["echo_json", "format_table"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header.

    Example::

        >>> print(format_table(["a", "bb"], [["x", 1]]))
        a  bb
        -  --
        x  1
    """
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.ljust(width) for value, width in zip(values, widths, strict=True)
        ).rstrip()

    rule = ["-" * width for width in widths]
    return "\n".join([line(list(headers)), line(rule), *(line(row) for row in cells)])


def echo_json(payload: Any) -> None:
    """Print ``payload`` as indented JSON (dates and other objects as strings)."""
    click.echo(json.dumps(payload, indent=2, default=str, sort_keys=False))
