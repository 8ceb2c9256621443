"""Run a dbt command through ``DbtCliResource.cli`` branch-aware, and record what it built.

:func:`branch_dbt_cli` is the one call a ``@dbt_assets`` function makes. In a branch
deployment it

1. records the namespace's schemas in the ledger before dbt writes anything (record first);
2. runs ``dbt.cli(...)`` with the routing variable and the defer flags
   (:class:`~dagster_branch.dbt.routing.DbtRouting`);
3. once the command ends (the stream is exhausted or :meth:`BranchDbtInvocation.wait` returns,
   also when dbt failed), reads ``run_results.json`` and ``manifest.json`` and records every
   relation dbt built, through :meth:`BranchDatabaseResource.record_created`. A relation outside
   the namespace's schemas (or in another database) is never recorded: it is logged as a warning.

In production and locally it runs ``dbt.cli(...)`` unchanged and records nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster_dbt import DbtCliInvocation, DbtCliResource
from dagster_dbt.core.dbt_event_iterator import DbtEventIterator

from dagster_branch.dbt.artifacts import BuiltRelation, built_relations
from dagster_branch.dbt.routing import DbtRouting
from dagster_branch.inventory import ObjectKind
from dagster_branch.resources.database import BranchDatabaseResource

__all__ = ["BranchDbtInvocation", "branch_dbt_cli", "record_dbt_relations"]

logger = logging.getLogger("dagster_branch.dbt")

Context = dg.AssetExecutionContext | dg.OpExecutionContext


def branch_dbt_cli(
    dbt: DbtCliResource,
    args: Sequence[str],
    *,
    warehouse: BranchDatabaseResource,
    context: Context | None = None,
    defer: bool = True,
    raise_on_error: bool = True,
) -> BranchDbtInvocation:
    """``dbt.cli(args, context=context)``, routed to this deployment's schemas.

    Args:
        dbt: The project's ``DbtCliResource``. Its ``state_path`` (from
            ``DbtProject(state_path=...)``) holds the production ``manifest.json`` that branch
            deployments defer to.
        args: The dbt command, e.g. ``["build"]`` or ``["build", "--select", "state:modified+"]``.
        warehouse: The ``BranchDatabaseResource`` of the same warehouse: its namespace and schema
            names route dbt, and its ledger records what dbt built.
        context: The ``@dbt_assets`` execution context, passed on to ``dbt.cli``.
        defer: In a branch deployment, read the models it does not build from production
            (``--defer --state <state_path> --favor-state``) when the manifest is there.
        raise_on_error: Passed on to ``dbt.cli``; relations built before a failure are
            recorded either way.

    Returns:
        The invocation: ``.stream()`` and ``.wait()`` as on ``DbtCliInvocation``.

    Example::

        from dagster import AssetExecutionContext
        from dagster_dbt import DbtCliResource, dbt_assets
        from dagster_branch import BranchDatabaseResource
        from dagster_branch.dbt import branch_dbt_cli

        @dbt_assets(manifest=shop_project.manifest_path)
        def shop_dbt(context: AssetExecutionContext, dbt: DbtCliResource,
                     warehouse: BranchDatabaseResource):
            yield from branch_dbt_cli(dbt, ["build"], warehouse=warehouse, context=context).stream()
    """
    routing = DbtRouting.of(warehouse, state_path=dbt.state_path)
    log = _log_of(context)
    if routing.namespace is not None:
        if defer and routing.production_manifest is None:
            log.warning(
                "No production manifest at %s: this branch builds every selected model and reads "
                "nothing from production. Give DbtProject a state_path and download production's "
                "manifest.json there (docs/dbt.md).",
                f"{routing.state_path}/manifest.json" if routing.state_path else "state_path",
            )
        for schema in routing.schemas.values():  # record first: before dbt creates anything
            warehouse.record_created(ObjectKind.SCHEMA, schema)
    # A file warehouse (DuckDB) takes one writing process at a time: free it for dbt's.
    warehouse.close()
    invocation = dbt.cli(
        routing.args(args, defer=defer), context=context, raise_on_error=raise_on_error
    )
    return BranchDbtInvocation(invocation, warehouse, routing, log)


class BranchDbtInvocation:
    """A running dbt command that records what it built when it ends.

    Use it like ``DbtCliInvocation``: ``yield from invocation.stream()`` in ``@dbt_assets``, or
    ``invocation.wait()``. The underlying ``DbtCliInvocation`` is :attr:`invocation`.
    """

    def __init__(
        self,
        invocation: DbtCliInvocation,
        warehouse: BranchDatabaseResource,
        routing: DbtRouting,
        log: logging.Logger | Any,
    ) -> None:
        self.invocation = invocation
        self.routing = routing
        self._warehouse = warehouse
        self._log = log
        self._recorded: list[BuiltRelation] | None = None

    def stream(self) -> DbtEventIterator[Any]:
        """The Dagster events of the command (``DbtCliInvocation.stream``); its relations are
        recorded once the events end, also when dbt failed."""
        return DbtEventIterator(self._events(), self.invocation)

    def _events(self) -> Iterator[Any]:
        try:
            yield from self.invocation.stream()
        finally:
            self._record()

    def wait(self) -> BranchDbtInvocation:
        """Wait for the command to end, then record its relations."""
        try:
            self.invocation.wait()
        finally:
            self._record()
        return self

    @property
    def recorded(self) -> list[BuiltRelation]:
        """The relations recorded in the ledger (empty in production and locally)."""
        return list(self._recorded or [])

    def _record(self) -> None:
        if self._recorded is not None or self.routing.namespace is None:
            return
        self._recorded = record_dbt_relations(
            self._warehouse, self.invocation.target_path, log=self._log
        )


def record_dbt_relations(
    warehouse: BranchDatabaseResource,
    target_path: str | Path,
    *,
    log: logging.Logger | Any = logger,
) -> list[BuiltRelation]:
    """Record in ``warehouse``'s ledger the relations a finished dbt command built.

    Reads ``run_results.json`` and ``manifest.json`` from ``target_path`` (the invocation's
    target folder). Each relation in one of the namespace's schemas is recorded with its schema;
    any other is logged as a warning and left alone. Production and local deployments record
    nothing. Costs one catalog query (the current database) plus the ledger writes.

    Returns:
        The relations recorded.
    """
    namespace = warehouse.namespace
    if not warehouse.deployment.is_branch_deployment or namespace is None:
        return []
    folder = Path(target_path)
    run_results = _artifact(folder, "run_results.json")
    manifest = _artifact(folder, "manifest.json")
    if run_results is None or manifest is None:
        log.warning("dbt wrote no run results in %s: nothing to record.", folder)
        return []
    relations = built_relations(run_results, manifest)
    database = _current_database(warehouse) if relations else None
    recorded: list[BuiltRelation] = []
    for relation in relations:
        owner = warehouse.namespace_of_branch_schema(relation.schema)
        other_database = (
            relation.database is not None
            and database is not None
            and relation.database.casefold() != database.casefold()
        )
        if owner != namespace or other_database:
            where = f"database {database!r}" if other_database else f"namespace {namespace}"
            log.warning(
                "dbt built %s (%s), which is outside %s: not recorded, so the cleanup will not "
                "remove it. Route its schema through generate_schema_name (docs/dbt.md).",
                relation.qualified_name,
                relation.unique_id,
                where,
            )
            continue
        warehouse.record_created(ObjectKind.SCHEMA, relation.schema)
        warehouse.record_created(relation.kind, relation.identifier, container=relation.schema)
        recorded.append(relation)
    warehouse.close()
    return recorded


def _artifact(folder: Path, name: str) -> dict[str, Any] | None:
    try:
        value = json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _current_database(warehouse: BranchDatabaseResource) -> str | None:
    with warehouse.get_engine().connect() as conn:
        value = conn.execute(sa.select(sa.func.current_database())).scalar()
    return str(value) if value else None


def _log_of(context: Context | None) -> logging.Logger | Any:
    return context.log if context is not None else logger
