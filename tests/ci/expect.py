"""What the three templates' tests expect of the calls that reached the Dagster+ stand-in."""

from __future__ import annotations

import dagster as dg

from tests.ci.dagster_plus_standin import Call


def one(calls: list[Call], operation: str) -> Call:
    """The single call of ``operation`` among ``calls``."""
    found = [c for c in calls if c.operation == operation]
    assert len(found) == 1, [c.operation for c in calls]
    return found[0]


def cleanup_launched(calls: list[Call], namespace: str, job: dg.JobDefinition) -> dict[str, str]:
    """Assert ``branch_cleanup`` was launched in production for ``namespace``; return its tags."""
    launched = one(calls, "CliLaunchRun")
    params = launched.variables["executionParams"]
    assert launched.deployment == "prod"
    assert params["selector"]["repositoryLocationName"] == "example_project"
    assert params["selector"]["jobName"] == "branch_cleanup"
    assert params["runConfigData"] == {"ops": {"plan": {"config": {"namespace": namespace}}}}
    assert dg.validate_run_config(job, params["runConfigData"])  # the real job accepts it
    return {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]}
