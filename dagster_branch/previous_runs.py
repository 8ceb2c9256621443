"""A namespace still live after its cleanup ran: when to request the cleanup again.

A cleanup run is keyed by the pull request's closing (``cleanup:pr_42:<ended at>``), so Dagster
launches it once per closing. The namespace can still be live after that run finished: the run
failed (a store was down, a ledger update was lost), it was cancelled, or a branch deployment
still running after the merge wrote again. The sensor then looks at the namespace's last cleanup
run and, once it has been finished for ``retry_after``, requests attempt 2, 3, … (run keys
``cleanup:pr_42:<ended at>:attempt-2``), up to ``max_attempts``; after that it says so in the
tick's log and leaves the namespace to a person (``dagster-branch cleanup --pr 42``).

Example::

    lookup = instance_lookup(context.instance, "branch_cleanup")
    follow = follow_up(base_key, lookup(namespace), now=now)
    follow.run_key  # None: nothing to request now (running, waiting, or given up)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg

from dagster_branch.naming import Namespace
from dagster_branch.run_tags import RUN_KEY_TAG, TAG_NAMESPACE

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_RETRY_AFTER",
    "FollowUp",
    "PreviousRun",
    "PreviousRunLookup",
    "follow_up",
    "instance_lookup",
]

DEFAULT_RETRY_AFTER = timedelta(hours=1)
DEFAULT_MAX_ATTEMPTS = 3
ATTEMPT_SEPARATOR = ":attempt-"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class PreviousRun:
    """The latest cleanup run of a namespace, as far as the sensor needs to know it."""

    run_key: str | None
    status: str
    finished_at: datetime | None  # None while queued or running


PreviousRunLookup = Callable[[Namespace], "PreviousRun | None"]


@dataclass(frozen=True)
class FollowUp:
    """What to do about a namespace whose cleanup for this closing may already have run.

    ``run_key`` is the key to request now, or ``None`` with ``reason`` saying why not.
    """

    run_key: str | None
    reason: str = ""
    gave_up: bool = False


def attempt_of(run_key: str, base_key: str) -> int:
    """1 for the first run of a closing, n for ``<base_key>:attempt-n``."""
    suffix = run_key.removeprefix(base_key).removeprefix(ATTEMPT_SEPARATOR)
    return int(suffix) if suffix.isdigit() else 1


def follow_up(
    base_key: str,
    previous: PreviousRun | None,
    *,
    now: datetime,
    retry_after: timedelta = DEFAULT_RETRY_AFTER,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> FollowUp:
    """The run key to request for a live, cleanable namespace, given its latest cleanup run."""
    key = previous.run_key if previous else None
    if key is None or not (key == base_key or key.startswith(base_key + ATTEMPT_SEPARATOR)):
        return FollowUp(base_key)  # never cleaned for this closing (a new closing, or a new PR)
    if previous is None or previous.finished_at is None:
        return FollowUp(None, "its cleanup run is queued or running")
    attempt = attempt_of(key, base_key)
    if attempt >= max_attempts:
        return FollowUp(
            None,
            f"still live after {attempt} cleanup run(s) (last: {previous.status}); giving up: "
            "look at the last run's errors, then run `dagster-branch cleanup` for it",
            gave_up=True,
        )
    if now - previous.finished_at < retry_after:
        return FollowUp(None, f"still live after a {previous.status} cleanup; retry later")
    return FollowUp(f"{base_key}{ATTEMPT_SEPARATOR}{attempt + 1}")


def instance_lookup(instance: dg.DagsterInstance, job_name: str) -> PreviousRunLookup:
    """Find a namespace's latest run of ``job_name`` by its namespace tag (one indexed query)."""

    def lookup(namespace: Namespace) -> PreviousRun | None:
        records = instance.get_run_records(
            filters=dg.RunsFilter(job_name=job_name, tags={TAG_NAMESPACE: namespace.key}),
            limit=1,
        )
        if not records:
            return None
        record = records[0]
        run = record.dagster_run
        finished_at = None
        if run.status in FINISHED:
            end = record.end_time or record.update_timestamp.timestamp()
            finished_at = datetime.fromtimestamp(end, tz=timezone.utc)
        return PreviousRun(run.tags.get(RUN_KEY_TAG), run.status.value, finished_at)

    return lookup
