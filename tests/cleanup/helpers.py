"""Small helpers shared by the cleanup tests: run config and what a failed run said."""

from __future__ import annotations

from typing import Any

import dagster as dg


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
