"""An environment that is half a branch deployment is refused, never run as production.

Only ``DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1`` makes a branch deployment. A pull request id, its
status or a git branch without that flag (unset, ``0``, or ``true`` as a hand-made preview setup
might write it) used to resolve to production, so the branch's writes landed in production.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dagster_branch import DagsterBranchConfigError
from dagster_branch.cli import main
from tests.faults.world import BUCKET, lake, write_files, write_tables
from tests.support.deployments import Deploy, set_deployment_variables
from tests.support.snapshots import database_snapshot, s3_snapshot

HALF_SET = {
    "pr id, flag unset": {
        "DAGSTER_CLOUD_DEPLOYMENT_NAME": "5f2c0a9e1b7d",
        "DAGSTER_CLOUD_PULL_REQUEST_ID": "7",
    },
    "pr status and branch, flag 0": {
        "DAGSTER_CLOUD_DEPLOYMENT_NAME": "5f2c0a9e1b7d",
        "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "0",
        "DAGSTER_CLOUD_PULL_REQUEST_STATUS": "OPEN",
        "DAGSTER_CLOUD_GIT_BRANCH": "feature/orders",
    },
    "flag true": {
        "DAGSTER_CLOUD_DEPLOYMENT_NAME": "5f2c0a9e1b7d",
        "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT": "true",
        "DAGSTER_CLOUD_PULL_REQUEST_ID": "7",
    },
    "git branch, no deployment name": {"DAGSTER_CLOUD_GIT_BRANCH": "feature/orders"},
}


def _expected_names(env: dict[str, str]) -> list[str]:
    if env.get("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT") == "true":
        return ["DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT='true' is not valid"]
    return [name for name in env if name.startswith(("DAGSTER_CLOUD_PULL", "DAGSTER_CLOUD_GIT"))]


@pytest.mark.parametrize("env", HALF_SET.values(), ids=HALF_SET.keys())
def test_a_half_set_branch_environment_writes_nowhere_and_says_how_to_fix_it(
    env: dict[str, str],
    postgres_url: str,
    s3_endpoint: str,
    s3_client: object,
    deploy: Deploy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    deploy("production")
    write_tables(postgres_url, ["orders"])
    write_files(lake(s3_endpoint, None), {"orders.csv": b"production"})
    tables, files = database_snapshot(postgres_url), s3_snapshot(s3_endpoint)
    set_deployment_variables(monkeypatch, env)

    with pytest.raises(DagsterBranchConfigError) as warehouse_error:
        write_tables(postgres_url, ["refunds"])
    with pytest.raises(DagsterBranchConfigError) as lake_error:
        write_files(lake(s3_endpoint, None), {"refunds.csv": b"half-set"})
    cli = CliRunner().invoke(main, ["context", "--json"])

    for message in (str(warehouse_error.value), str(lake_error.value), cli.output):
        for expected in _expected_names(env):
            assert expected in message
        assert "DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1" in message
    assert cli.exit_code == 1 and "Traceback" not in cli.output
    assert database_snapshot(postgres_url) == tables  # no production write, no schema made
    assert s3_snapshot(s3_endpoint) == files


def test_the_same_environment_with_the_flag_writes_its_own_namespace(
    postgres_url: str, s3_endpoint: str, s3_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    for name, value in HALF_SET["pr id, flag unset"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT", "1")

    write_tables(postgres_url, ["refunds"])
    write_files(lake(s3_endpoint, None), {"refunds.csv": b"pr 7"})

    assert set(database_snapshot(postgres_url)) == {"analytics__pr_7"}
    assert "_branches/pr_7/lake/refunds.csv" in s3_snapshot(s3_endpoint, prefix="_branches/pr_7/")
    assert s3_snapshot(s3_endpoint, prefix="lake/") == {}
    assert json.loads(CliRunner().invoke(main, ["context", "--json"]).stdout)["namespace"] == (
        "pr_7"
    )
