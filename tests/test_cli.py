"""The ``dagster-branch`` command line against the example project on PostgreSQL and S3.

Production and the branch deployments of PR 7 (merged) and PR 8 (open) materialize the example
project into a PostgreSQL database and an S3 bucket on the test servers; the pull request
states come from a GitHub API stand-in. The commands then run as a user types them (click's
runner, in this process), and every assertion reads the stores directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer

from dagster_branch.cli import main
from tests.sources.stand_ins import GitHubStandIn
from tests.support.example import PYTHON_ASSETS, forget_example_project

BUCKET = "shop-lake"
TOKEN = "ghp_cli_secret_token_5d1e"
PASSWORD = "pg-secret-pw-8c2a"  # the test server trusts loopback, so any password works


@dataclass
class Shop:
    """The example project materialized by production and two branch deployments."""

    url: str
    s3: Any
    github: GitHubStandIn
    monkeypatch: pytest.MonkeyPatch

    def run(self, *args: str, input: str | None = None) -> Result:
        forget_example_project()
        result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
        everything = result.output + (result.stderr if result.stderr_bytes else "")
        assert TOKEN not in everything and PASSWORD not in everything  # secrets never printed
        return result

    def schemas(self) -> set[str]:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                names = conn.execute(sa.text("SELECT schema_name FROM information_schema.schemata"))
                return {n for n in names.scalars() if n.startswith("analytics")}
        finally:
            engine.dispose()

    def keys(self) -> set[str]:
        listing = self.s3.list_objects_v2(Bucket=BUCKET)
        return {item["Key"] for item in listing.get("Contents", [])}


PYTHON_ASSET_KEYS = [dg.AssetKey(name) for name in sorted(PYTHON_ASSETS)]


def _materialize(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    with monkeypatch.context() as phase:
        for name, value in variables.items():
            phase.setenv(name, value)
        forget_example_project()
        from example_project.definitions import build_definitions

        job = build_definitions().resolve_implicit_global_asset_job_def()
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        result = job.execute_in_process(
            run_config=quiet,
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=PYTHON_ASSET_KEYS,  # the dbt models have their own tests (test_dbt_*)
        )
        assert result.success


@pytest.fixture
def shop(
    postgres_url: str,
    s3_endpoint: str,
    s3_client: Any,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Shop]:
    url = sa.make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    github = GitHubStandIn(httpserver, repository="octo-org/shop", token=TOKEN)
    now = datetime.now(timezone.utc)
    github.add(7, head="feature/orders-v2", at=now - timedelta(hours=3))
    github.add(8, head="feature/new-region", at=now - timedelta(hours=2))
    github.close(7, merged=True, at=now - timedelta(hours=1))
    s3_client.create_bucket(Bucket=BUCKET)
    for name, value in {
        "WAREHOUSE_URL": url,
        "DATA_BUCKET": BUCKET,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "DAGSTER_BRANCH_PR_SOURCE": "github",
        "GITHUB_REPOSITORY": "octo-org/shop",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": github.api_url,
    }.items():
        monkeypatch.setenv(name, value)
    _materialize(monkeypatch, DAGSTER_CLOUD_DEPLOYMENT_NAME="prod")
    for number in ("7", "8"):
        _materialize(
            monkeypatch,
            DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT="1",
            DAGSTER_CLOUD_DEPLOYMENT_NAME=f"a1b2c3d4{number}",
            DAGSTER_CLOUD_PULL_REQUEST_ID=number,
        )
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")  # the CLI runs in production
    yield Shop(url=url, s3=s3_client, github=github, monkeypatch=monkeypatch)
    forget_example_project()


PRODUCTION_KEYS = {"shop/exports/orders.csv"}
PR_7_KEYS = {"_branches/pr_7/shop/exports/orders.csv"}
PR_8_KEYS = {"_branches/pr_8/shop/exports/orders.csv"}
EVERYTHING = {"analytics", "analytics__pr_7", "analytics__pr_8"}


def test_context_shows_the_branch_deployment_and_its_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "5f2c0a9e1b7d")
    monkeypatch.setenv("DAGSTER_CLOUD_PULL_REQUEST_ID", "42")
    monkeypatch.setenv("DAGSTER_CLOUD_GIT_BRANCH", "feature/orders")

    as_json = CliRunner().invoke(main, ["context", "--json"])
    as_text = CliRunner().invoke(main, ["context"])

    assert as_json.exit_code == 0
    summary = json.loads(as_json.stdout)
    assert summary["kind"] == "branch"
    assert summary["namespace"] == "pr_42"
    assert summary["git_branch"] == "feature/orders"
    assert "namespace" in as_text.stdout and "pr_42" in as_text.stdout


def test_context_names_a_malformed_variable_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")
    monkeypatch.setenv("DAGSTER_CLOUD_PULL_REQUEST_ID", "42; DROP SCHEMA analytics")

    result = CliRunner().invoke(main, ["context"])

    assert result.exit_code == 1
    assert "DAGSTER_CLOUD_PULL_REQUEST_ID" in result.output
    assert "Traceback" not in result.output


def test_plan_json_lists_the_merged_prs_objects_and_approves_them(shop: Shop) -> None:
    result = shop.run("plan", "-m", "example_project", "--pr", "7", "--json")

    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["namespace"] == "pr_7"
    assert plan["stores"] == ["warehouse", "lake"]
    found = {(o["store"], o["kind"], o["name"], o["container"]) for o in plan["objects"]}
    assert found == {
        ("warehouse", "schema", "analytics__pr_7", None),
        ("lake", "prefix", "_branches/pr_7/", BUCKET),
    }
    assert plan["verification"]["approved"] is True
    assert plan["verification"]["pull_request"]["state"] == "merged"
    assert shop.schemas() == EVERYTHING  # plan only reads
    assert shop.keys() == PRODUCTION_KEYS | PR_7_KEYS | PR_8_KEYS


def test_an_open_pr_is_planned_but_its_cleanup_refused_with_exit_code_3(shop: Shop) -> None:
    planned = shop.run("plan", "-m", "example_project", "--pr", "8")
    cleaned = shop.run("cleanup", "-m", "example_project", "--pr", "8", "--yes")

    assert planned.exit_code == 0, planned.output
    assert "analytics__pr_8" in planned.stdout
    assert "The cleanup job would refuse this plan now" in planned.stdout
    assert "open" in planned.stdout
    assert cleaned.exit_code == 3
    assert "Nothing was removed: verification refused the cleanup of pr_8." in cleaned.output
    assert shop.schemas() == EVERYTHING
    assert shop.keys() == PRODUCTION_KEYS | PR_7_KEYS | PR_8_KEYS


def test_dry_run_and_a_declined_confirmation_remove_nothing(shop: Shop) -> None:
    dry = shop.run("cleanup", "-m", "example_project", "--pr", "7", "--dry-run")
    declined = shop.run("cleanup", "-m", "example_project", "--pr", "7", input="n\n")

    assert dry.exit_code == 0, dry.output
    rows = [
        line.split()
        for line in dry.stdout.splitlines()
        if line.endswith(("would remove  3", "would remove  1"))
    ]
    assert [row[:3] for row in rows] == [
        ["warehouse", "schema", "analytics__pr_7"],
        ["lake", "prefix", f"{BUCKET}/_branches/pr_7/"],
    ]
    assert "Dry run: nothing was removed from pr_7." in dry.stdout
    assert declined.exit_code == 1
    assert "Remove these 2 object(s) of pr_7? [y/N]" in declined.output
    assert "Nothing was removed." in declined.output
    assert shop.schemas() == EVERYTHING
    assert shop.keys() == PRODUCTION_KEYS | PR_7_KEYS | PR_8_KEYS


def test_a_schema_production_depends_on_is_shown_refused_and_kept(shop: Shop) -> None:
    engine = sa.create_engine(shop.url)
    try:
        with engine.begin() as conn:
            [table] = sa.inspect(conn).get_table_names(schema="analytics__pr_7")[:1]
            conn.execute(
                sa.text(
                    f'CREATE VIEW analytics.pr_7_copy AS SELECT * FROM analytics__pr_7."{table}"'
                )
            )
    finally:
        engine.dispose()
    dependent = f"view analytics.pr_7_copy selects from analytics__pr_7.{table}"

    planned = shop.run("plan", "-m", "example_project", "--pr", "7")
    as_json = shop.run("plan", "-m", "example_project", "--pr", "7", "--json")
    cleaned = shop.run("cleanup", "-m", "example_project", "--pr", "7", "--yes")

    assert planned.exit_code == 0, planned.output
    [row] = [line for line in planned.stdout.splitlines() if "analytics__pr_7" in line][:1]
    assert row.endswith("REFUSED: outside objects depend on it")
    assert "Refused (objects outside the namespace depend on these" in planned.stdout
    assert f"    - {dependent}" in planned.stdout
    objects = {o["name"]: o for o in json.loads(as_json.stdout)["objects"]}
    assert objects["analytics__pr_7"]["dependents"] == [dependent]
    assert objects["_branches/pr_7/"]["dependents"] == []
    assert cleaned.exit_code == 4, cleaned.output  # incomplete: the refused schema is kept
    assert dependent in cleaned.output
    assert shop.schemas() == EVERYTHING
    assert shop.keys() == PRODUCTION_KEYS | PR_8_KEYS  # the rest of the plan went on


def test_cleanup_yes_removes_exactly_the_merged_prs_namespace(shop: Shop) -> None:
    result = shop.run("cleanup", "-m", "example_project", "--pr", "7", "--yes")

    assert result.exit_code == 0, result.output
    assert "Cleaned pr_7." in result.stdout
    assert shop.schemas() == {"analytics", "analytics__pr_8"}
    assert shop.keys() == PRODUCTION_KEYS | PR_8_KEYS

    again = shop.run("cleanup", "-m", "example_project", "--pr", "7", "--yes")
    assert again.exit_code == 0
    assert "pr_7 owns nothing in warehouse, lake: nothing to remove." in again.stdout


def test_orphans_lists_what_the_sensor_would_clean(shop: Shop) -> None:
    result = shop.run("orphans", "-m", "example_project", "--json")
    everything = shop.run("orphans", "-m", "example_project", "--all")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["live"] == ["pr_7", "pr_8"]
    assert [(n["namespace"], n["clean"], n["state"]) for n in report["namespaces"]] == [
        ("pr_7", True, "merged")
    ]
    assert everything.exit_code == 0
    lines = {line.split()[0]: line for line in everything.stdout.splitlines() if line[:3] == "pr_"}
    assert "clean now" in lines["pr_7"]
    assert "keep" in lines["pr_8"] and "open" in lines["pr_8"]
    assert "1 of 2 live namespace(s) would be cleaned now" in everything.stdout


def test_unrecorded_objects_are_shown_kept_and_removed_only_with_include_unrecorded(
    shop: Shop,
) -> None:
    engine = sa.create_engine(shop.url)
    with engine.begin() as conn:  # pr_9-shaped, made by hand: no ledger row names them
        conn.execute(sa.text("CREATE SCHEMA analytics__pr_9"))
        conn.execute(sa.text("CREATE TABLE analytics__pr_9.by_hand AS SELECT 1 AS x"))
    engine.dispose()
    shop.s3.put_object(Bucket=BUCKET, Key="_branches/pr_9/other.csv", Body=b"9")

    orphans = shop.run("orphans", "-m", "example_project")
    planned = shop.run("plan", "-m", "example_project", "--namespace", "pr_9")
    kept = shop.run("cleanup", "-m", "example_project", "--namespace", "pr_9", "--no-pr-check")

    assert orphans.exit_code == 0, orphans.output
    assert "2 unrecorded object(s)" in orphans.stdout
    rows = [line.split() for line in orphans.stdout.splitlines() if line.startswith("pr_9 ")]
    assert rows == [
        ["pr_9", "warehouse", "schema", "analytics__pr_9", "discovery"],
        ["pr_9", "lake", "prefix", f"{BUCKET}/_branches/pr_9/", "s3"],
    ]
    assert planned.exit_code == 0, planned.output
    assert planned.stdout.count("unrecorded: kept") == 2
    assert "0 object(s) to remove: none." in planned.stdout, planned.stdout
    assert "--include-unrecorded removes them too" in planned.stdout
    assert kept.exit_code == 0 and "analytics__pr_9" in shop.schemas()
    assert {"_branches/pr_9/other.csv"} <= shop.keys()

    included = shop.run(
        "cleanup", "-m", "example_project", "--namespace", "pr_9", "--no-pr-check",
        "--include-unrecorded", "--yes",
    )  # fmt: skip
    assert included.exit_code == 0, included.output
    assert "remove (unrecorded)" in included.stdout
    assert shop.schemas() == EVERYTHING
    assert shop.keys() == PRODUCTION_KEYS | PR_7_KEYS | PR_8_KEYS


def test_usage_errors_exit_2_and_say_what_to_pass() -> None:
    runner = CliRunner()
    no_target = runner.invoke(main, ["plan", "--pr", "7"])
    bad_number = runner.invoke(main, ["plan", "-m", "example_project", "--pr", "7; rm -rf /"])
    two_names = runner.invoke(main, ["plan", "-f", "x.py", "--pr", "7", "--namespace", "pr_7"])

    assert no_target.exit_code == 2
    assert "Give exactly one of -m MODULE or -f FILE" in no_target.output
    assert bad_number.exit_code == 2 and "is not valid" in bad_number.output
    assert two_names.exit_code == 2
    assert "exactly one of --namespace, --pr or --branch" in two_names.output


def test_a_module_that_does_not_exist_exits_1_with_advice() -> None:
    result = CliRunner().invoke(main, ["plan", "-m", "no_such_project", "--pr", "7"])

    assert result.exit_code == 1
    assert "Module 'no_such_project' was not found" in result.output
    assert "Traceback" not in result.output


def test_unset_environment_variables_are_named_in_one_line_without_a_stack_trace(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WAREHOUSE_URL_UNSET_X", raising=False)
    project = tmp_path / "unset_project.py"
    project.write_text(
        "import dagster as dg\n"
        "from dagster_branch import BranchDatabaseResource\n"
        "warehouse = BranchDatabaseResource(\n"
        "    url=dg.EnvVar('WAREHOUSE_URL_UNSET_X'), base_schema='analytics'\n"
        ")\n"
        "defs = dg.Definitions(resources={'warehouse': warehouse})\n"
    )

    result = CliRunner().invoke(main, ["plan", "-f", str(project), "--pr", "7"])

    assert result.exit_code == 1
    assert "WAREHOUSE_URL_UNSET_X are not set" in result.output
    assert "Stack Trace" not in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
