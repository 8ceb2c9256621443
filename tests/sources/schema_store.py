"""A tiny, real branch-aware store: schemas in a DuckDB file, for the sensor's tests.

It lists namespaces the way the warehouse resource discovers them (schemas named
``<base>__<namespace>`` that parse back to their namespace), so the sensor's tests read live
namespaces from a real database. The cleanup itself is the job's business and tested there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone

import dagster as dg
import duckdb
from pydantic import Field

from dagster_branch.inventory import ObjectKind, OwnedObject, RemovalResult
from dagster_branch.naming import Namespace, namespace_of_schema, schema_name


class DuckDBSchemaStore(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Branch schemas ``<base>__<namespace>`` in a DuckDB file."""

    path: str = Field(description="The DuckDB file.")
    base: str = Field(default="analytics", description="Production schema.")

    def _schemas(self) -> list[str]:
        with duckdb.connect(self.path) as conn:
            rows = conn.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
        return [row[0] for row in rows]

    def create(self, *namespaces: Namespace) -> None:
        with duckdb.connect(self.path) as conn:
            conn.execute("BEGIN")
            for namespace in namespaces:
                name = schema_name(self.base, namespace)
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
                conn.execute(f'CREATE TABLE IF NOT EXISTS "{name}".orders AS SELECT 1 AS id')
            conn.execute("COMMIT")

    def drop(self, namespace: Namespace) -> None:
        with duckdb.connect(self.path) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name(self.base, namespace)}" CASCADE')

    def list_namespaces(self) -> set[Namespace]:
        found = (namespace_of_schema(name, self.base) for name in self._schemas())
        return {ns for ns in found if ns is not None}

    def objects_of(self, namespace: Namespace) -> list[OwnedObject]:
        name = schema_name(self.base, namespace)
        if name not in self._schemas():
            return []
        return [OwnedObject(namespace, "duckdb", ObjectKind.SCHEMA, name)]

    def ownership_problem(self, obj: OwnedObject) -> str | None:
        if namespace_of_schema(obj.name, self.base) != obj.namespace:
            return f"{obj.name!r} does not parse back to {obj.namespace}"
        return None

    def remove_objects(
        self, objects: Sequence[OwnedObject], *, dry_run: bool, log: logging.Logger
    ) -> list[RemovalResult]:
        results = []
        for obj in objects:
            if not dry_run:
                self.drop(obj.namespace)
            results.append(RemovalResult(obj, removed=not dry_run))
        return results


class ActiveSchemaStore(DuckDBSchemaStore):
    """The same store, also reporting when each namespace was last written."""

    written_at: dict[str, float] = Field(
        default_factory=dict, description="Last write per namespace key, in Unix seconds."
    )

    def last_activity_of(self, namespace: Namespace) -> datetime | None:
        stamp = self.written_at.get(namespace.key)
        return datetime.fromtimestamp(stamp, tz=timezone.utc) if stamp is not None else None
