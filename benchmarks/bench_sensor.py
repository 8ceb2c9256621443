"""Benchmark 2: what one tick of the cleanup sensor costs the Git host, and how long it takes.

Setup: two repositories (two PR sources), each a local stand-in for the GitHub REST API
(``_github_standin.py``, its own process) with 5,000 pull requests, 2,500 of them open; and four
code locations, each with its own DuckDB warehouse (its own store and ledger), two per
repository, holding the branch namespaces of that repository's open pull requests: 5,000 live
namespaces in all. The first namespace of each store is created by
``BranchDatabaseResource.ensure_namespace()``; the others copy what it wrote (schema and ledger
row), since 5,000 first runs are not what is measured.

Contenders, each asked to decide which namespaces to clean, tick after tick, one sensor per
repository watching its two code locations' stores:

- **dagster-branch**: the real ``build_branch_cleanup_sensor``, evaluated with
  ``dagster.build_sensor_context`` and its cursor carried from tick to tick
  (``GitHubPullRequests`` source: listing sorted by update, ``If-None-Match``, cursor);
- **naive sensor**: one ``GET /pulls/{number}`` per live namespace, every tick;
- **closed listing**: ``GET /pulls?state=closed`` through every page, every tick, no cursor or
  ETag.

All three read the live namespaces from the same warehouse inventories, and all are timed from
the start of the tick to its run requests. Requests are counted by the stand-in servers. Phases:
the first tick (no cursor), steady state (nothing changed), and a tick right after 20 pull
requests per repository were merged 15 minutes ago (past the 10-minute grace period). Then one
more steady tick of each sensor runs under ``tracemalloc`` for its peak memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import sys
import tracemalloc
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg
from _common import (
    BENCH_DIR,
    Stopwatch,
    Table,
    base_parser,
    emit,
    free_port,
    median,
    progress,
    ratio,
    scratch_dir,
    seconds,
    stop_process_group,
    wait_for_port,
)

from dagster_branch.detection import CleanupPolicy
from dagster_branch.ledger import LEDGER_TABLE
from dagster_branch.naming import Namespace
from dagster_branch.resources.database import BranchDatabaseResource
from dagster_branch.sensors import build_branch_cleanup_sensor
from dagster_branch.sources.github import GitHubPullRequests
from dagster_branch.testing import deployment_env

REPOSITORIES = ("acme/warehouse", "acme/lake")  # two PR sources
TOKEN = "bench-token"  # the stand-in accepts anything; never a real token
GRACE = timedelta(minutes=10)
RTT_MS = 50  # a typical round trip to api.github.com, for the estimate column


# -- the stand-in server ------------------------------------------------------------------------


@dataclass(frozen=True)
class GitHubStandIn:
    api_url: str

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api_url + path, data=data, method="POST" if data else "GET"
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def requests(self) -> tuple[int, int]:
        """Requests answered so far, and how many of them were ``304 Not Modified``."""
        counts = self._call("/_bench/stats")["counts"]
        not_modified = sum(n for kind, n in counts.items() if kind.endswith(" 304"))
        return int(counts.get("total", 0)), int(not_modified)

    def open_numbers(self) -> list[int]:
        return [int(n) for n in self._call("/_bench/stats")["open"]]

    def close(self, numbers: list[int], minutes_ago: float) -> None:
        self._call("/_bench/close", {"numbers": numbers, "minutes_ago": minutes_ago})


@contextlib.contextmanager
def github_standin(pulls: int, live: int, repository: str) -> Iterator[GitHubStandIn]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "_github_standin.py"), str(port), str(pulls), str(live),
         repository],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield GitHubStandIn(api_url=f"http://127.0.0.1:{port}")
    finally:
        stop_process_group(process)


# -- the warehouses with 5,000 live namespaces --------------------------------------------------


def warehouse(url: str, store_key: str = "warehouse") -> BranchDatabaseResource:
    return BranchDatabaseResource(url=url, base_schema="analytics", store_key=store_key)


def create_branch_schemas(url: str, numbers: list[int], repository: str, store_key: str) -> None:
    """What each PR's branch deployment did on its first run: ensure_namespace().

    The first namespace goes through ``ensure_namespace()`` itself; the others copy what it
    wrote (its schema, and its ledger row with every column as written, the namespace, names
    and ids changed) in one transaction, since 5,000 branch deployments' first runs would
    take minutes here and are not what is measured.
    """
    first, *rest = numbers
    with deployment_env(
        "branch", pr=first, branch=f"feature/change-{first}", repository=repository
    ):
        resource = warehouse(url, store_key)
        try:
            resource.ensure_namespace()
        finally:
            resource.close()
    if not rest:
        return
    template = Namespace.for_pull_request(first)
    engine = sa.create_engine(url)
    try:
        table = f"dagster_branch.{LEDGER_TABLE}"
        with engine.begin() as conn:
            row = dict(
                conn.execute(
                    sa.text(f"SELECT * FROM {table} WHERE namespace = :key"),
                    {"key": template.key},
                )
                .mappings()
                .one()
            )
            schema = row["name"]
            copies = []
            for number in rest:
                namespace = Namespace.for_pull_request(number)
                name = schema.replace(template.key, namespace.key)
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))
                copies.append({
                    **row, "id": uuid.uuid4().hex, "namespace": namespace.key, "name": name,
                    "pull_request_id": str(number), "branch": f"feature/change-{number}",
                    "created_by_deployment": f"{number:x}a1b2c3",
                })  # fmt: skip
            columns = ", ".join(row)
            values = ", ".join(f":{column}" for column in row)
            conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), copies)
    finally:
        engine.dispose()


def remove_namespaces(store: BranchDatabaseResource, numbers: list[int]) -> None:
    """What the cleanup job does to the warehouse for these pull requests' namespaces, for all
    of them in one ``remove_objects`` call (one dependents check, one ledger update): the
    cleanup job's run per namespace is not what is measured, and 200 of them took minutes."""
    quiet = logging.getLogger("bench.cleanup")
    objects = [o for n in numbers for o in store.objects_of(Namespace.for_pull_request(n))]
    results = store.remove_objects(objects, dry_run=False, log=quiet)
    failed = [r.error for r in results if not r.removed]
    if failed or len(results) < len(numbers):
        raise RuntimeError(f"cleanup of pull requests {numbers} failed: {failed or results}")


