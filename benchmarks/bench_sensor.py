"""Benchmark 2: what one tick of the cleanup sensor costs the Git host, and how long it takes.

Setup: a local stand-in for the GitHub REST API (``_github_standin.py``, its own process) with
5,000 pull requests, 500 of them open, and a DuckDB warehouse where each open pull request's
branch deployment created its schema through ``BranchDatabaseResource.ensure_namespace()`` (so
500 live namespaces, with ledger rows and markers).

Contenders, each asked to decide which namespaces to clean, tick after tick:

- **dagster-branch**: the real ``build_branch_cleanup_sensor``, evaluated with
  ``dagster.build_sensor_context`` and its cursor carried from tick to tick
  (``GitHubPullRequests`` source: listing sorted by update, ``If-None-Match``, cursor);
- **naive sensor**: one ``GET /pulls/{number}`` per live namespace, every tick;
- **closed listing**: ``GET /pulls?state=closed`` through every page, every tick, no cursor or
  ETag.

All three read the live namespaces from the same warehouse inventory, and all are timed from the
start of the tick to its run requests. Requests are counted by the stand-in server. Phases: the
first tick (no cursor), steady state (nothing changed), and a tick right after 20 pull requests
were merged 15 minutes ago (past the 10-minute grace period).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg
from _common import (
    BENCH_DIR,
    PRODUCTION,
    Stopwatch,
    Table,
    base_parser,
    deployment_environment,
    emit,
    median,
    ratio,
    scratch_dir,
    seconds,
    stop_process_group,
    wait_for_port,
)

from dagster_branch.naming import Namespace
from dagster_branch.resources.database import BranchDatabaseResource
from dagster_branch.sensors import build_branch_cleanup_sensor
from dagster_branch.sources.github import GitHubPullRequests
from dagster_branch.testing import free_port

REPOSITORY = "acme/warehouse"
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
def github_standin(pulls: int, live: int) -> Iterator[GitHubStandIn]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "_github_standin.py"), str(port), str(pulls), str(live)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield GitHubStandIn(api_url=f"http://127.0.0.1:{port}")
    finally:
        stop_process_group(process)


# -- the warehouse with 500 live namespaces -----------------------------------------------------


def warehouse(url: str) -> BranchDatabaseResource:
    return BranchDatabaseResource(url=url, base_schema="analytics")


def create_branch_schemas(url: str, numbers: list[int]) -> None:
    """What each PR's branch deployment did on its first run: ensure_namespace()."""
    for number in numbers:
        branch = {
            "DAGSTER_CLOUD_DEPLOYMENT_NAME": f"{number:x}a1b2c3",
            "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "1",
            "DAGSTER_CLOUD_PULL_REQUEST_ID": str(number),
            "DAGSTER_CLOUD_GIT_BRANCH": f"feature/change-{number}",
            "DAGSTER_CLOUD_GIT_REPO": REPOSITORY,
        }
        with deployment_environment(branch):
            resource = warehouse(url)
            try:
                resource.ensure_namespace()
            finally:
                resource.dispose()


def remove_namespaces(store: BranchDatabaseResource, numbers: list[int]) -> None:
    """What the cleanup job does to the warehouse for these pull requests' namespaces."""
    quiet = logging.getLogger("bench.cleanup")
    for number in numbers:
        namespace = Namespace.for_pull_request(number)
        results = store.remove_objects(store.objects_of(namespace), dry_run=False, log=quiet)
        failed = [r.error for r in results if not r.removed]
        if failed:
            raise RuntimeError(f"cleanup of {namespace} failed: {failed}")


# -- the contenders -----------------------------------------------------------------------------


@dataclass
class TickResult:
    requests: int
    not_modified: int
    seconds: float
    runs: int


class Contender:
    name = ""

    def tick(self) -> int:
        """One tick; returns the number of cleanups it would request."""
        raise NotImplementedError


class DagsterBranchSensor(Contender):
    name = "dagster-branch sensor"

    def __init__(self, store: BranchDatabaseResource, source: GitHubPullRequests) -> None:
        self.sensor = build_branch_cleanup_sensor(
            store_keys=("warehouse",), max_runs_per_tick=50, grace_period=GRACE
        )
        self.resources = {"warehouse": store, "pull_requests": source}
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

    def __init__(self, store: BranchDatabaseResource, api_url: str) -> None:
        self.store = store
        self.api = f"{api_url}/repos/{REPOSITORY}"
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"}
        )

    def live_pull_requests(self) -> dict[int, Namespace]:
        # Like a Dagster sensor's resource, the store connects afresh on every tick.
        try:
            return {
                int(ns.pull_request_id): ns
                for ns in self.store.list_namespaces()
                if ns.pull_request_id is not None
            }
        finally:
            self.store.dispose()


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
    contender: Contender
    first: TickResult | None = None
    steady: list[TickResult] = field(default_factory=list)
    closed: list[TickResult] = field(default_factory=list)


