"""``dagster-branch plan`` and ``dagster-branch cleanup``: one namespace, shown or removed.

``plan`` only reads: it asks every branch-aware store what the namespace owns and runs the same
verification as the cleanup job, so it also says whether the job would refuse, and why.
``cleanup`` shows that plan, asks for confirmation (unless ``--yes``) and then runs the
Definitions' own cleanup job in process, so the run, its checks and its metadata are exactly
those of a run launched by the sensor.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import click
import dagster as dg

from dagster_branch.cleanup.job import CleanupOutcome
from dagster_branch.cleanup.plan import CleanupPlan, PlannedObject, build_cleanup_plan
from dagster_branch.cleanup.report import KEPT_STATUS, plan_status, status_of
from dagster_branch.cleanup.verify import (
    Verdict,
    check_plan,
    ownership_problems,
    refuse_in_branch_deployment,
)
from dagster_branch.cli.errors import (
    EXIT_ERROR,
    EXIT_INCOMPLETE,
    EXIT_REFUSED,
    CommandFailed,
    failure,
    reports_errors,
)
from dagster_branch.cli.output import echo_json, format_table
from dagster_branch.cli.target import (
    definitions_options,
    load_target,
    namespace_options,
    open_resources,
    resolve_namespace,
)
from dagster_branch.naming import Namespace
from dagster_branch.run_tags import TAG_NAMESPACE, TAG_TRIGGER

__all__ = ["cleanup", "plan"]

DEFAULT_JOB = "branch_cleanup"


def _inspect(
    defs: dg.Definitions,
    namespace: Namespace,
    *,
    require_closed: bool = True,
    include_unrecorded: bool = False,
) -> tuple[CleanupPlan, Verdict, dict[PlannedObject, str]]:
    with open_resources(defs) as opened:
        cleanup_plan = build_cleanup_plan(
            namespace, opened.stores, include_unrecorded=include_unrecorded
        )
        problems = ownership_problems(cleanup_plan, opened.stores)
        verdict = check_plan(
            cleanup_plan,
            opened.stores,
            source=opened.source,
            require_closed=require_closed,
            source_key=opened.source_key,
        )
    return cleanup_plan, verdict, problems


def _short_status(cleanup_plan: CleanupPlan, planned: PlannedObject, problems: Any) -> str:
    """The table's status cell; a refusal's reason is printed in full below the table."""
    status = plan_status(cleanup_plan, planned, problems)
    if not status.startswith("refused: "):
        return status
    return "refused: mismatch" if "mismatch:" in status else "refused"


def _plan_rows(cleanup_plan: CleanupPlan, problems: dict[PlannedObject, str]) -> list[list[str]]:
    return [
        [
            p.store_key,
            p.kind.value,
            p.name,
            ", ".join(sorted(p.obj.found_in)) or "-",
            f"{p.survey.contents:,}{'' if p.survey.complete else '+'}",
            "REFUSED: outside objects depend on it"
            if p.survey.dependents
            else _short_status(cleanup_plan, p, problems),
        ]
        for p in cleanup_plan
    ]


def _echo_refused(refused: list[tuple[str, tuple[str, ...]]]) -> None:
    """Each refused object and, indented below it, every dependent outside the namespace."""
    if not refused:
        return
    click.echo(
        "\nRefused (objects outside the namespace depend on these; nothing of them is removed):"
    )
    for described, dependents in refused:
        click.echo(f"  {described}")
        for dependent in dependents:
            click.echo(f"    - {dependent}")


def _echo_plan(
    cleanup_plan: CleanupPlan, verdict: Verdict, problems: dict[PlannedObject, str]
) -> None:
    stores = ", ".join(cleanup_plan.store_keys)
    if cleanup_plan.is_empty:
        click.echo(f"{cleanup_plan.namespace} owns nothing in {stores}: nothing to remove.")
        return
    click.echo(f"Plan for {cleanup_plan.namespace} (stores: {stores})\n")
    header = ["store", "kind", "name", "found in", "contents", "status"]
    click.echo(format_table(header, _plan_rows(cleanup_plan, problems)))
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(cleanup_plan.counts().items()))
    inside = f"{cleanup_plan.contents:,}{'' if cleanup_plan.contents_complete else '+'}"
    with_contents = f"; {inside} to remove with contents" if cleanup_plan.removable else ""
    click.echo(
        f"\n{len(cleanup_plan.removable)} object(s) to remove: {counts or 'none'}{with_contents}."
    )
    if cleanup_plan.kept:
        click.echo(
            f"{len(cleanup_plan.kept)} unrecorded object(s) kept: found by name only, no record "
            "of this code location names them (--include-unrecorded removes them too)."
        )
    _echo_refused([(p.describe(), p.survey.dependents) for p in cleanup_plan.refused()])
    if verdict.reasons:
        click.echo("The cleanup job would refuse this plan now:")
        for reason in verdict.reasons:
            click.echo(f"  - {reason}")
    elif cleanup_plan.refused():
        click.echo(
            "Verification passes, but the refused objects above are kept, so the run would "
            "remove the others and then fail naming them."
        )
    else:
        click.echo("Verification passes: the cleanup job would remove exactly these.")


def _verdict_dict(verdict: Verdict) -> dict[str, Any]:
    state = verdict.pull_request
    return {
        "approved": verdict.approved,
        "reasons": list(verdict.reasons),
        "pull_request": state.model_dump(mode="json") if state is not None else None,
    }


_INCLUDE_UNRECORDED = click.option(
    "--include-unrecorded",
    is_flag=True,
    help="Also remove objects found by their name alone (no ledger row, marker or tag of this "
    "code location records them); by default they are listed and kept.",
)


@click.command()
@definitions_options
@namespace_options
@_INCLUDE_UNRECORDED
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@reports_errors
def plan(
    module_name: str | None,
    python_file: str | None,
    namespace: str | None,
    pull_request: str | None,
    branch: str | None,
    include_unrecorded: bool,
    as_json: bool,
) -> None:
    """Show what the cleanup of one namespace would remove (reads only)."""
    target = resolve_namespace(namespace, pull_request, branch)
    defs = load_target(module_name, python_file)
    cleanup_plan, verdict, problems = _inspect(defs, target, include_unrecorded=include_unrecorded)
    if as_json:
        body = cleanup_plan.to_dict()
        for planned, entry in zip(cleanup_plan, body["objects"], strict=True):
            entry["status"] = plan_status(cleanup_plan, planned, problems)
        echo_json({**body, "verification": _verdict_dict(verdict)})
    else:
        _echo_plan(cleanup_plan, verdict, problems)


@contextlib.contextmanager
def _instance() -> Iterator[dg.DagsterInstance]:
    """The instance of ``DAGSTER_HOME`` when set (the run shows in the UI), else a throwaway
    one whose files are removed afterwards."""
    if os.environ.get("DAGSTER_HOME"):
        yield dg.DagsterInstance.get()
        return
    with tempfile.TemporaryDirectory(prefix="dagster-branch-cli-") as folder:
        yield dg.DagsterInstance.ephemeral(tempdir=folder)


def _failure_of(result: dg.ExecuteInProcessResult) -> CommandFailed:
    """The run's first step failure as a message and exit code."""
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        user = data.user_failure_data
        if user is not None:
            kind = user.metadata.get("error")
            kind_name = getattr(kind, "value", None)
            # The job's failure metadata names the library error's class.
            code = {"CleanupRefusedError": EXIT_REFUSED, "CleanupIncompleteError": EXIT_INCOMPLETE}
            return failure(
                user.description or "the cleanup failed", code.get(str(kind_name), EXIT_ERROR)
            )
        message = data.error.message.strip() if data.error is not None else "unknown error"
        return failure(f"The cleanup run failed: {message}", EXIT_ERROR)
    return failure("The cleanup run failed before any step ran.", EXIT_ERROR)


