"""Benchmark 4: what dagster-branch adds to a run, and to an import.

Resources: each iteration is what one run costs the resource: it is built, set up
(``setup_for_execution`` with an init context, as Dagster does at the start of a run), used once,
and torn down; the plain contenders are built, used once and closed. Dagster's own per-run costs
are the same with or without dagster-branch and are left out. Contenders, on the same servers,
interleaved, median of ``--runs``:

- warehouse (PostgreSQL on loopback): a plain SQLAlchemy engine (create, connect, ``SELECT 1``,
  dispose) vs ``BranchDatabaseResource`` in production (routing resolved, ``get_connection()``,
  ``SELECT 1``) vs ``BranchDatabaseResource`` in a branch deployment whose schema exists from an
  earlier run (first ``table()`` call runs ``ensure_namespace()``: catalog check, marker, ledger);
- object store (moto on loopback): dagster-aws ``S3Resource`` (``get_client()``, one
  ``put_object``) vs ``BranchS3Resource`` in production vs in a branch deployment (the first write
  also puts the namespace's marker object). S3 requests are counted at the server.

Import: ``import dagster_branch`` after ``import dagster``, in fresh interpreters: wall time
(``time.perf_counter`` around each import) and ``python -X importtime`` (cumulative time of the
``dagster_branch`` package, i.e. everything it imports that dagster had not already).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg
from _common import (
    SeedableS3,
    Stopwatch,
    Table,
    base_parser,
    emit,
    local_postgres,
    median,
    progress,
    scratch_dir,
    seconds,
    seedable_s3,
    use_dummy_aws_credentials,
)
from dagster_aws.s3 import S3Resource

from dagster_branch.resources.database import BranchDatabaseResource
from dagster_branch.resources.s3 import BranchS3Resource
from dagster_branch.testing import deployment_env

PRODUCTION = functools.partial(deployment_env, "production")
BRANCH = functools.partial(deployment_env, "branch", pr=42, branch="feature/orders")
BUCKET = "bench-lake"
# What Dagster hands a resource's setup and teardown in a run (made once: it is Dagster's cost).
INIT_CONTEXT = dg.build_init_resource_context()


@dataclass
class Contender:
    name: str
    run: Callable[[], None]
    deployment: Callable[[], contextlib.AbstractContextManager[dict[str, str]]]
    walls: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)


def measure(contenders: list[Contender], runs: int, s3: SeedableS3 | None = None) -> None:
    for contender in contenders:  # one unmeasured warm-up each: imports, first-time caches
        with contender.deployment():
            contender.run()
    for _ in range(runs):
        for contender in contenders:
            before = len(s3.request_lines()) if s3 else 0
            with contender.deployment(), Stopwatch() as watch:
                contender.run()
            contender.walls.append(watch.seconds)
            contender.requests.append(len(s3.request_lines()) - before if s3 else 0)


# -- warehouse ----------------------------------------------------------------------------------


def warehouse_contenders(url: str) -> list[Contender]:
    def plain() -> None:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()

    def branch_resource(write: bool) -> Callable[[], None]:
        def run() -> None:
            resource = BranchDatabaseResource(url=url, base_schema="analytics")
            resource.setup_for_execution(INIT_CONTEXT)
            try:
                if write:
                    resource.table("orders")  # the first write: ensure_namespace()
                with resource.get_connection() as conn:
                    conn.execute(sa.text("SELECT 1"))
            finally:
                resource.teardown_after_execution(INIT_CONTEXT)

        return run

    return [
        Contender("plain SQLAlchemy engine", plain, PRODUCTION),
        Contender("BranchDatabaseResource, production", branch_resource(False), PRODUCTION),
        Contender("BranchDatabaseResource, branch: first write", branch_resource(True), BRANCH),
    ]


# -- object store -------------------------------------------------------------------------------


def s3_contenders(endpoint_url: str) -> list[Contender]:
    options: dict[str, Any] = {"endpoint_url": endpoint_url, "region_name": "us-east-1"}

    def plain() -> None:
        client = S3Resource(**options).get_client()
        try:
            client.put_object(Bucket=BUCKET, Key="lake/orders.csv", Body=b"id\n1\n")
        finally:
            client.close()

    def branch() -> None:
        lake = BranchS3Resource(bucket=BUCKET, prefix="lake", **options)
        lake.setup_for_execution(INIT_CONTEXT)
        try:
            lake.get_client().put_object(
                Bucket=lake.bucket_name, Key=lake.key("orders.csv"), Body=b"id\n1\n"
            )
        finally:
            lake.teardown_after_execution(INIT_CONTEXT)

    return [
        Contender("dagster-aws S3Resource", plain, PRODUCTION),
        Contender("BranchS3Resource, production", branch, PRODUCTION),
        Contender("BranchS3Resource, branch: first write", branch, BRANCH),
    ]


def resource_table(title: str, contenders: list[Contender], with_requests: bool) -> Table:
    columns = ["contender", "runs", "setup + first use (median)", "added vs plain"]
    if with_requests:
        columns.append("requests")
    table = Table(title, columns)
    reference = median(contenders[0].walls)
    for c in contenders:
        wall = median(c.walls)
        row: list[object] = [
            c.name,
            len(c.walls),
            seconds(wall),
            f"{(wall - reference) * 1000:+.1f} ms",
        ]
        if with_requests:
            row.append(f"{median(c.requests):g}")
        table.add(*row)
    return table


# -- import time --------------------------------------------------------------------------------

_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
# Times each import in a fresh interpreter; argv[1] is what the project imports already.
IMPORT_SNIPPET = (
    "import importlib, sys, time\n"
    "t0 = time.perf_counter()\n"
    "for name in sys.argv[1].split(','):\n"
    "    importlib.import_module(name)\n"
    "t1 = time.perf_counter()\n"
    "import dagster_branch\n"
    "t2 = time.perf_counter()\n"
    "print(t1 - t0, t2 - t1)\n"
)
BASELINES = {
    "dagster": "import dagster",
    "dagster,dagster_aws.s3,sqlalchemy": "import dagster, dagster_aws.s3, sqlalchemy",
}


@dataclass
class ImportFigures:
    baseline: dict[str, list[float]] = field(default_factory=dict)
    beyond: dict[str, list[float]] = field(default_factory=dict)
    package_cumulative: list[float] = field(default_factory=list)
    first_loaded: dict[str, list[float]] = field(default_factory=dict)


def _depth(line: re.Match[str]) -> int:
    return (len(line.group(3)) - 1) // 2


def _first_loaded_packages(lines: list[re.Match[str]], package: int) -> dict[str, float]:
    """Seconds spent in packages that ``import dagster_branch`` loaded first, by top-level name.

    ``-X importtime`` prints a module after everything it imported, so walking backwards from
    the package's own line visits parents before children; a stack holds the current ancestry,
    and only the outermost module of another package is counted (its cumulative time covers
    what it imported in turn).
    """
    found: dict[str, float] = {}
    stack: list[tuple[int, str]] = []
    for line in reversed(lines[: package + 1]):
        depth, name = _depth(line), line.group(4)
        if depth == 0 and name != "dagster_branch":
            break  # the block of an earlier top-level import
        while stack and stack[-1][0] >= depth:
            stack.pop()
        inside_other = any(not n.startswith("dagster_branch") for _, n in stack)
        if not name.startswith("dagster_branch") and not inside_other:
            top = name.split(".")[0]
            found[top] = found.get(top, 0.0) + int(line.group(2)) / 1e6
        stack.append((depth, name))
    return found


def measure_imports(runs: int) -> ImportFigures:
    figures = ImportFigures()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_CLOUD_")}
    for _ in range(runs):
        for baseline in BASELINES:
            done = subprocess.run(
                [sys.executable, "-c", IMPORT_SNIPPET, baseline], capture_output=True, text=True,
                env=env, check=True,
            )  # fmt: skip
            before, beyond = (float(x) for x in done.stdout.split())
            figures.baseline.setdefault(baseline, []).append(before)
            figures.beyond.setdefault(baseline, []).append(beyond)
        traced = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import dagster; import dagster_branch"],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        lines = [m for m in map(_IMPORTTIME.search, traced.stderr.splitlines()) if m]
        package = max(
            i for i, m in enumerate(lines) if m.group(4) == "dagster_branch" and _depth(m) == 0
        )
        figures.package_cumulative.append(int(lines[package].group(2)) / 1e6)
        for name, cumulative in _first_loaded_packages(lines, package).items():
            figures.first_loaded.setdefault(name, []).append(cumulative)
    return figures


def import_table(figures: ImportFigures) -> Table:
    table = Table("Import time in fresh interpreters", ["what", "runs", "median"])
    for baseline, label in BASELINES.items():
        table.add(
            label, len(figures.baseline[baseline]), seconds(median(figures.baseline[baseline]))
        )
        table.add(
            "  then import dagster_branch",
            len(figures.beyond[baseline]),
            seconds(median(figures.beyond[baseline])),
        )
    table.add(
        "-X importtime: dagster_branch after dagster",
        len(figures.package_cumulative),
        seconds(median(figures.package_cumulative)),
    )
    heaviest = sorted(figures.first_loaded.items(), key=lambda item: -median(item[1]))[:4]
    for name, values in heaviest:
        if median(values) >= 0.005:
            label = "dagster modules that `import dagster` defers" if name == "dagster" else name
            table.add(f"  of which first loads of {label}", len(values), seconds(median(values)))
    table.notes.append(
        "dagster_branch itself is small: almost all of its import time is the first load of "
        "packages a Dagster project with S3 and a SQL warehouse loads anyway (dagster-aws with "
        "boto3, SQLAlchemy, dagster's storage modules); the second baseline shows what is left."
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--import-runs", type=int, default=None, help="fresh interpreters")
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 15)
    import_runs = args.import_runs or (2 if args.quick else 3)
    use_dummy_aws_credentials()

    tables = []
    with local_postgres() as pg:
        admin = sa.create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE bench"))
        admin.dispose()
        progress("warehouse resources")
        warehouse = warehouse_contenders(pg.url("bench"))
        measure(warehouse, runs)
        tables.append(
            resource_table(
                "Warehouse resource: setup + first connection in one run (PostgreSQL)",
                warehouse,
                with_requests=False,
            )
        )
    with scratch_dir("overhead") as scratch, seedable_s3(scratch) as s3:
        import boto3

        boto3.client("s3", endpoint_url=s3.endpoint_url).create_bucket(Bucket=BUCKET)
        progress("S3 resources")
        lake = s3_contenders(s3.endpoint_url)
        measure(lake, runs, s3)
        tables.append(
            resource_table(
                "S3 resource: setup + first write in one run (moto)", lake, with_requests=True
            )
        )
    progress("imports")
    tables.append(import_table(measure_imports(import_runs)))
    tables[0].notes.append(
        "branch: first write = the schema exists from an earlier run; ensure_namespace() checks "
        "it, refreshes the marker comment and the ledger row once per run."
    )
    tables[1].notes.append(
        "branch: first write also puts the namespace's marker object once per run (no ledger "
        "configured), hence the extra request."
    )
    emit(tables, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
