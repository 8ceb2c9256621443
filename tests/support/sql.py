"""Plain SQL on a test database, with an engine of its own (never the resource under test)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa


def execute(url: str, *statements: str, connect_args: Mapping[str, Any] | None = None) -> None:
    """Run ``statements`` in one transaction on the database at ``url`` (``connect_args`` go to
    the driver, as Snowflake's account and credentials do)."""
    engine = sa.create_engine(url, connect_args=dict(connect_args or {}))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows ``sql`` returns on the database at ``url``, as tuples."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()
