"""Which relations a dbt invocation built, read from dbt's own artifacts (pure, no I/O).

``run_results.json`` says which nodes ran and how; the ``manifest.json`` written by the same
invocation says where each node lives (``database``, ``schema``, ``alias``) and how it is
materialized. Seeds, snapshots and models other than ephemeral ones build a relation; tests and
ephemeral models build none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagster_branch.inventory import ObjectKind

__all__ = ["BuiltRelation", "built_relations"]

_BUILDING_TYPES = frozenset({"model", "seed", "snapshot"})
_BUILT_STATUSES = frozenset({"success"})
_VIEW_MATERIALIZATIONS = frozenset({"view"})


@dataclass(frozen=True, order=True)
class BuiltRelation:
    """One relation dbt built: where it is and whether it is a table or a view."""

    database: str | None
    schema: str
    identifier: str
    kind: ObjectKind
    unique_id: str
    materialized: str

    @property
    def qualified_name(self) -> str:
        """``database.schema.identifier`` (without the database when dbt gave none)."""
        parts = [self.database, self.schema, self.identifier]
        return ".".join(p for p in parts if p)


def built_relations(
    run_results: Mapping[str, Any], manifest: Mapping[str, Any]
) -> list[BuiltRelation]:
    """The relations of the nodes that ``run_results`` reports built successfully.

    Example::

        >>> manifest = {"nodes": {"model.shop.orders": {
        ...     "resource_type": "model", "database": "warehouse", "schema": "analytics__pr_7",
        ...     "alias": "orders", "config": {"materialized": "table"}}}}
        >>> run_results = {"results": [{"unique_id": "model.shop.orders", "status": "success"}]}
        >>> [r.qualified_name for r in built_relations(run_results, manifest)]
        ['warehouse.analytics__pr_7.orders']
    """
    nodes: Mapping[str, Any] = manifest.get("nodes") or {}
    found: set[BuiltRelation] = set()
    for result in run_results.get("results") or []:
        unique_id = str(result.get("unique_id", ""))
        node = nodes.get(unique_id)
        if node is None or result.get("status") not in _BUILT_STATUSES:
            continue
        materialized = str((node.get("config") or {}).get("materialized", ""))
        if node.get("resource_type") not in _BUILDING_TYPES or materialized == "ephemeral":
            continue
        identifier = node.get("alias") or node.get("name")
        if not identifier or not node.get("schema"):
            continue
        kind = ObjectKind.VIEW if materialized in _VIEW_MATERIALIZATIONS else ObjectKind.TABLE
        found.add(
            BuiltRelation(
                database=node.get("database") or None,
                schema=str(node["schema"]),
                identifier=str(identifier),
                kind=kind,
                unique_id=unique_id,
                materialized=materialized,
            )
        )
    return sorted(found)
