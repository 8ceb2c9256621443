"""The last check before anything is deleted: refuse the plan unless every key agrees.

Promise 1 of docs/safety.md asks two keys to agree before an object is removed: its name parses
back to the namespace being cleaned, and that namespace is not protected. Promise 4 asks the
cleanup to fail closed: a PR source that cannot answer, or a PR that was reopened, means "do
nothing now".
:func:`check_plan` collects every reason to refuse (not just the first), so that one failed run
tells the operator everything to fix; :func:`verify_plan` raises them as one
:class:`~dagster_branch.errors.CleanupRefusedError`.

Example::

    verdict = check_plan(plan, stores, source=github, require_closed=True, max_objects=10_000)
    if verdict.reasons:
        print("\\n".join(verdict.reasons))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dagster_branch.cleanup.plan import DEFAULT_MAX_OBJECTS, CleanupPlan, PlannedObject
from dagster_branch.context import DeploymentContext
from dagster_branch.errors import CleanupRefusedError, DagsterBranchError
from dagster_branch.inventory import BranchStore
from dagster_branch.pull_requests import PullRequestState
from dagster_branch.sources.base import PullRequestSource

__all__ = [
    "DEFAULT_MAX_OBJECTS",
    "Verdict",
    "branch_deployment_refusal",
    "check_plan",
    "ownership_problems",
    "refusal_message",
    "refuse_in_branch_deployment",
    "verify_plan",
]


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check_plan`: every reason to refuse, and the PR as asked just now."""

    reasons: tuple[str, ...] = ()
    pull_request: PullRequestState | None = None

    @property
    def approved(self) -> bool:
        """True when nothing stands in the way of the removal."""
        return not self.reasons


def branch_deployment_refusal(entry_point: str, env: Mapping[str, str] | None = None) -> str | None:
    """Why ``entry_point`` (the cleanup job, the sensor, ...) must not run here, or ``None``.

    The cleanup runs from production only: a branch deployment could otherwise clean other
    branches' data (with ``require_closed: false``, an open PR's), or its own while it writes.

    Raises:
        DagsterBranchConfigError: the environment is malformed or half a branch deployment.
    """
    here = DeploymentContext.from_env(env)
    if not here.is_branch_deployment:
        return None
    return (
        f"{entry_point} refuses to run inside a branch deployment "
        f"(DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1, namespace {here.namespace}): from there it could "
        "remove other branches' data. Run it from the production deployment (where the sensor "
        "launches it), or from a shell with the production environment."
    )


def refuse_in_branch_deployment(entry_point: str, env: Mapping[str, str] | None = None) -> None:
    """Raise :class:`CleanupRefusedError` when running inside a branch deployment.

    Called first by every entry point of the cleanup (job, sensor, schedule, CLI), when it runs,
    not when the Definitions load: branch deployments load the same code.

    Example::

        >>> production = {"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod"}
        >>> refuse_in_branch_deployment("The cleanup job", production)  # passes: production
    """
    reason = branch_deployment_refusal(entry_point, env)
    if reason is not None:
        raise CleanupRefusedError(reason)


def _deployment_reasons(env: Mapping[str, str] | None) -> list[str]:
    """The cleanup runs from production (or a shell with its environment), never a branch."""
    try:
        reason = branch_deployment_refusal("The cleanup", env)
    except DagsterBranchError as exc:
        return [f"The deployment this job runs in cannot be determined ({exc}); fix it first."]
    return [reason] if reason else []


def ownership_problems(
    plan: CleanupPlan, stores: Mapping[str, BranchStore]
) -> dict[PlannedObject, str]:
    """Why each object the plan would remove must not be (another namespace, no such store,
    a name or place that is not the namespace's: a *mismatch*); objects without a problem are
    left out, and so are unrecorded objects the plan keeps (they are only reported)."""
    problems: dict[PlannedObject, str] = {}
    for planned in plan.removable:
        if planned.obj.namespace != plan.namespace:
            problems[planned] = (
                f"belongs to {planned.obj.namespace}, not {plan.namespace}: the store reported "
                "an object of another namespace; nothing will be removed."
            )
            continue
        store = stores.get(planned.store_key)
        if store is None:
            problems[planned] = "no store is configured under that key."
            continue
        try:
            problem = store.ownership_problem(planned.obj)
        except DagsterBranchError as exc:
            problem = f"its ownership could not be checked ({exc})"
        if problem:
            problems[planned] = problem
    return problems


def _ownership_reasons(plan: CleanupPlan, stores: Mapping[str, BranchStore]) -> list[str]:
    return [
        f"{planned.describe()}: {problem}"
        for planned, problem in ownership_problems(plan, stores).items()
    ]


