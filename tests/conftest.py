"""Real servers for every test: PostgreSQL, an S3-protocol server, a Snowflake-protocol server
(fakesnow), files for DuckDB and SQLite.

Session-scoped servers start once per test run; each test gets a fresh PostgreSQL database, a
reset S3 server and a Snowflake database of its own. The API stand-ins use pytest-httpserver's
``httpserver`` fixture. A test that needs PostgreSQL fails with a clear message when the
binaries are missing: it is never skipped.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa

from tests.support.deployments import set_deployment_variables
from tests.support.servers import (
    LocalPostgres,
    LocalS3,
    LocalServerError,
    LocalSnowflake,
    SnowflakeDatabase,
    local_postgres,
    local_s3,
    local_snowflake,
    use_test_credentials,
)


@pytest.fixture(autouse=True)
def _clean_deployment_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Dagster+ variables must never leak from the machine running the tests into them.
    set_deployment_variables(monkeypatch, {})


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres | str]:
    """A PostgreSQL server for the whole run (or the one named by the environment)."""
    external = os.environ.get("DAGSTER_BRANCH_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    try:
        with local_postgres() as server:
            yield server
    except LocalServerError as exc:
        pytest.fail(f"PostgreSQL is required for this test: {exc}", pytrace=False)


_database_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: LocalPostgres | str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database that is dropped after the test."""
    admin_url = (
        postgres_server if isinstance(postgres_server, str) else postgres_server.url("postgres")
    )
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# -- S3 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3]:
    """moto's S3 server, in its own process, for the whole run."""
    with local_s3() as server:
        yield server


@pytest.fixture
def s3_endpoint(s3_server: LocalS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """Endpoint URL of an empty S3 server, with dummy credentials in the environment."""
    s3_server.reset()
    use_test_credentials(monkeypatch)
    return s3_server.endpoint_url


@pytest.fixture
def s3_client(s3_endpoint: str):  # type: ignore[no-untyped-def]
    """A boto3 S3 client talking HTTP to the test server."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


# -- Snowflake (fakesnow) ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def snowflake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSnowflake]:
    """fakesnow's Snowflake-protocol server, in its own process, for the whole run; what it
    failed to serve (with fakesnow's traceback) is in fakesnow.log of the run's temp folder."""
    log = tmp_path_factory.mktemp("snowflake") / "fakesnow.log"
    with local_snowflake(log=log) as server:
        yield server


@pytest.fixture
def snowflake_database(snowflake_server: LocalSnowflake) -> SnowflakeDatabase:
    """A fresh database on the shared emulator (fakesnow cannot drop one: names never repeat)."""
    return snowflake_server.create_database(f"test_{os.getpid()}_{next(_database_numbers)}")


# -- files --------------------------------------------------------------------------------------


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a DuckDB file in the test's folder."""
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a SQLite file in the test's folder."""
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


# -- parallel runs ------------------------------------------------------------------------------


@pytest.hookimpl(optionalhook=True)  # only called when pytest-xdist is installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``make test``'s scheduling (:mod:`tests.support.scheduling`)."""
    from tests.support.scheduling import SlowFirstScheduling

    return SlowFirstScheduling(config, log)
