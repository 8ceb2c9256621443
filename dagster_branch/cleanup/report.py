"""Turn what the stores removed into run metadata a person can read in the Dagster UI.

The removal ops hand their :class:`~dagster_branch.inventory.RemovalResult` lists over as
:class:`StoreRemoval` values; the record op turns them into a table (store, kind, name, objects,
bytes, status), totals, the duration and the time since the PR closed. The same functions
describe a plan before anything is removed, so a dry run shows the same rows as a real run.

Example::

    metadata = removal_metadata([warehouse_removal, lake_removal], pull_request=pr)
    failures = failures_of([warehouse_removal, lake_removal])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg

from dagster_branch.cleanup.plan import CleanupPlan, PlannedObject
from dagster_branch.inventory import RemovalResult
from dagster_branch.pull_requests import PullRequestState

__all__ = [
    "StoreRemoval",
    "failures_of",
    "format_bytes",
    "format_duration",
    "plan_metadata",
    "plan_status",
    "refused_markdown",
    "removal_metadata",
]

_REMOVAL_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("store", "string", description="Resource key of the branch-aware store"),
        dg.TableColumn("kind", "string", description="schema, table, view, bucket or prefix"),
        dg.TableColumn("name", "string", description="Physical name of the object"),
        dg.TableColumn(
            "objects", "int", description="Tables and views, or S3 objects/versions, inside"
        ),
        dg.TableColumn("bytes", "int", description="Bytes removed (when the store knows)"),
        dg.TableColumn(
            "status", "string", description="removed, would remove, pending, refused, failed"
        ),
        dg.TableColumn(
            "dependents",
            "string",
            description="Objects outside the namespace that depend on it (why it was refused)",
        ),
    ]
)
_PLAN_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("store", "string"),
        dg.TableColumn("kind", "string"),
        dg.TableColumn("name", "string"),
        dg.TableColumn(
            "found_in", "string", description="ledger, marker, tags (records) or discovery, s3"
        ),
        dg.TableColumn(
            "contents", "int", description="What removing it deletes: itself and what it holds"
        ),
        dg.TableColumn(
            "dependents",
            "string",
            description="Objects outside the namespace that depend on it: it will be refused",
        ),
        dg.TableColumn(
            "status",
            "string",
            description="remove; unrecorded: kept (found by name only); refused: why",
        ),
    ]
)
KEPT_STATUS = "unrecorded: kept"


@dataclass(frozen=True)
class StoreRemoval:
    """What one store did with its part of the plan, and when (Unix seconds)."""

    store_key: str
    results: tuple[RemovalResult, ...]
    started_at: float
    finished_at: float
    dry_run: bool = False


def format_bytes(size: int) -> str:
    """``1536`` gives ``'1.5 KiB'``: sizes for people, not machines."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """``3725`` gives ``'1h 2m 5s'``; under a minute keeps one decimal (``'4.2s'``)."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    return " ".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def status_of(result: RemovalResult, *, dry_run: bool) -> str:
    """One word or two for the table: what happened to this object."""
    if result.dependents:
        return "refused"
    if result.error:
        return "removed, ledger not updated" if result.removed else "failed"
    if dry_run:
        return "would remove"
    if result.pending:
        return "pending expiry"
    return "removed" if result.removed else "not removed"


def failures_of(removals: Iterable[StoreRemoval]) -> list[str]:
    """Every object that was not removed, as ``<store>: <kind> <name>: <reason>`` lines."""
    failures: list[str] = []
    for removal in removals:
        if removal.dry_run:
            continue
        for result in removal.results:
            if result.error or not (result.removed or result.pending):
                reason = result.error or "the store reported it as not removed, without a reason"
                failures.append(
                    f"{removal.store_key}: {result.obj.kind.value} "
                    f"{result.obj.qualified_name}: {reason}"
                )
    return failures


def _markdown_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plan_status(
    plan: CleanupPlan, planned: PlannedObject, problems: Mapping[PlannedObject, str]
) -> str:
    """What the cleanup does with one object: ``remove``, ``unrecorded: kept``, or ``refused:``
    and why (a mismatch, another namespace, a protected name)."""
    problem = problems.get(planned)
    return f"refused: {problem}" if problem else plan.status_of(planned)


def plan_metadata(
    plan: CleanupPlan, problems: Mapping[PlannedObject, str] | None = None
) -> dict[str, dg.MetadataValue]:
    """The plan as metadata: the namespace, counts per kind and one row per object with its
    status (``problems``: from :func:`~dagster_branch.cleanup.verify.ownership_problems`)."""
    problems = problems or {}
    records = [
        dg.TableRecord(
            {
                "store": planned.store_key,
                "kind": planned.kind.value,
                "name": planned.name,
                "found_in": ", ".join(sorted(planned.obj.found_in)) or "-",
                "contents": planned.survey.contents,
                "dependents": "; ".join(planned.survey.dependents) or "-",
                "status": plan_status(plan, planned, problems),
            }
        )
        for planned in plan
    ]
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(plan.counts().items())) or "nothing"
    metadata: dict[str, dg.MetadataValue] = {
        "namespace": dg.MetadataValue.text(plan.namespace.key),
        "planned_objects": dg.MetadataValue.int(len(plan.removable)),
        "planned_contents": dg.MetadataValue.int(plan.contents),
        "planned_by_kind": dg.MetadataValue.text(counts),
        "unrecorded_kept": dg.MetadataValue.int(len(plan.kept)),
        "ownership_refusals": dg.MetadataValue.int(len(problems)),
        "stores": dg.MetadataValue.text(", ".join(plan.store_keys) or "-"),
        "plan": dg.MetadataValue.table(records, schema=_PLAN_COLUMNS),
    }
    if refused := plan.refused():
        metadata["refused"] = dg.MetadataValue.md(refused_markdown(refused))
    return metadata


