"""Benchmark 3: removing a branch schema with 300 tables, on PostgreSQL and DuckDB.

Each run seeds a fresh branch namespace the way a branch deployment does
(``BranchDatabaseResource.ensure_namespace()``, then 300 tables of 10 rows in the branch
schema), next to a production schema that must survive, and removes it with one contender:

- **dagster-branch (drop step)**: the cleanup job's removal as the job calls it:
  ``objects_of(namespace)`` (ledger plus discovery) then ``remove_objects(...)`` (one
  ``DROP SCHEMA … CASCADE`` where the dialect has it, ledger rows marked dropped);
- **dagster-branch (whole job)**: ``build_branch_cleanup_job`` run with ``execute_in_process``:
  plan, verify, drop, record, with Dagster's own run overhead;
- **table by table**: the hand-written script: list the tables, ``DROP TABLE`` each, then
  ``DROP SCHEMA``, in one transaction.

Statements are counted with a SQLAlchemy ``before_cursor_execute`` listener on every engine of
the process (an observation hook: it changes nothing), so catalog queries and ledger writes count
as well as the drops. The PostgreSQL server is a throwaway cluster on loopback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Stopwatch,
    Table,
    base_parser,
    emit,
    local_postgres,
    median,
    progress,
    ratio,
    scratch_dir,
    seconds,
)

from dagster_branch.cleanup.job import build_branch_cleanup_job
from dagster_branch.naming import Namespace
from dagster_branch.resources.database import BranchDatabaseResource
from dagster_branch.testing import deployment_env

BASE = "analytics"


class StatementCounter:
    """Counts statements sent to one warehouse by any SQLAlchemy engine, while active.

    Dagster's own instance storage also speaks SQLAlchemy (SQLite); only statements to the
    benchmark's warehouse database count.
    """

    def __init__(self) -> None:
        self.count = 0
        self.database: str | None = None

    def __call__(self, conn: sa.Connection, *args: Any) -> None:
        if self.database is not None and conn.engine.url.database == self.database:
            self.count += 1

    @contextlib.contextmanager
    def counting(self, url: str) -> Iterator[None]:
        self.count, self.database = 0, sa.make_url(url).database
        try:
            yield
        finally:
            self.database = None


COUNTER = StatementCounter()
sa.event.listen(sa.Engine, "before_cursor_execute", COUNTER)


def seed_branch(url: str, number: int, tables: int) -> str:
    """A branch deployment's first run: its schema, then ``tables`` tables of 10 rows."""
    with deployment_env("branch", pr=number, branch=f"feature/change-{number}"):
        resource = BranchDatabaseResource(url=url, base_schema=BASE)
        try:
            resource.ensure_namespace()
            schema = resource.target_schema
            preparer = resource.get_engine().dialect.identifier_preparer
            with resource.get_engine().begin() as conn:
                for i in range(tables):
                    name = f"{preparer.quote_schema(schema)}.{preparer.quote(f'model_{i:03d}')}"
                    conn.execute(sa.text(f"CREATE TABLE {name} (id INTEGER, label VARCHAR(20))"))
                    conn.execute(
                        sa.text(f"INSERT INTO {name} VALUES " + ", ".join(
                            f"({n}, 'row {n}')" for n in range(10)
                        ))
                    )  # fmt: skip
        finally:
            resource.close()
    return schema


def seed_branch_fast(url: str, number: int, tables: int) -> str:
    """Like :func:`seed_branch`, with empty tables created in one round trip (for scale)."""
    with deployment_env("branch", pr=number, branch=f"feature/change-{number}"):
        resource = BranchDatabaseResource(url=url, base_schema=BASE)
        try:
            resource.ensure_namespace()
            schema = resource.target_schema
            quoted = resource.get_engine().dialect.identifier_preparer.quote_schema(schema)
            with resource.get_engine().begin() as conn:
                conn.exec_driver_sql(
                    "; ".join(
                        f"CREATE TABLE {quoted}.model_{i:03d} (id INTEGER, label VARCHAR(20))"
                        for i in range(tables)
                    )
                )
        finally:
            resource.close()
    return schema