def _echo_outcome(outcome: CleanupOutcome) -> None:
    rows = [
        [removal.store_key, r.obj.kind.value, r.obj.qualified_name,
         status_of(r, dry_run=outcome.dry_run), r.objects or "-"]
        for removal in outcome.removals
        for r in removal.results
    ] + [
        [p.store_key, p.kind.value, p.name, KEPT_STATUS, "-"] for p in outcome.plan.kept
    ]  # fmt: skip
    if rows:
        click.echo(format_table(["store", "kind", "name", "status", "objects"], rows))
    _echo_refused(
        [
            (f"{removal.store_key}: {r.obj.kind.value} {r.obj.qualified_name}", r.dependents)
            for removal in outcome.removals
            for r in removal.results
            if r.dependents
        ]
    )
    verb = "Dry run: nothing was removed from" if outcome.dry_run else "Cleaned"
    click.echo(f"{verb} {outcome.plan.namespace}.")


def _cleanup_job(defs: dg.Definitions, job_name: str) -> dg.JobDefinition:
    try:
        return defs.resolve_job_def(job_name)
    except dg.DagsterInvariantViolationError as exc:
        raise failure(
            f"These Definitions have no job {job_name!r}: add branch_cleanup_definitions(...) "
            "to them, or name the job with --job."
        ) from exc


