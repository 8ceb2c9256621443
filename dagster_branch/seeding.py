"""Seeding a branch from production: copies of the tables listed in ``seed_tables``.

The first time a branch deployment uses its namespace (:meth:`BranchDatabaseResource.
ensure_namespace`), each listed production table the branch does not have yet is copied into it:
``CREATE TABLE … CLONE`` on Snowflake and BigQuery (zero-copy: metadata only, storage shared until
either side changes), ``CREATE TABLE … AS SELECT *`` elsewhere (the data is copied). A table the
branch already has, seeded or written by the branch, is never copied over. Production is only
read.

Cost, per table: the copy statement plus one ``SELECT COUNT(*)`` on the new table (answered from
metadata on Snowflake and BigQuery), and one catalog query per listed table to see what exists.
Each copy is logged with its rows and seconds, and reported as materialization metadata
(:func:`seed_metadata`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import dagster as dg
import sqlalchemy as sa

from dagster_branch.dialects import DialectCapabilities, copy_table_ddl
from dagster_branch.errors import DagsterBranchError
from dagster_branch.ledger import db_error_text

__all__ = ["SeedRequest", "SeededTable", "seed_metadata", "seed_tables"]

SeedMethod = Literal["clone", "copy", "kept", "missing"]


@dataclass(frozen=True)
class SeedRequest:
    """One table to seed: where production has it, and where the branch gets it."""

    source: tuple[str, str]
    """(schema, table) in production."""
    target: tuple[str, str]
    """(schema, table) in the branch's namespace."""


@dataclass(frozen=True)
class SeededTable:
    """What seeding did with one table.

    ``method``: ``clone`` (zero-copy), ``copy`` (data copied), ``kept`` (the branch already had
    the table: nothing copied over it) or ``missing`` (production has no such table).
    """

    source: str
    target: str
    method: SeedMethod
    rows: int | None = None
    seconds: float = 0.0


def _name(parts: tuple[str, str]) -> str:
    return f"{parts[0]}.{parts[1]}"


def _exists(conn: sa.Connection, parts: tuple[str, str]) -> bool:
    return bool(sa.inspect(conn).has_table(parts[1], schema=parts[0]))


def seed_tables(
    engine: sa.Engine,
    caps: DialectCapabilities,
    requests: Sequence[SeedRequest],
    *,
    log: logging.Logger,
    redact: Callable[[str], str],
) -> list[SeededTable]:
    """Copy each requested production table the branch does not have yet.

    Raises:
        DagsterBranchError: a copy failed (typically: the branch role may not read production);
            tables copied before it stay, and the next run copies the rest.
    """
    results: list[SeededTable] = []
    for request in requests:
        source, target = _name(request.source), _name(request.target)
        with engine.connect() as conn:
            if _exists(conn, request.target):
                log.info("Seeding: %s already exists in the branch; not copied over", target)
                results.append(SeededTable(source, target, "kept"))
                continue
            if not _exists(conn, request.source):
                log.warning("Seeding: production has no table %s; nothing copied", source)
                results.append(SeededTable(source, target, "missing"))
                continue
        results.append(_copy(engine, caps, request, log=log, redact=redact))
    return results


def _copy(
    engine: sa.Engine,
    caps: DialectCapabilities,
    request: SeedRequest,
    *,
    log: logging.Logger,
    redact: Callable[[str], str],
) -> SeededTable:
    source, target = _name(request.source), _name(request.target)
    method: SeedMethod = "clone" if caps.clone_tables else "copy"
    started = time.monotonic()
    count = sa.select(sa.func.count()).select_from(
        sa.table(request.target[1], schema=request.target[0])
    )
    try:
        with engine.begin() as conn:
            conn.execute(copy_table_ddl(caps, request.target, request.source))
            rows = int(conn.execute(count).scalar_one())
    except sa.exc.SQLAlchemyError as exc:
        with engine.connect() as conn:
            if _exists(conn, request.target):  # a concurrent run of this branch seeded it first
                return SeededTable(source, target, "kept")
        raise DagsterBranchError(
            f"Could not seed {target} from production's {source}: "
            f"{redact(db_error_text(exc))}. Give the branch role SELECT on {source}, or remove "
            "the table from seed_tables."
        ) from exc
    seconds = time.monotonic() - started
    log.info(
        "Seeded %s from %s by %s: %d rows in %.2f s (%s)",
        target,
        source,
        method,
        rows,
        seconds,
        "zero-copy: metadata only" if method == "clone" else "data copied",
    )
    return SeededTable(source, target, method, rows, seconds)


def seed_metadata(seeded: Sequence[SeededTable]) -> dict[str, dg.MetadataValue]:
    """Materialization metadata for a seeding: one row per table, total rows and seconds."""
    if not seeded:
        return {}
    columns = [
        dg.TableColumn("table", "string"),
        dg.TableColumn("source", "string"),
        dg.TableColumn("method", "string"),
        dg.TableColumn("rows", "int"),
        dg.TableColumn("seconds", "float"),
    ]
    records = [
        dg.TableRecord(
            {
                "table": s.target,
                "source": s.source,
                "method": s.method,
                "rows": s.rows if s.rows is not None else 0,
                "seconds": round(s.seconds, 3),
            }
        )
        for s in seeded
    ]
    return {
        "dagster_branch/seeded": dg.MetadataValue.table(records, dg.TableSchema(columns)),
        "dagster_branch/seeded_rows": dg.MetadataValue.int(sum(s.rows or 0 for s in seeded)),
        "dagster_branch/seed_seconds": dg.MetadataValue.float(
            round(sum(s.seconds for s in seeded), 3)
        ),
    }
