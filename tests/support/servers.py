"""Throwaway local servers for the tests and the benchmarks (not part of the package).

Real servers: a PostgreSQL cluster under ``/tmp``, an S3-protocol server (moto in server mode)
and a Snowflake-protocol server (fakesnow, on DuckDB) reached over HTTP. All bind to loopback
only and are stopped by their context managers.

Example::

    with local_postgres() as pg, local_s3() as s3:
        engine = sqlalchemy.create_engine(pg.url("postgres"))
        client = boto3.client("s3", endpoint_url=s3.endpoint_url)
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = [
    "LocalPostgres",
    "LocalS3",
    "LocalServerError",
    "LocalSnowflake",
    "SnowflakeDatabase",
    "free_port",
    "local_postgres",
    "local_s3",
    "local_snowflake",
    "stop_process_group",
    "use_test_credentials",
    "wait_for_port",
]

POSTGRES_SEARCH_PATHS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/usr/local/bin")
# One line of werkzeug's access log: `127.0.0.1 - - [date] "GET /bucket?list-type=2 HTTP/1.1" 200 -`
# (werkzeug may wrap the quoted request in ANSI colour codes).
_ACCESS_LOG_LINE = re.compile(
    rb'"(?:\x1b\[[0-9;]*m)*[A-Z]+ \S+ HTTP/[0-9.]+(?:\x1b\[[0-9;]*m)*" [0-9]{3} '
)


class LocalServerError(RuntimeError):
    """A local test server could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Return once something listens on ``127.0.0.1:port``; raise if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(f"the server exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise LocalServerError(f"nothing listened on 127.0.0.1:{port} after {timeout:.0f}s")


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# -- PostgreSQL ---------------------------------------------------------------------------------


def find_postgres_bin() -> Path:
    """The folder holding ``initdb`` and ``postgres``; raises with install advice if absent."""
    candidates = [Path(p) for pattern in POSTGRES_SEARCH_PATHS for p in sorted(glob.glob(pattern))]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.insert(0, Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    raise LocalServerError(
        "PostgreSQL server binaries (initdb, postgres) were not found. Install them, e.g. "
        "'apt-get install -y postgresql' on Debian, or point the tests at a running server with "
        "DAGSTER_BRANCH_TEST_POSTGRES_URL=postgresql+psycopg://user@host:port/db."
    )


@dataclass(frozen=True)
class LocalPostgres:
    """A running throwaway PostgreSQL cluster."""

    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) for ``database``."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"


@contextlib.contextmanager
def local_postgres(*, timeout: float = 60.0) -> Iterator[LocalPostgres]:
    """Start a PostgreSQL cluster in a fresh folder under ``/tmp``; stop and remove it after.

    ``initdb`` refuses to run as root, so as root the cluster runs as the ``postgres`` user.
    Authentication is ``trust`` on loopback: never use this outside tests.
    """
    bindir = find_postgres_bin()
    as_root = os.geteuid() == 0
    run_as: list[str] = ["runuser", "-u", "postgres", "--"] if as_root else []
    user = "postgres" if as_root else (os.environ.get("USER") or "postgres")
    workdir = Path(tempfile.mkdtemp(prefix="dagster-branch-pg-", dir="/tmp"))
    data, sockets = workdir / "data", workdir / "sock"
    sockets.mkdir()
    if as_root:
        shutil.chown(workdir, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    init = subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust",
         "-E", "UTF8", "--no-sync"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        raise LocalServerError(f"initdb failed: {init.stderr.strip()[-500:]}")
    process = subprocess.Popen(
        [*run_as, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
         "-h", "127.0.0.1", "-k", str(sockets), "-c", "fsync=off",
         "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, process, timeout)
        yield LocalPostgres(host="127.0.0.1", port=port, user=user)
    finally:
        stop_process_group(process)
        shutil.rmtree(workdir, ignore_errors=True)


# -- S3 -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalS3:
    """A running moto S3 server.

    ``request_log`` is the file receiving the server's access log (one line per request), when
    :func:`local_s3` was asked for one; :meth:`requests_logged` counts its requests.
    """

    endpoint_url: str
    request_log: Path | None = None

    def requests_logged(self) -> int:
        """How many requests the server has answered so far (needs ``request_log``)."""
        if self.request_log is None:
            raise LocalServerError("start the server with local_s3(request_log=...) to count")
        with self.request_log.open("rb") as log:
            return sum(1 for line in log if _ACCESS_LOG_LINE.search(line))

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        url = f"{self.endpoint_url}/moto-api/reset"
        request = urllib.request.Request(url, method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def use_test_credentials(env: Any) -> None:
    """Put dummy AWS credentials in the environment through ``env`` (a ``pytest.MonkeyPatch``),
    and unset ``AWS_PROFILE``: the test servers accept any key, and the machine running the
    tests must not lend its own."""
    for name, value in TEST_CREDENTIALS.items():
        env.setenv(name, value)
    env.delenv("AWS_PROFILE", raising=False)


@contextlib.contextmanager
def local_s3(
    *, timeout: float = 60.0, request_log: str | os.PathLike[str] | None = None
) -> Iterator[LocalS3]:
    """Start moto's S3-compatible server on a free loopback port, in its own process.

    A separate process keeps the server's work off the caller's GIL, so request counts and
    wall times measured against it are honest. With ``request_log``, the server's stderr (its
    werkzeug access log) is appended to that file, so requests are counted at the server itself,
    with no proxy in between.
    """
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise LocalServerError(
            "moto is not installed: pip install 'moto[server]' to run a local S3 server."
        ) from exc
    port = free_port()
    log_path = Path(request_log) if request_log is not None else None
    with contextlib.ExitStack() as stack:
        stderr = (
            stack.enter_context(log_path.open("ab")) if log_path is not None else subprocess.DEVNULL
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_port(port, process, timeout)
            yield LocalS3(endpoint_url=f"http://127.0.0.1:{port}", request_log=log_path)
        finally:
            stop_process_group(process)


# -- Snowflake ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSnowflake:
    """A running fakesnow server: the Snowflake HTTP protocol, answered by DuckDB.

    The real ``snowflake-connector-python`` and ``snowflake-sqlalchemy`` reach it with
    :meth:`url` and :attr:`connect_args` (a Snowflake URL cannot hold the host, port and
    protocol). fakesnow cannot drop a database, so give each test a database of its own.
    """

    host: str
    port: int

    def url(self, database: str) -> str:
        """SQLAlchemy URL for ``database`` (fakesnow accepts any user and password).

        The URL names schema ``public``, as a real Snowflake session starts in the database's
        ``PUBLIC`` schema: fakesnow fails ``COMMENT ON SCHEMA`` in a session without one.
        """
        return f"snowflake://fake:snow@fakesnow/{database}/public"

    @property
    def connect_args(self) -> dict[str, Any]:
        """What the connector needs to reach this server instead of snowflakecomputing.com."""
        return {
            "host": self.host,
            "port": self.port,
            "protocol": "http",
            # The connector reports telemetry out of band by default: keep it on loopback.
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            # The connector retries an HTTP 500 until this many seconds have passed.
            "network_timeout": 30,
        }

    def create_database(self, name: str) -> SnowflakeDatabase:
        """Create database ``name`` (``IF NOT EXISTS``: fakesnow creates it on first login)."""
        database = SnowflakeDatabase(self.url(name), self.connect_args)
        engine = database.engine()
        try:
            with engine.begin() as conn:
                quoted = engine.dialect.identifier_preparer.quote(name)
                conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS {quoted}"))
        finally:
            engine.dispose()
        return database


@dataclass(frozen=True)
class SnowflakeDatabase:
    """One database on a :class:`LocalSnowflake`: the URL and the connect_args reaching it."""

    url: str
    connect_args: dict[str, Any]

    def engine(self) -> sa.Engine:
        """A plain engine (not a resource's), for setting up and checking from outside."""
        return sa.create_engine(self.url, connect_args=self.connect_args)


@contextlib.contextmanager
def local_snowflake(
    *, timeout: float = 120.0, log: str | os.PathLike[str] | None = None
) -> Iterator[LocalSnowflake]:
    """Start fakesnow's server (``python -m fakesnow -s``) on a free loopback port, in its own
    process; databases live in its memory and vanish when it stops.

    Requires ``fakesnow[server]``. Importing the Snowflake connector takes seconds, hence the
    generous start-up timeout. With ``log``, the server's output (each statement it failed, with
    fakesnow's traceback) is appended to that file.
    """
    try:
        import fakesnow  # noqa: F401
    except ImportError as exc:
        raise LocalServerError(
            "fakesnow is not installed: pip install 'fakesnow[server]' to run a local "
            "Snowflake-protocol server."
        ) from exc
    port = free_port()
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(Path(log).open("ab")) if log else subprocess.DEVNULL
        process = subprocess.Popen(
            [sys.executable, "-m", "fakesnow", "-s", "--host", "127.0.0.1", "-p", str(port)],
            stdout=output, stderr=output, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_port(port, process, timeout)
            yield LocalSnowflake(host="127.0.0.1", port=port)
        finally:
            stop_process_group(process)