@dataclass
class Source:
    """One repository (a Git host stand-in) and the code locations' stores that follow it."""

    repository: str
    standin: GitHubStandIn
    stores: dict[str, BranchDatabaseResource]  # resource key -> store, one per code location
    open_by_store: dict[str, list[int]]  # the open PRs whose namespaces each store holds

    def store_of(self, number: int) -> BranchDatabaseResource:
        return next(
            self.stores[k] for k, numbers in self.open_by_store.items() if number in numbers
        )


# -- the contenders -----------------------------------------------------------------------------


@dataclass
class TickResult:
    requests: int  # to the busiest Git host (the most any one source was sent)
    not_modified: int
    seconds: float  # the slowest sensor's tick (each sensor ticks on its own)
    runs: int
    total_seconds: float = 0.0  # every sensor's tick, added up


class Contender:
    name = ""

    def tick(self) -> int:
        """One tick; returns the number of cleanups it would request."""
        raise NotImplementedError


class DagsterBranchSensor(Contender):
    name = "dagster-branch sensor"

    def __init__(self, source: Source) -> None:
        self.sensor = build_branch_cleanup_sensor(
            store_keys=tuple(source.stores),
            max_runs_per_tick=50,
            policy=CleanupPolicy(grace_period=GRACE),
        )
        gh = GitHubPullRequests(
            repository=source.repository, token=TOKEN, api_url=source.standin.api_url
        )
        self.resources = {**source.stores, "pull_requests": gh}
        self.cursor: str | None = None

    def tick(self) -> int:
        # As in the daemon, each tick sets the resources up and tears them down. The tick's log
        # lines (one per cleanup requested) go to a buffer instead of the benchmark's output.
        with (
            contextlib.redirect_stderr(io.StringIO()),
            dg.build_sensor_context(cursor=self.cursor, resources=self.resources) as context,
        ):
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return len(result.run_requests or [])


def _closed_long_enough(pull: dict[str, Any], now: datetime) -> bool:
    finished = pull.get("merged_at") or pull.get("closed_at")
    if pull.get("state") != "closed" or not finished:
        return False
    return now - datetime.fromisoformat(finished.replace("Z", "+00:00")) >= GRACE


class _HandWritten(Contender):
    """The shared part of the hand-written sensors: same inventory, a keep-alive session."""

    def __init__(self, source: Source) -> None:
        self.stores = list(source.stores.values())
        self.api = f"{source.standin.api_url}/repos/{source.repository}"
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"}
        )

    def live_pull_requests(self) -> dict[int, Namespace]:
        # Like a Dagster sensor's resource, each store connects afresh on every tick.
        live: dict[int, Namespace] = {}
        for store in self.stores:
            try:
                live.update(
                    (int(ns.pull_request_id), ns)
                    for ns in store.list_namespaces()
                    if ns.pull_request_id is not None
                )
            finally:
                store.close()
        return live