def seed_production(url: str) -> None:
    with deployment_env("production"):
        resource = BranchDatabaseResource(url=url, base_schema=BASE)
        try:
            resource.ensure_namespace()
            location = resource.table("orders")
            with resource.get_engine().begin() as conn:
                conn.execute(sa.text(f"CREATE TABLE IF NOT EXISTS {location.quoted} (id INTEGER)"))
                conn.execute(sa.text(f"INSERT INTO {location.quoted} VALUES (1), (2), (3)"))
        finally:
            resource.close()


def schema_exists(url: str, schema: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(sa.inspect(conn).has_schema(schema))
    finally:
        engine.dispose()


def production_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {BASE}.orders")).scalar_one())
    finally:
        engine.dispose()


# -- the contenders -----------------------------------------------------------------------------

QUIET = logging.getLogger("bench.warehouse")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def drop_step(url: str, number: int, schema: str) -> None:
    with deployment_env("production"):
        resource = BranchDatabaseResource(url=url, base_schema=BASE)
        try:
            objects = resource.objects_of(Namespace.for_pull_request(number))
            results = resource.remove_objects(objects, dry_run=False, log=QUIET)
        finally:
            resource.close()
    if not results or not all(r.removed for r in results):
        raise RuntimeError(f"the drop step did not remove everything: {results}")


CLEANUP_JOB = build_branch_cleanup_job(store_keys=("warehouse",), source_key=None)


def whole_job(url: str, number: int, schema: str) -> None:
    run_config = {
        "ops": {
            "plan": {"config": {"namespace": f"pr_{number}", "require_closed": False}},
        }
    }
    with deployment_env("production"), contextlib.redirect_stderr(io.StringIO()):
        result = CLEANUP_JOB.execute_in_process(
            run_config=run_config,
            resources={"warehouse": BranchDatabaseResource(url=url, base_schema=BASE)},
            raise_on_error=False,
        )
    if not result.success:
        raise RuntimeError("the cleanup job failed")


def table_by_table(url: str, number: int, schema: str) -> None:
    """The hand-written script."""
    engine = sa.create_engine(url)
    try:
        preparer = engine.dialect.identifier_preparer
        with engine.begin() as conn:
            for table in sa.inspect(conn).get_table_names(schema=schema):
                conn.execute(
                    sa.text(
                        f"DROP TABLE IF EXISTS {preparer.quote_schema(schema)}."
                        f"{preparer.quote(table)}"
                    )
                )
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {preparer.quote_schema(schema)}"))
    finally:
        engine.dispose()


@dataclass
class Contender:
    name: str
    run: Callable[[str, int, str], None]
    walls: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    gone: list[bool] = field(default_factory=list)
    production_intact: list[bool] = field(default_factory=list)


def bench_dialect(label: str, url: str, tables: int, runs: int) -> Table:
    seed_production(url)
    contenders = [
        Contender("dagster-branch (drop step)", drop_step),
        Contender("dagster-branch (whole job)", whole_job),
        Contender("table by table", table_by_table),
    ]
    number = 1000
    for run in range(runs):
        progress(f"{label}: run {run + 1}/{runs}")
        for contender in contenders:
            number += 1
            schema = seed_branch(url, number, tables)
            with COUNTER.counting(url), Stopwatch() as watch:
                contender.run(url, number, schema)
            contender.walls.append(watch.seconds)
            contender.statements.append(COUNTER.count)
            contender.gone.append(not schema_exists(url, schema))
            contender.production_intact.append(production_rows(url) == 3)

    table = Table(
        f"Warehouse cleanup, {label}: a branch schema with {tables} tables",
        ["contender", "runs", "statements", "wall (median)", "statements vs drop step",
         "wall vs drop step", "schema gone", "prod intact"],
    )  # fmt: skip
    ref = contenders[0]
    for c in contenders:
        table.add(
            c.name,
            len(c.walls),
            f"{median(c.statements):g}",
            seconds(median(c.walls)),
            ratio(median(c.statements), median(ref.statements)),
            ratio(median(c.walls), median(ref.walls)),
            "yes" if all(c.gone) else "NO",
            "yes" if all(c.production_intact) else "NO",
        )
    table.notes.append(
        "statements: every statement any engine sent during the cleanup (catalog queries, ledger "
        "reads and writes, drops), counted by a before_cursor_execute listener."
    )
    return table


def bench_scale(
    url: str, schemas: int, tables: int, by_table_schemas: int, figures: dict[str, Any]
) -> Table:
    """Many branch schemas at once: the drop step for each, against table-by-table drops."""
    steps: list[tuple[str, Callable[[str, int, str], None], int]] = [
        ("dagster-branch (drop step)", drop_step, schemas),
        ("table by table", table_by_table, by_table_schemas),
    ]
    table = Table(
        f"Warehouse cleanup at scale, PostgreSQL: {schemas} branch schemas x {tables} tables",
        ["contender", "schemas", "statements", "per schema", "wall", "per schema (wall)",
         "statements vs d-b", "wall vs d-b", "all gone", "prod intact"],
    )  # fmt: skip
    measured = []
    number = 5000
    for name, step, count in steps:
        progress(f"PostgreSQL at scale: seeding {count} x {tables} tables for {name}")
        seeded = []
        for _ in range(count):
            number += 1
            seeded.append((number, seed_branch_fast(url, number, tables)))
        progress(f"PostgreSQL at scale: {name}")
        with COUNTER.counting(url), Stopwatch() as watch:
            for n, schema in seeded:
                step(url, n, schema)
        gone = not any(schema_exists(url, schema) for _, schema in seeded)
        measured.append((name, count, COUNTER.count, watch.seconds, gone))
    figures["scale"] = {
        name: {"schemas": count, "statements": statements, "seconds": wall, "gone": gone}
        for name, count, statements, wall, gone in measured
    }
    ref_statements = measured[0][2] / measured[0][1]
    ref_wall = measured[0][3] / measured[0][1]
    intact = production_rows(url) == 3
    for name, count, statements, wall, gone in measured:
        scaled = count != schemas
        per_statements, per_wall = statements / count, wall / count
        table.add(
            name + (f" [{count} schemas]" if scaled else ""),
            count,
            f"{statements:,}" + (f" (~{per_statements * schemas:,.0f})" if scaled else ""),
            f"{per_statements:,.1f}",
            seconds(wall) + (f" (~{seconds(per_wall * schemas)})" if scaled else ""),
            seconds(per_wall),
            ratio(per_statements, ref_statements),
            ratio(per_wall, ref_wall),
            "yes" if gone else "NO",
            "yes" if intact else "NO",
        )
    table.notes.append(
        "the drop step runs once per namespace, as the cleanup job does (objects_of, then "
        "remove_objects); tables are empty and created in one round trip per schema for the "
        "seeding (not measured)."
    )
    if by_table_schemas != schemas:
        table.notes.append(
            f"[{by_table_schemas} schemas]: table by table sends one statement per table, so it "
            f"is measured on {by_table_schemas} of the schemas and '~' figures are scaled "
            "linearly to all of them."
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--tables", type=int, default=None, help="tables in the branch schema")
    parser.add_argument("--schemas", type=int, default=None, help="branch schemas at scale")
    parser.add_argument(
        "--by-table-schemas", type=int, default=None, help="schemas dropped table by table"
    )
    args = parser.parse_args(argv)
    schemas = args.schemas or (5 if args.quick else 100)
    by_table = min(schemas, args.by_table_schemas or (2 if args.quick else 20))
    tables = args.tables or (30 if args.quick else 300)
    runs = args.runs or (2 if args.quick else 3)

    out = []
    figures: dict[str, Any] = {}
    with scratch_dir("warehouse") as scratch:
        out.append(
            bench_dialect("DuckDB", f"duckdb:///{scratch / 'warehouse.duckdb'}", tables, runs)
        )
        with local_postgres() as pg:
            admin = sa.create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text("CREATE DATABASE bench"))
            admin.dispose()
            out.append(bench_dialect("PostgreSQL", pg.url("bench"), tables, runs))
            out.append(bench_scale(pg.url("bench"), schemas, tables, by_table, figures))
    emit(out, args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