def _pull_request_reasons(
    plan: CleanupPlan, source: PullRequestSource | None, source_key: str | None
) -> tuple[list[str], PullRequestState | None]:
    """Ask the source again, right before deleting: only a closed or merged PR passes."""
    if source is None:
        return [
            f"require_closed is true but no pull-request source is configured"
            f"{f' under the resource key {source_key!r}' if source_key else ''}: configure one, "
            "or set require_closed: false to clean without asking the Git host."
        ], None
    try:
        state = source.state_of(plan.namespace)
    except DagsterBranchError as exc:  # SourceError, or a source that is misconfigured
        return [
            f"The pull-request source could not tell whether {plan.namespace} is closed ({exc}); "
            "nothing is removed until it can. Run again later."
        ], None
    if state is None:
        return [
            f"The pull-request source does not know {plan.namespace}: an unknown PR is treated as "
            "open. Set require_closed: false (dagster-branch cleanup --no-pr-check) only if you "
            "are sure the branch is gone."
        ], None
    if not state.is_finished:
        number = f"#{state.number}" if state.number is not None else str(plan.namespace)
        return [
            f"Pull request {number} of {plan.namespace} is open (reopened since it was closed?): "
            "its objects are still in use, so nothing is removed."
        ], state
    return [], state


def check_plan(
    plan: CleanupPlan,
    stores: Mapping[str, BranchStore],
    *,
    source: PullRequestSource | None,
    require_closed: bool = True,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    source_key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Verdict:
    """Every reason to refuse ``plan``; an empty tuple means the removal may go ahead.

    Checks, all of them every time: the deployment is not a branch deployment;
    each object belongs to the plan's namespace and its store finds no ownership problem (name
    does not parse back, protected or production name); the plan is within ``max_objects``; and,
    with ``require_closed``, the PR source says now that the PR is closed or merged.

    Args:
        plan: the plan to check, from :func:`~dagster_branch.cleanup.plan.build_cleanup_plan`.
        stores: the same stores, by resource key, that built the plan.
        source: the PR state source; may be ``None`` only with ``require_closed=False``.
        require_closed: ask the source again and refuse unless the PR is closed or merged.
        max_objects: circuit breaker on what the removal would delete, contents included:
            each schema or table and the relations inside a schema; each S3 key, version,
            delete marker and incomplete upload of a prefix or bucket.
        source_key: the source's resource key, used only in messages.
        env: environment to read the running deployment from (default ``os.environ``).
    """
    reasons = _deployment_reasons(env)
    reasons += _ownership_reasons(plan, stores)
    if plan.contents > max_objects:
        reasons.append(
            f"The plan for {plan.namespace} would remove "
            f"{'at least ' if not plan.contents_complete else ''}{plan.contents:,} objects "
            f"({_contents_by_object(plan)}), more than max_objects={max_objects:,}: nothing "
            "will be removed. Check the plan (dagster-branch plan), then raise max_objects in "
            "the run config if this many is expected."
        )
    pull_request = None
    if require_closed:
        pr_reasons, pull_request = _pull_request_reasons(plan, source, source_key)
        reasons += pr_reasons
    return Verdict(reasons=tuple(reasons), pull_request=pull_request)


def _contents_by_object(plan: CleanupPlan, shown: int = 5) -> str:
    """``warehouse: schema analytics__pr_7 holds 300, …``: the largest objects first."""
    largest = sorted(plan, key=lambda p: -p.survey.contents)[:shown]
    parts = [
        f"{p.describe()}: {'at least ' if not p.survey.complete else ''}{p.survey.contents:,}"
        for p in largest
    ]
    more = len(plan) - len(largest)
    return "; ".join(parts) + (f"; and {more} more object(s)" if more > 0 else "")


def refusal_message(plan: CleanupPlan, reasons: tuple[str, ...] | list[str]) -> str:
    """One message listing every reason, for the run failure and the command line."""
    lines = "\n".join(f"  - {reason}" for reason in reasons)
    return f"Refusing to clean {plan.namespace}; nothing was removed:\n{lines}"


def verify_plan(
    plan: CleanupPlan,
    stores: Mapping[str, BranchStore],
    *,
    source: PullRequestSource | None,
    require_closed: bool = True,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    source_key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> PullRequestState | None:
    """Raise :class:`CleanupRefusedError` listing every reason to refuse ``plan``.

    Returns the PR state the source reported (``None`` when not asked or unknown), so the report
    can say how long ago the PR was closed.

    Example::

        pull_request = verify_plan(plan, stores, source=github)
    """
    verdict = check_plan(
        plan,
        stores,
        source=source,
        require_closed=require_closed,
        max_objects=max_objects,
        source_key=source_key,
        env=env,
    )
    if verdict.reasons:
        raise CleanupRefusedError(refusal_message(plan, verdict.reasons))
    return verdict.pull_request