class NaiveSensor(_HandWritten):
    name = "naive: GET /pulls/{n} per namespace"

    def tick(self) -> int:
        now = datetime.now(timezone.utc)
        to_clean = 0
        for number in self.live_pull_requests():
            answer = self.session.get(f"{self.api}/pulls/{number}", timeout=10)
            answer.raise_for_status()
            to_clean += _closed_long_enough(answer.json(), now)
        return to_clean


class ClosedListingSensor(_HandWritten):
    name = "list closed PRs every tick"

    def tick(self) -> int:
        now = datetime.now(timezone.utc)
        live = self.live_pull_requests()
        to_clean = 0
        url: str | None = f"{self.api}/pulls"
        params: dict[str, Any] | None = {"state": "closed", "per_page": 100}
        while url:
            answer = self.session.get(url, params=params, timeout=10)
            answer.raise_for_status()
            for pull in answer.json():
                to_clean += pull["number"] in live and _closed_long_enough(pull, now)
            url, params = answer.links.get("next", {}).get("url"), None
        return to_clean


@dataclass
class Measured:
    """One kind of sensor: one instance per source (each code location group's own sensor)."""

    name: str
    sensors: list[tuple[Source, Contender]]
    first: TickResult | None = None
    steady: list[TickResult] = field(default_factory=list)
    closed: list[TickResult] = field(default_factory=list)
    peak_bytes: dict[str, int] = field(default_factory=dict)  # tracemalloc peak per phase


def measure(m: Measured) -> TickResult:
    """Every sensor of ``m`` ticks once, one after another, as the daemon would run them."""
    busiest = not_modified = runs = 0
    slowest = total = 0.0
    for source, sensor in m.sensors:
        before = source.standin.requests()
        with Stopwatch() as watch:
            runs += sensor.tick()
        after = source.standin.requests()
        busiest = max(busiest, after[0] - before[0])
        not_modified += after[1] - before[1]
        slowest, total = max(slowest, watch.seconds), total + watch.seconds
    return TickResult(busiest, not_modified, slowest, runs, total)


