"""``dagster-branch orphans``: live namespaces whose pull request is closed, merged or unknown.

It makes exactly the sensor's decision (:func:`~dagster_branch.sensors.evaluate_namespaces`,
hence :func:`~dagster_branch.decision.should_clean`) from the same stores and source, so what it
lists as "clean now" is what the sensor would request a cleanup run for. It also lists the
*unrecorded* objects: shaped like a namespace's but recorded by no ledger row, marker or tag of
this code location, which no cleanup removes unless told to (``--include-unrecorded``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import click

from dagster_branch.cli.errors import failure, reports_errors
from dagster_branch.cli.output import echo_json, format_table
from dagster_branch.cli.target import definitions_options, load_target, open_resources
from dagster_branch.decision import DEFAULT_GRACE_PERIOD, Decision, DecisionKind
from dagster_branch.inventory import OwnedObject
from dagster_branch.sensors import evaluate_namespaces

__all__ = ["orphans"]

_VERDICTS = {
    DecisionKind.FINISHED: "clean now",
    DecisionKind.STALE: "clean now (stale)",
    DecisionKind.WAITING: "grace period",
    DecisionKind.ACTIVE: "keep",
    DecisionKind.UNKNOWN: "unknown: kept",
}


def unrecorded_by_store(stores: Mapping[str, Any]) -> list[tuple[str, OwnedObject]]:
    """``(store key, object)`` for every unrecorded object of the stores that can list them."""
    found: list[tuple[str, OwnedObject]] = []
    for key, store in stores.items():
        lister = getattr(store, "unrecorded_objects", None)
        if callable(lister):
            found += [(key, obj) for obj in lister()]
    return found


def _echo_unrecorded(unrecorded: list[tuple[str, OwnedObject]]) -> None:
    if not unrecorded:
        return
    rows = [
        [
            obj.namespace.key,
            key,
            obj.kind.value,
            obj.qualified_name,
            ", ".join(sorted(obj.found_in)),
        ]
        for key, obj in unrecorded
    ]
    click.echo(
        f"\n{len(rows)} unrecorded object(s): found by name only (or recorded before owners "
        "were kept), so no cleanup removes them; check each, then run `dagster-branch cleanup "
        "... --namespace <key> --include-unrecorded` (or `dagster-branch claim`):"
    )
    click.echo(format_table(["namespace", "store", "kind", "location", "found in"], rows))


def _is_orphan(decision: Decision) -> bool:
    """Closed, merged or unknown: everything but an active namespace."""
    return decision.kind is not DecisionKind.ACTIVE


@click.command()
@definitions_options
@click.option(
    "--grace-minutes",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE_PERIOD.total_seconds() / 60,
    show_default=True,
    help="Wait this long after a PR closes before it counts as 'clean now' (as the sensor's "
    "grace_period).",
)
@click.option("--all", "show_all", is_flag=True, help="Also list open (active) namespaces.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@reports_errors
def orphans(
    module_name: str | None,
    python_file: str | None,
    grace_minutes: float,
    show_all: bool,
    as_json: bool,
) -> None:
    """List live namespaces whose PR is closed, merged or unknown: what the sensor would clean."""
    defs = load_target(module_name, python_file)
    with open_resources(defs) as opened:
        if opened.source is None:
            raise failure(
                "These Definitions bind no pull request source, so no namespace can be judged: "
                "bind GitHubPullRequests, GitLabMergeRequests, DagsterPlusBranchDeployments or "
                "GitRemoteBranches (see docs/getting-started.md)."
            )
        evaluation = evaluate_namespaces(
            opened.stores, opened.source, grace_period=timedelta(minutes=grace_minutes)
        )
        unrecorded = unrecorded_by_store(opened.stores)
    rows = [
        (namespace, decision)
        for namespace, decision in sorted(evaluation.decisions.items())
        if show_all or _is_orphan(decision)
    ]
    if as_json:
        echo_json(
            {
                "live": sorted(ns.key for ns in evaluation.live),
                "namespaces": [
                    {
                        "namespace": ns.key,
                        "clean": d.clean,
                        "decision": d.kind.value,
                        "state": d.state.state.value if d.state is not None else None,
                        "pull_request": d.state.number if d.state is not None else None,
                        "ended_at": d.ended_at.isoformat() if d.ended_at else None,
                        "reason": d.reason,
                    }
                    for ns, d in rows
                ],
                "unrecorded": [
                    {
                        "namespace": obj.namespace.key,
                        "store": key,
                        "kind": obj.kind.value,
                        "location": obj.qualified_name,
                        "found_in": sorted(obj.found_in),
                    }
                    for key, obj in unrecorded
                ],
            }
        )
        return
    if not evaluation.live:
        click.echo("No live branch namespace in any store.")
        _echo_unrecorded(unrecorded)
        return
    if not rows:
        click.echo(f"All {len(evaluation.live)} live namespace(s) have an open pull request.")
        _echo_unrecorded(unrecorded)
        return
    table = [
        [ns.key, d.state.state.value if d.state is not None else "-", _VERDICTS[d.kind], d.reason]
        for ns, d in rows
    ]
    click.echo(format_table(["namespace", "state", "verdict", "reason"], table))
    cleanable = sum(1 for _, d in rows if d.clean)
    click.echo(
        f"\n{cleanable} of {len(evaluation.live)} live namespace(s) would be cleaned now; "
        "remove one with `dagster-branch cleanup ... --namespace <key>`."
    )
    _echo_unrecorded(unrecorded)
