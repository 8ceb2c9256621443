"""The cleanup job the way production runs it: loaded from Definitions, each step in its own
process under the multiprocess executor, values passed between steps by the IO manager."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from dagster_branch.cleanup.job import CleanupOutcome
from dagster_branch.sources.github import GitHubPullRequests
from dagster_branch.testing import deployment_variables
from tests.cleanup.helpers import cleanup_config
from tests.cleanup.multiprocess_job import WORLD_VARIABLE, cleanup_job
from tests.cleanup.world import PRODUCTION, World, of_pr_7, outside_pr_7, snapshot
from tests.sources.stand_ins import GitHubStandIn

# Steps fork from a server that imported the job's module once (Dagster's documented way to cut
# the per-step start-up); each step is still a process of its own.
FORKSERVER = {"multiprocess": {"start_method": {"forkserver": {}}}}


def test_removal_steps_run_in_separate_processes_and_remove_exactly_pr_7(
    pg_world: World,
    github: GitHubStandIn,
    pull_requests: GitHubPullRequests,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = {
        "warehouse_url": pg_world.warehouse_url,
        "s3_endpoint": pg_world.s3_endpoint,
        "github_api_url": github.api_url,
        "github_token": pull_requests.token,
    }
    monkeypatch.setenv(WORLD_VARIABLE, json.dumps(spec))
    for name, value in deployment_variables(**PRODUCTION).items():
        monkeypatch.setenv(name, value)
    before = snapshot(pg_world)

    with (
        dg.instance_for_test() as instance,
        dg.execute_job(
            dg.reconstructable(cleanup_job),
            instance=instance,
            run_config={**cleanup_config("pr_7"), "execution": {"config": FORKSERVER}},
        ) as result,
    ):
        assert result.success
        outcome = result.output_for_node("record")
        events = instance.all_logs(result.run_id)

    assert isinstance(outcome, CleanupOutcome)
    assert {removal.store_key for removal in outcome.removals} == {"warehouse", "lake", "exports"}
    removal_pids = {
        event.dagster_event.step_key: event.dagster_event.pid
        for event in events
        if event.dagster_event is not None
        and event.dagster_event.is_step_start
        and (event.dagster_event.step_key or "").startswith("remove_from_")
    }
    assert len(removal_pids) == 3
    assert len(set(removal_pids.values())) == 3  # one process per store
    messages = [event.user_message for event in events]
    assert any("Removing 1 object(s) from 'lake'" in message for message in messages)
    after = snapshot(pg_world)
    assert of_pr_7(after) == []
    assert outside_pr_7(after) == outside_pr_7(before)