def peak_memory_of_tick(m: Measured) -> int:
    """The most memory one sensor's tick allocated at once (tracemalloc, Python objects)."""
    peak = 0
    for _, sensor in m.sensors:
        tracemalloc.start()
        try:
            sensor.tick()
            peak = max(peak, tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--pulls", type=int, default=None, help="pull requests per repository")
    parser.add_argument("--live", type=int, default=None, help="live namespaces in all")
    parser.add_argument("--locations", type=int, default=4, help="code locations (stores)")
    parser.add_argument("--closed", type=int, default=20, help="PRs closed per source and run")
    args = parser.parse_args(argv)
    live = args.live or (400 if args.quick else 5_000)
    per_source = live // len(REPOSITORIES)
    pulls = args.pulls or 2 * per_source
    runs = args.runs or (3 if args.quick else 5)
    locations_per_source = max(1, args.locations // len(REPOSITORIES))

    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(scratch_dir("sensor"))
        sources: list[Source] = []
        with Stopwatch() as setup:
            for repository in REPOSITORIES:
                standin = stack.enter_context(github_standin(pulls, per_source, repository))
                numbers = standin.open_numbers()
                stores, open_by_store = {}, {}
                for i in range(locations_per_source):
                    key = f"{repository.split('/')[1]}_{i + 1}"
                    url = f"duckdb:///{scratch / (key + '.duckdb')}"
                    mine = numbers[i::locations_per_source]
                    create_branch_schemas(url, mine, repository, key)
                    stores[key], open_by_store[key] = warehouse(url, key), mine
                sources.append(Source(repository, standin, stores, open_by_store))
        progress(f"{live:,} live namespaces in {len(REPOSITORIES) * locations_per_source} "
              f"stores, created in {setup.seconds:.1f}s")  # fmt: skip

        with deployment_env("production"):
            for source in sources:
                for key, store in source.stores.items():
                    found = len(store.list_namespaces())
                    if found != len(source.open_by_store[key]):
                        raise RuntimeError(f"{key}: the inventory found {found} namespaces")
            contenders = [
                Measured(kind.name, [(src, kind(src)) for src in sources])
                for kind in (DagsterBranchSensor, NaiveSensor, ClosedListingSensor)
            ]
            for m in contenders:
                progress(f"first tick: {m.name}")
                m.first = measure(m)
            # Closing batches of PRs: each batch is measured once per contender, from steady state.
            for run in range(runs):
                progress(f"steady ticks and {args.closed} closed PRs per source, run {run + 1}/"
                      f"{runs}")  # fmt: skip
                for m in contenders:
                    m.steady.append(measure(m))
                batches = []
                for source in sources:
                    start = run * args.closed  # the stand-in's list of open PRs never changes
                    batch = source.standin.open_numbers()[start : start + args.closed]
                    source.standin.close(batch, minutes_ago=15)
                    batches.append((source, batch))
                for m in contenders:
                    m.closed.append(measure(m))
                # The cleanup job then removes those namespaces (not timed), as in production.
                progress("the cleanup of the closed namespaces (not timed)")
                for source, batch in batches:
                    by_store: dict[int, tuple[BranchDatabaseResource, list[int]]] = {}
                    for number in batch:
                        store = source.store_of(number)
                        by_store.setdefault(id(store), (store, []))[1].append(number)
                    for store, numbers in by_store.values():
                        remove_namespaces(store, numbers)
            progress("memory: one steady tick per sensor under tracemalloc")
            for m in contenders:
                m.peak_bytes["steady"] = peak_memory_of_tick(m)
            for source in sources:
                for store in source.stores.values():
                    store.close()

    tables = [sensor_table(contenders, pulls, live, args.closed, sources)]
    figures = {
        m.name: {
            "first": vars(m.first) if m.first else None,
            "steady": [vars(t) for t in m.steady],
            "closed": [vars(t) for t in m.closed],
            "peak_bytes": m.peak_bytes,
        }
        for m in contenders
    }
    emit(tables, args.json, figures)
    return 0


def sensor_table(
    contenders: list[Measured], pulls: int, live: int, closed: int, sources: list[Source]
) -> Table:
    stores = sum(len(s.stores) for s in sources)
    table = Table(
        f"Sensor tick: {live:,} live namespaces in {stores} code locations' stores, "
        f"{len(sources)} repositories of {pulls:,} PRs (requests per tick to the busiest source)",
        ["contender", "first tick: req", "first: time", "steady: req", "steady: time",
         f"{closed} closed: req", f"{closed} closed: time", "runs requested",
         "steady req vs d-b", "steady time vs d-b", f"steady at {RTT_MS} ms RTT (est.)",
         "tick memory (peak)"],
    )  # fmt: skip
    ref = contenders[0]
    ref_req = median([t.requests for t in ref.steady])
    ref_time = median([t.seconds for t in ref.steady])
    for m in contenders:
        assert m.first is not None
        steady_req = median([t.requests for t in m.steady])
        steady_time = median([t.seconds for t in m.steady])
        table.add(
            m.name,
            m.first.requests,
            seconds(m.first.seconds),
            f"{steady_req:g} ({median([t.not_modified for t in m.steady]) / len(sources):g} x 304)",
            seconds(steady_time),
            f"{median([t.requests for t in m.closed]):g}",
            seconds(median([t.seconds for t in m.closed])),
            f"{median([t.runs for t in m.closed]):g}",
            ratio(steady_req, ref_req) if ref_req else f"{steady_req:g} vs 0",
            ratio(steady_time, ref_time),
            seconds(steady_time + steady_req * RTT_MS / 1000),
            f"{m.peak_bytes.get('steady', 0) / 1024 / 1024:.1f} MB",
        )
    table.notes.append(
        f"one sensor per repository, each watching {stores // len(sources)} code locations' "
        f"stores (DuckDB warehouses, one ledger each) of {live // stores:,} namespaces; req and "
        "time are per sensor tick: the busiest source's requests, the slowest sensor's time."
    )
    table.notes.append(
        f"medians of {len(ref.steady)} steady ticks and of {len(ref.closed)} ticks each right "
        f"after {closed} more PRs per repository were merged 15 minutes earlier (grace period "
        "10 minutes); times include reading the live namespaces from the warehouses."
    )
    table.notes.append(
        "(n x 304): answers '304 Not Modified' to an If-None-Match, which GitHub does not count "
        "against the rate limit."
    )
    table.notes.append(
        f"est.: the measured loopback time plus {RTT_MS} ms per request, a typical round trip "
        "to api.github.com (each contender sends its requests one after another); Dagster's "
        "default sensor timeout is 60 s."
    )
    table.notes.append(
        "tick memory: the most Python memory one sensor's steady tick held at once "
        "(tracemalloc, in a separate tick after the timed ones)."
    )
    table.notes.append(
        "after each of those ticks the cleanup job's removal runs for the closed namespaces "
        "(not timed), so every contender sees the same live namespaces."
    )
    return table


if __name__ == "__main__":
    raise SystemExit(main())
