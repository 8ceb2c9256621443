"""Known secrets never surface: not in logs, run metadata, exceptions, CLI output or ``repr``.

One PostgreSQL password (with characters that URL-encode), one AWS secret key, and Git host and
Dagster+ tokens are given the way users give them (``EnvVar``), then used through the resources,
the sources, the sensor, the cleanup job and the command line, on the happy path and on failure
paths. Everything a person or a log shipper could see is captured, and no secret, raw or
URL-encoded, may appear in it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import dagster as dg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from dagster_branch import (
    BranchDatabaseResource,
    DagsterBranchError,
    DagsterPlusBranchDeployments,
    GitHubPullRequests,
    GitLabMergeRequests,
    branch_cleanup_definitions,
)
from dagster_branch.cli import main
from dagster_branch.resources.s3 import BranchS3Resource
from tests.faults.world import BUCKET
from tests.sources.stand_ins import GitHubStandIn, json_response
from tests.support.deployments import Deploy
from tests.support.servers import free_port
from tests.support.snapshots import database_snapshot

PG_PASSWORD = "pgS3cr3tCore@w/rd:%x"
AWS_SECRET = "awsS3cr3tCore/abc+def=="
GITHUB_TOKEN = "ghp_GhS3cr3tCore0123456789abcdef"
GITLAB_TOKEN = "glpat-GlS3cr3tCore012345"
DAGSTER_TOKEN = "user:DpS3cr3tCore0123456789"
CORES = ("pgS3cr3tCore", "awsS3cr3tCore", "GhS3cr3tCore", "GlS3cr3tCore", "DpS3cr3tCore")
NOW = datetime.now(timezone.utc)


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret), quote(secret, safe="").lower()}


SECRET_FORMS = set().union(
    *map(_forms, (PG_PASSWORD, AWS_SECRET, GITHUB_TOKEN, GITLAB_TOKEN, DAGSTER_TOKEN))
) | set(CORES)


def assert_no_secret(text: str, *, expect: str) -> None:
    """``text`` holds none of the secrets, and does hold ``expect`` (the capture worked)."""
    assert expect in text, f"the capture missed {expect!r}: it would prove nothing"
    leaked = sorted(s for s in SECRET_FORMS if s in text)
    assert not leaked, f"secret(s) leaked: {leaked}"


class Capture:
    """Everything a person or a log shipper could see, in one string."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]):
        self.caplog, self.capsys = caplog, capsys
        self.parts: list[str] = []

    def add(self, *texts: object) -> None:
        self.parts.extend(str(t) for t in texts)

    def add_exception(self, exc: BaseException) -> None:
        self.add(repr(exc), "".join(traceback.format_exception(exc)))

    def add_run(self, instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> None:
        """The run's stored event log: messages, metadata, failures, tags."""
        for entry in instance.all_logs(result.run_id):
            self.add(entry.user_message, repr(entry.dagster_event))
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        self.add(run.tags, run.run_config)

    def text(self) -> str:
        out = self.capsys.readouterr()
        return "\n".join([*self.parts, self.caplog.text, out.out, out.err])


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Capture:
    caplog.set_level(logging.DEBUG)
    return Capture(caplog, capsys)


@pytest.fixture
def secret_env(
    postgres_url: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer
) -> Iterator[dict[str, str]]:
    """The secrets in environment variables, as Dagster+ hands them to code."""
    url = sa.make_url(postgres_url).set(password=PG_PASSWORD)
    rendered = url.render_as_string(hide_password=False)
    assert quote(PG_PASSWORD, safe="") in rendered  # the URL carries it URL-encoded
    env = {
        "WAREHOUSE_URL": rendered,
        "LAKE_SECRET": AWS_SECRET,
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "GITHUB_API_URL": httpserver.url_for("/").rstrip("/"),
        "LAKE_ENDPOINT": s3_endpoint,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    yield env


def _warehouse() -> BranchDatabaseResource:
    return BranchDatabaseResource(url=dg.EnvVar("WAREHOUSE_URL"), base_schema="analytics")


def _lake() -> BranchS3Resource:
    return BranchS3Resource(
        bucket=BUCKET,
        prefix="lake",
        endpoint_url=dg.EnvVar("LAKE_ENDPOINT"),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key=dg.EnvVar("LAKE_SECRET"),
        ledger_url=dg.EnvVar("WAREHOUSE_URL"),
    )


def _github() -> GitHubPullRequests:
    return GitHubPullRequests(
        repository="octo-org/analytics",
        token=dg.EnvVar("GITHUB_TOKEN"),
        api_url=dg.EnvVar("GITHUB_API_URL"),
    )


@dg.asset
def orders(warehouse: BranchDatabaseResource, lake: BranchS3Resource) -> None:
    with warehouse.get_connection() as conn:
        conn.execute(sa.text(f"CREATE TABLE {warehouse.table('orders')} AS SELECT 1 AS id"))
    lake.get_client().put_object(Bucket=lake.bucket_name, Key=lake.key("orders.csv"), Body=b"1")


DEFS_FILE = """
import dagster as dg
from dagster_branch import BranchDatabaseResource, GitHubPullRequests, branch_cleanup_definitions
from dagster_branch.resources.s3 import BranchS3Resource

warehouse = BranchDatabaseResource(url=dg.EnvVar("WAREHOUSE_URL"), base_schema="analytics")
lake = BranchS3Resource(
    bucket="acme-data", prefix="lake", endpoint_url=dg.EnvVar("LAKE_ENDPOINT"),
    region_name="us-east-1", aws_access_key_id="testing",
    aws_secret_access_key=dg.EnvVar("LAKE_SECRET"), ledger_url=dg.EnvVar("WAREHOUSE_URL"),
)
source = GitHubPullRequests(
    repository="octo-org/analytics", token=dg.EnvVar("GITHUB_TOKEN"),
    api_url=dg.EnvVar("GITHUB_API_URL"),
)
defs = branch_cleanup_definitions(stores={"warehouse": warehouse, "lake": lake}, source=source)
"""


def _materialize(capture: Capture) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [orders], resources={"warehouse": _warehouse(), "lake": _lake()}, instance=instance
        )
        assert result.success
        capture.add_run(instance, result)


def test_secrets_stay_hidden_through_the_whole_lifecycle(
    secret_env: dict[str, str],
    httpserver: HTTPServer,
    deploy: Deploy,
    capture: Capture,
    tmp_path: Path,
) -> None:
    github = GitHubStandIn(httpserver, token=GITHUB_TOKEN)
    github.clock = NOW - timedelta(days=2)
    for pr in (7, 8, 9):
        github.add(pr)
    github.close(7, merged=True, at=NOW - timedelta(hours=2))
    github.close(9, at=NOW - timedelta(hours=1))
    deploy("production")
    _materialize(capture)
    for pr in (7, 8, 9):
        deploy("branch", pr=pr)
        _materialize(capture)
    deploy("production")

    # The sensor, then the run it requests.
    defs = branch_cleanup_definitions(
        stores={"warehouse": _warehouse(), "lake": _lake()}, source=_github()
    )
    sensor = defs.resolve_sensor_def("branch_cleanup_sensor")
    with dg.build_sensor_context(resources=defs.resources, definitions=defs) as context:
        tick = sensor.evaluate_tick(context)
    capture.add(tick)
    requests = {r.tags["dagster-branch/namespace"]: r for r in tick.run_requests}
    assert set(requests) == {"pr_7", "pr_9"}
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("branch_cleanup").execute_in_process(
            run_config=requests["pr_7"].run_config, instance=instance
        )
        assert result.success
        capture.add_run(instance, result)

    # The command line, on the same Definitions loaded from a file.
    (tmp_path / "defs.py").write_text(DEFS_FILE)
    runner = CliRunner()
    for args in (
        ["context", "--json"],
        ["plan", "-f", str(tmp_path / "defs.py"), "--pr", "9", "--json"],
        ["plan", "-f", str(tmp_path / "defs.py"), "--pr", "8"],
        ["orphans", "-f", str(tmp_path / "defs.py"), "--all", "--json"],
        ["cleanup", "-f", str(tmp_path / "defs.py"), "--pr", "9", "--yes", "--verbose"],
        ["cleanup", "-f", str(tmp_path / "defs.py"), "--pr", "8", "--yes"],  # refused: open
    ):
        outcome = runner.invoke(main, args)
        capture.add(" ".join(args), outcome.exit_code, outcome.output)
    assert set(database_snapshot(secret_env["WAREHOUSE_URL"])) == {"analytics", "analytics__pr_8"}

    assert_no_secret(capture.text(), expect="analytics__pr_9")


def test_secrets_stay_hidden_when_things_fail(
    secret_env: dict[str, str],
    httpserver: HTTPServer,
    deploy: Deploy,
    capture: Capture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    github = GitHubStandIn(httpserver, token=GITHUB_TOKEN)
    github.add(7)
    github.close(7, merged=True, at=NOW - timedelta(hours=2))
    deploy("branch", pr=7)
    _materialize(capture)
    deploy("production")

    # The Git host echoes the token back in its error message.
    echo = json_response({"message": f"Bad credentials for token {GITHUB_TOKEN}"}, status=401)
    github.fail_with(echo, echo)
    defs = branch_cleanup_definitions(
        stores={"warehouse": _warehouse(), "lake": _lake()}, source=_github()
    )
    sensor = defs.resolve_sensor_def("branch_cleanup_sensor")
    with dg.build_sensor_context(resources=defs.resources, definitions=defs) as context:
        tick = sensor.evaluate_tick(context)
    assert not tick.run_requests and "refused the credentials" in tick.skip_message
    capture.add(tick.skip_message)
    with pytest.raises(DagsterBranchError) as refused:
        _github().model_copy(
            update={"token": GITHUB_TOKEN, "api_url": secret_env["GITHUB_API_URL"]}
        ).state_of(__import__("dagster_branch").Namespace.parse("pr_7"))
    capture.add_exception(refused.value)

    # Other sources with their own tokens, pointed at a closed port.
    dead = f"http://127.0.0.1:{free_port()}"
    for source in (
        GitLabMergeRequests(project="1", token=GITLAB_TOKEN, api_url=dead, timeout_seconds=0.2),
        DagsterPlusBranchDeployments(
            organization="hooli", api_token=DAGSTER_TOKEN, url=dead + "/graphql"
        ),
    ):
        capture.add(repr(source), str(source))
        with pytest.raises(DagsterBranchError) as unreachable:
            source.states_of([__import__("dagster_branch").Namespace.parse("pr_7")])
        capture.add_exception(unreachable.value)

    # The warehouse is unreachable: the run fails, and says so without the password.
    closed = sa.make_url(secret_env["WAREHOUSE_URL"]).set(port=free_port())
    monkeypatch.setenv("WAREHOUSE_URL", closed.render_as_string(hide_password=False))
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("branch_cleanup").execute_in_process(
            run_config={"ops": {"plan": {"config": {"namespace": "pr_7"}}}},
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        capture.add_run(instance, result)
    broken = BranchDatabaseResource(
        url=closed.render_as_string(hide_password=False), base_schema="analytics"
    )
    deploy("branch", pr=7)
    with pytest.raises(DagsterBranchError) as failed:
        broken.ensure_namespace()
    capture.add_exception(failed.value)
    broken.close()

    assert_no_secret(capture.text(), expect="pr_7")


def test_repr_and_display_of_resources_hide_secrets(postgres_url: str) -> None:
    url = sa.make_url(postgres_url).set(password=PG_PASSWORD).render_as_string(hide_password=False)
    objects: list[Any] = [
        BranchDatabaseResource(url=url, branch_url=url, local_url=url, base_schema="analytics"),
        BranchS3Resource(
            bucket=BUCKET,
            prefix="lake",
            aws_access_key_id="testing",
            aws_secret_access_key=AWS_SECRET,
            aws_session_token=AWS_SECRET,
            ledger_url=url,
        ),
        GitHubPullRequests(repository="octo-org/analytics", token=GITHUB_TOKEN),
        GitLabMergeRequests(project="1", token=GITLAB_TOKEN),
        DagsterPlusBranchDeployments(organization="hooli", api_token=DAGSTER_TOKEN),
    ]
    shown = [repr(o) for o in objects] + [str(o) for o in objects]
    shown.append(objects[0].display_url)
    assert_no_secret("\n".join(shown), expect="analytics")