def refused_markdown(refused: Sequence[PlannedObject]) -> str:
    """Each refused object, with the objects outside its namespace that depend on it."""
    lines = [
        "**Refused: objects outside the namespace depend on these; nothing of them is removed.**"
    ]
    for planned in refused:
        lines.append(f"- {planned.describe()}")
        lines += [f"  - {dependent}" for dependent in planned.survey.dependents]
    return "\n".join(lines)


def _since_closed(pull_request: PullRequestState | None, now: datetime) -> float | None:
    closed = pull_request.finished_at if pull_request is not None else None
    if closed is None:
        return None
    if closed.tzinfo is None:
        closed = closed.replace(tzinfo=timezone.utc)
    return max((now - closed).total_seconds(), 0.0)


def removal_metadata(
    removals: Sequence[StoreRemoval],
    *,
    pull_request: PullRequestState | None = None,
    now: datetime | None = None,
    kept: Sequence[PlannedObject] = (),
) -> dict[str, dg.MetadataValue]:
    """The table of what was removed (or would be, in a dry run), with totals and timings;
    ``kept``: unrecorded objects the plan left alone, shown with status ``unrecorded: kept``."""
    now = now or datetime.now(timezone.utc)
    dry_run = any(removal.dry_run for removal in removals)
    rows: list[tuple[str, str, str, int, int, str, str]] = []
    for removal in removals:
        for result in removal.results:
            rows.append(
                (
                    removal.store_key,
                    result.obj.kind.value,
                    result.obj.qualified_name,
                    result.objects,
                    result.bytes,
                    status_of(result, dry_run=removal.dry_run),
                    "; ".join(result.dependents) or "-",
                )
            )
    planned_rows = len(rows)
    rows += [(p.store_key, p.kind.value, p.name, 0, 0, KEPT_STATUS, "-") for p in kept]
    done = [row for row in rows if row[5] in {"removed", "would remove"}]
    pending = [row for row in rows if row[5] == "pending expiry"]
    total_objects = sum(row[3] for row in done + pending)
    total_bytes = sum(row[4] for row in done + pending)
    failures = failures_of(removals)
    started = min((r.started_at for r in removals), default=now.timestamp())
    finished = max((r.finished_at for r in removals), default=now.timestamp())
    verb = "Would remove" if dry_run else "Removed"
    markdown = _markdown_table(
        [(s, k, n, str(o), format_bytes(b), st, d) for s, k, n, o, b, st, d in rows],
        ("store", "kind", "name", "objects", "bytes", "status", "dependents"),
    )
    summary = (
        f"**{verb} {len(done)} of {planned_rows} planned objects** "
        f"({total_objects} objects inside, {format_bytes(total_bytes)}) "
        f"in {format_duration(finished - started)}."
    )
    if pending:
        summary += (
            f" **{len(pending)} pending expiry**: a lifecycle rule is set and S3 deletes their "
            "data within about a day; run the cleanup again after that to confirm and take the "
            "rule off (the ledger keeps them live until then)."
        )
    refused = [row for row in rows if row[5] == "refused"]
    if refused:
        summary += (
            f" **{len(refused)} refused**: objects outside the namespace depend on them (see "
            "the dependents column); drop or change those, then run the cleanup again."
        )
    failed = len(failures) - (0 if dry_run else len(refused))
    if failed:
        summary += f" **{failed} failed**: run the cleanup again to retry them."
    if kept:
        summary += (
            f" **{len(kept)} unrecorded kept**: found by name only, no record of this code "
            "location names them; run with include_unrecorded: true (CLI --include-unrecorded) "
            "to remove them too."
        )
    metadata: dict[str, dg.MetadataValue] = {
        "dry_run": dg.MetadataValue.bool(dry_run),
        "summary": dg.MetadataValue.md(summary + "\n\n" + markdown),
        "removed": dg.MetadataValue.table(
            [
                dg.TableRecord(
                    {
                        "store": s,
                        "kind": k,
                        "name": n,
                        "objects": o,
                        "bytes": b,
                        "status": st,
                        "dependents": d,
                    }
                )
                for s, k, n, o, b, st, d in rows
            ],
            schema=_REMOVAL_COLUMNS,
        ),
        "objects_planned": dg.MetadataValue.int(planned_rows),
        "unrecorded_kept": dg.MetadataValue.int(len(kept)),
        "objects_removed" if not dry_run else "objects_to_remove": dg.MetadataValue.int(len(done)),
        "objects_pending": dg.MetadataValue.int(len(pending)),
        "contents_objects": dg.MetadataValue.int(total_objects),
        "contents_bytes": dg.MetadataValue.int(total_bytes),
        "failures": dg.MetadataValue.int(len(failures)),
        "duration_seconds": dg.MetadataValue.float(round(float(finished - started), 3)),
    }
    since = _since_closed(pull_request, now)
    if since is not None:
        metadata["seconds_since_pr_closed"] = dg.MetadataValue.float(round(float(since), 1))
        metadata["since_pr_closed"] = dg.MetadataValue.text(format_duration(since))
    if pull_request is not None and pull_request.url:
        metadata["pull_request"] = dg.MetadataValue.url(pull_request.url)
    return metadata
