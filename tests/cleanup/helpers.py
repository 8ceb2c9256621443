"""Small helpers shared by the cleanup tests: the job, its run config, what a run said."""

from __future__ import annotations

from typing import Any

import dagster as dg

from dagster_branch.cleanup.job import CleanupOutcome, build_branch_cleanup_job

STORE_KEYS = ("warehouse", "lake", "exports")
CLEANUP_JOB = build_branch_cleanup_job(store_keys=STORE_KEYS)


def cleanup_config(namespace: str = "pr_7", **options: object) -> dict[str, Any]:
    """The run config the sensor sends: one block on the ``plan`` op."""
    return {"ops": {"plan": {"config": {"namespace": namespace, **options}}}}


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every failure description and error message of a run, causes included."""
    texts: list[str] = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                texts.append(data.user_failure_data.description)
            error = data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    return "\n".join(texts)


def failed_steps(result: dg.ExecuteInProcessResult) -> set[str]:
    """Names of the ops whose step failed."""
    return {
        event.step_key for event in result.all_events if event.is_step_failure and event.step_key
    }


def step_started(result: dg.ExecuteInProcessResult, step_key: str) -> bool:
    """Whether the op's step started at all (a refused run never starts a removal step)."""
    return any(e.is_step_start and e.step_key == step_key for e in result.all_events)


def outcome_of(result: dg.ExecuteInProcessResult) -> CleanupOutcome:
    """The record op's outcome of a run that must have succeeded (else: why it failed)."""
    assert result.success, failure_text(result)
    outcome = result.output_for_node("record")
    assert isinstance(outcome, CleanupOutcome)
    return outcome