def run_cleanup_job(
    defs: dg.Definitions,
    namespace: Namespace,
    *,
    job_name: str = DEFAULT_JOB,
    dry_run: bool = False,
    require_closed: bool = True,
    include_unrecorded: bool = False,
    verbose: bool = False,
) -> CleanupOutcome:
    """Execute the Definitions' cleanup job in process for ``namespace``.

    Raises:
        CommandFailed: the run failed; the exit code tells refusal from partial failure.
    """
    job = _cleanup_job(defs, job_name)
    config = {
        "namespace": namespace.key,
        "dry_run": dry_run,
        "require_closed": require_closed,
        "include_unrecorded": include_unrecorded,
    }
    # The run's own event log is kept (in DAGSTER_HOME when set); the terminal gets the summary.
    log_level = "DEBUG" if verbose else "CRITICAL"
    with _instance() as instance:
        result = job.execute_in_process(
            run_config={
                "ops": {"plan": {"config": config}},
                "loggers": {"console": {"config": {"log_level": log_level}}},
            },
            instance=instance,
            tags={TAG_NAMESPACE: namespace.key, TAG_TRIGGER: "cli"},
            raise_on_error=False,
        )
        if not result.success:
            raise _failure_of(result)
        outcome = result.output_for_node("record")
    if not isinstance(outcome, CleanupOutcome):
        raise failure(f"Job {job_name!r} is not a dagster-branch cleanup job.")
    return outcome


@click.command()
@definitions_options
@namespace_options
@click.option("--dry-run", is_flag=True, help="Plan, verify and report; remove nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--no-pr-check",
    is_flag=True,
    help="Do not require the pull request to be closed (for a namespace the source cannot "
    "judge); every other check still applies.",
)
@_INCLUDE_UNRECORDED
@click.option("--job", "job_name", default=DEFAULT_JOB, show_default=True, help="Cleanup job.")
@click.option("-v", "--verbose", is_flag=True, help="Print the run's event log.")
@reports_errors
def cleanup(
    module_name: str | None,
    python_file: str | None,
    namespace: str | None,
    pull_request: str | None,
    branch: str | None,
    dry_run: bool,
    yes: bool,
    no_pr_check: bool,
    include_unrecorded: bool,
    job_name: str,
    verbose: bool,
) -> None:
    """Remove everything one namespace owns, by running the cleanup job in process."""
    refuse_in_branch_deployment("dagster-branch cleanup")
    target = resolve_namespace(namespace, pull_request, branch)
    defs = load_target(module_name, python_file)
    _cleanup_job(defs, job_name)  # fail before asking anything if there is no such job
    cleanup_plan, verdict, problems = _inspect(
        defs, target, require_closed=not no_pr_check, include_unrecorded=include_unrecorded
    )
    _echo_plan(cleanup_plan, verdict, problems)
    if not cleanup_plan.removable:
        return
    if verdict.reasons and not dry_run:
        raise failure(
            f"Nothing was removed: verification refused the cleanup of {target}.", EXIT_REFUSED
        )
    if not dry_run and not yes:
        question = f"\nRemove these {len(cleanup_plan.removable)} object(s) of {target}?"
        if not click.confirm(question, default=False):
            raise failure("Nothing was removed.", EXIT_ERROR)
    click.echo(f"\nRunning job {job_name!r} in process{' (dry run)' if dry_run else ''}...")
    outcome = run_cleanup_job(
        defs,
        target,
        job_name=job_name,
        dry_run=dry_run,
        require_closed=not no_pr_check,
        include_unrecorded=include_unrecorded,
        verbose=verbose,
    )
    _echo_outcome(outcome)