def measure(standin: GitHubStandIn, fn: Callable[[], int]) -> TickResult:
    before = standin.requests()
    with Stopwatch() as watch:
        runs = fn()
    after = standin.requests()
    return TickResult(after[0] - before[0], after[1] - before[1], watch.seconds, runs)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--pulls", type=int, default=None, help="pull requests in the repository")
    parser.add_argument("--live", type=int, default=None, help="open PRs with a live namespace")
    parser.add_argument("--closed", type=int, default=20, help="PRs closed for the last phase")
    args = parser.parse_args(argv)
    pulls = args.pulls or (1_000 if args.quick else 5_000)
    live = args.live or (100 if args.quick else 500)
    runs = args.runs or (3 if args.quick else 5)

    with scratch_dir("sensor") as scratch, github_standin(pulls, live) as standin:
        url = f"duckdb:///{scratch / 'warehouse.duckdb'}"
        open_numbers = standin.open_numbers()
        with Stopwatch() as setup:
            create_branch_schemas(url, open_numbers)
        print(f"  {len(open_numbers)} branch schemas created in {setup.seconds:.1f}s", flush=True)

        with deployment_environment(PRODUCTION):
            store = warehouse(url)
            source = GitHubPullRequests(repository=REPOSITORY, token=TOKEN, api_url=standin.api_url)
            found = len(store.list_namespaces())
            if found != len(open_numbers):
                raise RuntimeError(
                    f"the inventory found {found} namespaces, not {len(open_numbers)}"
                )
            contenders = [
                Measured(DagsterBranchSensor(store, source)),
                Measured(NaiveSensor(warehouse(url), standin.api_url)),
                Measured(ClosedListingSensor(warehouse(url), standin.api_url)),
            ]
            for m in contenders:
                print(f"  first tick: {m.contender.name}", flush=True)
                m.first = measure(standin, m.contender.tick)
            # Closing batches of PRs: each batch is measured once per contender, from steady state.
            batches = [open_numbers[i * args.closed : (i + 1) * args.closed] for i in range(runs)]
            for run, batch in enumerate(batches):
                print(
                    f"  steady ticks and {len(batch)} closed PRs, run {run + 1}/{runs}", flush=True
                )
                for m in contenders:
                    m.steady.append(measure(standin, m.contender.tick))
                standin.close(batch, minutes_ago=15)
                for m in contenders:
                    m.closed.append(measure(standin, m.contender.tick))
                # The cleanup job then removes those namespaces (not timed), as in production.
                remove_namespaces(store, batch)
            store.dispose()

    tables = [sensor_table(contenders, pulls, live, args.closed)]
    figures = {
        m.contender.name: {
            "first": vars(m.first) if m.first else None,
            "steady": [vars(t) for t in m.steady],
            "closed": [vars(t) for t in m.closed],
        }
        for m in contenders
    }
    emit(tables, args.json, figures)
    return 0


def sensor_table(contenders: list[Measured], pulls: int, live: int, closed: int) -> Table:
    table = Table(
        f"Sensor tick: {pulls:,} PRs, {live:,} live namespaces (requests to the Git host per tick)",
        ["contender", "first tick: req", "first: time", "steady: req", "steady: time",
         f"{closed} closed: req", f"{closed} closed: time", "runs requested",
         "steady req vs d-b", "steady time vs d-b", f"steady at {RTT_MS} ms RTT (est.)"],
    )  # fmt: skip
    ref = contenders[0]
    ref_req = median([t.requests for t in ref.steady])
    ref_time = median([t.seconds for t in ref.steady])
    for m in contenders:
        assert m.first is not None
        steady_req = median([t.requests for t in m.steady])
        steady_time = median([t.seconds for t in m.steady])
        table.add(
            m.contender.name,
            m.first.requests,
            seconds(m.first.seconds),
            f"{steady_req:g} ({median([t.not_modified for t in m.steady]):g} x 304)",
            seconds(steady_time),
            f"{median([t.requests for t in m.closed]):g}",
            seconds(median([t.seconds for t in m.closed])),
            f"{median([t.runs for t in m.closed]):g}",
            ratio(steady_req, ref_req) if ref_req else f"{steady_req:g} vs 0",
            ratio(steady_time, ref_time),
            seconds(steady_time + steady_req * RTT_MS / 1000),
        )
    table.notes.append(
        f"medians of {len(ref.steady)} steady ticks and of {len(ref.closed)} ticks each right "
        f"after {closed} more PRs were merged 15 minutes earlier (grace period 10 minutes); "
        "times include reading the live namespaces from the DuckDB warehouse."
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
        "after each of those ticks the cleanup job's removal runs for the closed namespaces "
        "(not timed), so every contender sees the same live namespaces."
    )
    return table


if __name__ == "__main__":
    raise SystemExit(main())
