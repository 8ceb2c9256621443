"""What a branch-aware store owns, in one shape for every backend.

The sensor and the cleanup job never talk to PostgreSQL or S3 directly: they ask each
branch-aware resource (a :class:`BranchStore`) which namespaces own objects, which objects a
namespace owns, and to remove them. Keeping this interface small is what lets a new backend plug
in without touching the planner.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from dagster_branch.errors import DagsterBranchConfigError
from dagster_branch.naming import Namespace

__all__ = [
    "RECORD_SOURCES",
    "BranchStore",
    "ObjectKind",
    "OwnedObject",
    "RemovalResult",
    "Survey",
    "SurveyingStore",
    "ledger_not_updated",
    "merge_sources",
    "refused_for_dependents",
    "require_store",
]

# Where an object is *recorded* as its namespace's by this owner: a ledger row, or a marker or tag
# the resource wrote. Anything else in ``found_in`` ("discovery", "s3": the name alone; a record
# without owner) makes an *unrecorded* object: reported, removed only with include_unrecorded.
RECORD_SOURCES = frozenset({"ledger", "marker", "tags"})


class ObjectKind(str, Enum):
    """The kinds of object a namespace can own."""

    DATABASE = "database"
    SCHEMA = "schema"
    TABLE = "table"
    VIEW = "view"
    BUCKET = "bucket"
    PREFIX = "prefix"


@dataclass(frozen=True, order=True)
class OwnedObject:
    """One object a namespace owns, as found in the ledger or by discovery.

    ``name`` is the physical name inside ``container``: a schema (container ``None``), a table
    (container: its schema), a bucket (container ``None``) or a key prefix (container: its bucket).
    """

    namespace: Namespace
    backend: str
    kind: ObjectKind
    name: str
    container: str | None = None
    found_in: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def identity(self) -> tuple[str, str | None, str]:
        """The physical object, whoever recorded it: (backend, container, name); the same as
        :attr:`~dagster_branch.ledger.LedgerEntry.identity`."""
        return (self.backend, self.container, self.name)

    @property
    def recorded(self) -> bool:
        """True when this owner's record (ledger row, marker, tag) names the object; ``False``
        when it was found by its name alone."""
        return bool(self.found_in & RECORD_SOURCES)

    @property
    def qualified_name(self) -> str:
        """A readable full name: ``schema.table``, ``bucket/prefix/`` or the bare name."""
        if self.container is None:
            return self.name
        joiner = "/" if self.kind is ObjectKind.PREFIX else "."
        return f"{self.container}{joiner}{self.name}"


@dataclass(frozen=True)
class RemovalResult:
    """What happened to one object during a cleanup."""

    obj: OwnedObject
    removed: bool
    objects: int = 0
    bytes: int = 0
    error: str | None = None
    pending: bool = False  # an expiry rule was set; the store deletes the data later
    dependents: tuple[str, ...] = ()
    """Objects outside the namespace that depend on this one; non-empty means it was refused."""


def refused_for_dependents(obj: OwnedObject, dependents: Sequence[str]) -> RemovalResult:
    """The result of an object that is kept because objects outside its namespace depend on it
    (removing it would remove or break them), naming each of them."""
    listed = "; ".join(dependents)
    return RemovalResult(
        obj=obj,
        removed=False,
        dependents=tuple(dependents),
        error=(
            f"refused: objects outside {obj.namespace} depend on it, and removing it would "
            f"remove or break them: {listed}. Nothing of it was removed; drop or change those "
            "dependents, then run the cleanup again."
        ),
    )


@dataclass(frozen=True)
class Survey:
    """What removing one planned object would take, read before anything is removed.

    ``contents`` counts what would actually be removed: the object itself and, for a schema,
    the relations inside it; for an S3 prefix or bucket, every key, version, delete marker and
    incomplete multipart upload. ``complete`` is false when counting stopped early because the
    count already passed the limit. ``dependents`` names the objects outside the namespace that
    depend on it (the removal refuses it then).
    """

    contents: int = 1
    complete: bool = True
    dependents: tuple[str, ...] = ()
    listing: Any = field(default=None, compare=False, repr=False)
    """What the counting pass listed, for the store's removal to use instead of listing again
    (S3: :class:`~dagster_branch.stores.s3_survey.S3Listing`)."""


@runtime_checkable
class SurveyingStore(Protocol):
    """A store that can say, before removing, how much each object holds and what depends on
    it (both stores of this library; a store without it counts each object as one)."""

    def survey(self, objects: Sequence[OwnedObject], *, limit: int) -> dict[OwnedObject, Survey]:
        """A :class:`Survey` per object; counting may stop once the total passes ``limit``."""
        ...

    def remove_objects(
        self,
        objects: Sequence[OwnedObject],
        *,
        dry_run: bool,
        log: logging.Logger,
        surveys: Mapping[OwnedObject, Survey] | None = None,
    ) -> list[RemovalResult]:
        """:meth:`BranchStore.remove_objects`, given the plan's surveys of ``objects``."""
        ...


def merge_sources(objects: Sequence[OwnedObject]) -> list[OwnedObject]:
    """One entry per object, sorted; ``found_in`` keeps every source that found it."""
    merged: dict[OwnedObject, frozenset[str]] = {}
    for obj in objects:
        merged[obj] = merged.get(obj, frozenset()) | obj.found_in
    return sorted(replace(obj, found_in=found_in) for obj, found_in in merged.items())


def ledger_not_updated(results: Sequence[RemovalResult], reason: str) -> list[RemovalResult]:
    """``results`` with every removed object turned into a failure: its data is gone, but the
    ledger still says live. Not a success, so the run says so; a rerun removes nothing (it is
    idempotent) and marks the rows dropped then."""
    message = (
        f"the object is gone, but the ledger could not be updated to mark it dropped ({reason}): "
        "run the cleanup again to update the ledger."
    )
    return [replace(r, error=message) if r.removed else r for r in results]


@runtime_checkable
class BranchStore(Protocol):
    """The part of a branch-aware resource that detection and cleanup rely on."""

    def list_namespaces(self) -> set[Namespace]:
        """Every branch namespace this store's owner recorded objects of (what the sensor and
        the schedule consider); objects found by name only are not listed here."""
        ...

    def objects_of(self, namespace: Namespace) -> list[OwnedObject]:
        """The objects ``namespace`` owns here (ledger and discovery, deduplicated)."""
        ...

    def ownership_problem(self, obj: OwnedObject) -> str | None:
        """Why ``obj`` must not be removed (name does not parse back, protected), else ``None``."""
        ...

    def remove_objects(
        self, objects: Sequence[OwnedObject], *, dry_run: bool, log: logging.Logger
    ) -> list[RemovalResult]:
        """Remove ``objects`` (idempotently), each handled separately; never raises per object."""
        ...


def require_store(value: object, where: str) -> BranchStore:
    """``value`` as a :class:`BranchStore`, or a configuration error naming ``where``.

    Args:
        value: what was bound, e.g. a resource read from a context.
        where: names the place in the message, e.g. ``"The resource 'warehouse'"``.

    Raises:
        DagsterBranchConfigError: ``value`` lacks the store methods.
    """
    if not isinstance(value, BranchStore):
        raise DagsterBranchConfigError(
            f"{where} is a {type(value).__name__}, not a branch-aware store (it needs "
            "list_namespaces, objects_of, ownership_problem and remove_objects): bind a "
            "BranchDatabaseResource or a BranchS3Resource there, or leave the key out of the "
            "store keys."
        )
    return value
