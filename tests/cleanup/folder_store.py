"""A small, real branch-aware store over a folder on disk, for wiring tests of the cleanup job.

It implements the :class:`~dagster_branch.inventory.BranchStore` protocol the way the real
resources do (names that parse back to the namespace, protected names, idempotent removal, one
result per object), with files instead of tables, so that the job's wiring can be tested without
a warehouse. Every behaviour a user cares about is also tested against the real resources.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from pydantic import Field

from dagster_branch.inventory import ObjectKind, OwnedObject, RemovalResult
from dagster_branch.naming import Namespace, namespace_of_schema, schema_name


class FolderStore(dg.ConfigurableResource):
    """Namespace folders ``<base>__<namespace>`` under ``root``; ``<base>`` is production."""

    root: str = Field(description="Folder holding production's and the branches' folders.")
    base: str = Field(default="analytics", description="Production folder name.")
    protected: list[str] = Field(default_factory=list, description="Folders never removed.")

    def _folders(self) -> list[Path]:
        return sorted(p for p in Path(self.root).iterdir() if p.is_dir())

    def list_namespaces(self) -> set[Namespace]:
        found = (namespace_of_schema(p.name, self.base) for p in self._folders())
        return {ns for ns in found if ns is not None}

    def objects_of(self, namespace: Namespace) -> list[OwnedObject]:
        name = schema_name(self.base, namespace)
        if not (Path(self.root) / name).is_dir():
            return []
        return [
            # Every folder of this stand-in counts as recorded by its owner (a marker).
            OwnedObject(
                namespace, "folder", ObjectKind.SCHEMA, name, found_in=frozenset({"marker"})
            )
        ]

    def ownership_problem(self, obj: OwnedObject) -> str | None:
        if obj.name == self.base or obj.name in self.protected:
            return f"{obj.name!r} is protected"
        if namespace_of_schema(obj.name, self.base) != obj.namespace:
            return f"{obj.name!r} does not parse back to {obj.namespace}"
        return None

    def remove_objects(
        self, objects: Sequence[OwnedObject], *, dry_run: bool, log: logging.Logger
    ) -> list[RemovalResult]:
        results = []
        for obj in objects:
            folder = Path(self.root) / obj.name
            files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
            size = sum(p.stat().st_size for p in files)
            if not dry_run:
                try:
                    shutil.rmtree(folder, ignore_errors=False)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    results.append(RemovalResult(obj, removed=False, error=str(exc)))
                    continue
                log.info("removed folder %s (%d files)", obj.name, len(files))
            results.append(RemovalResult(obj, removed=not dry_run, objects=len(files), bytes=size))
        return results
