"""What a cleanup would remove: a pure, deduplicated plan built from the stores' inventories.

The cleanup job, the sensor and the command line all show the same plan, so it is built here by
one function that only reads: :func:`build_cleanup_plan` asks each branch-aware store (a
:class:`~dagster_branch.inventory.BranchStore`) which objects the namespace owns, merges what the
ledger and discovery found, and sorts the result. Nothing is checked or removed here; that is the
job of :mod:`dagster_branch.cleanup.verify` and of the stores.

The record is the first key: an object this owner recorded (ledger row, marker, tag) is
planned for removal; one found by its name alone is *unrecorded*: it stays in the plan, so that
every view of the plan shows it, but is removed only when the run says ``include_unrecorded``.

Example::

    >>> from dagster_branch.naming import Namespace
    >>> plan = build_cleanup_plan("pr_42", stores={})
    >>> plan.namespace == Namespace.parse("pr_42"), plan.is_empty
    (True, True)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster_branch.errors import CleanupRefusedError
from dagster_branch.inventory import BranchStore, ObjectKind, OwnedObject, Survey, SurveyingStore
from dagster_branch.naming import KEY_SHAPES, Namespace

__all__ = [
    "DEFAULT_MAX_OBJECTS",
    "CleanupPlan",
    "PlannedObject",
    "build_cleanup_plan",
    "resolve_namespace",
]

DEFAULT_MAX_OBJECTS = 10_000


@dataclass(frozen=True, order=True)
class PlannedObject:
    """One object of the plan, with the resource key of the store that will remove it.

    Example::

        >>> from dagster_branch.inventory import ObjectKind, OwnedObject
        >>> pr_7 = Namespace.parse("pr_7")
        >>> obj = OwnedObject(pr_7, "duckdb", ObjectKind.SCHEMA, "analytics__pr_7")
        >>> PlannedObject("warehouse", obj).describe()
        'warehouse: schema analytics__pr_7'
    """

    store_key: str
    obj: OwnedObject
    survey: Survey = field(default=Survey(), compare=False)
    """What removing it would take: contents counted, dependents outside the namespace."""

    @property
    def kind(self) -> ObjectKind:
        """The kind of object: schema, table, bucket, prefix, database."""
        return self.obj.kind

    @property
    def name(self) -> str:
        """The full readable name: ``schema.table``, ``bucket/prefix/`` or the bare name."""
        return self.obj.qualified_name

    @property
    def recorded(self) -> bool:
        """True when the store's owner recorded it; ``False`` for an object found by name only."""
        return self.obj.recorded

    def describe(self) -> str:
        """``<store>: <kind> <name>``, the way errors and logs name an object."""
        return f"{self.store_key}: {self.kind.value} {self.name}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for ``dagster-branch plan --json`` and run metadata)."""
        return {
            "store": self.store_key,
            "backend": self.obj.backend,
            "kind": self.kind.value,
            "name": self.obj.name,
            "container": self.obj.container,
            "found_in": sorted(self.obj.found_in),
            "contents": self.survey.contents,
            "contents_complete": self.survey.complete,
            "dependents": list(self.survey.dependents),
            "recorded": self.recorded,
        }


@dataclass(frozen=True)
class CleanupPlan:
    """Everything one namespace owns across the branch-aware stores, in a stable order.

    A plan is a value: it can be printed, compared, serialised to JSON, and handed from one op to
    the next. ``store_keys`` lists every store that was asked, including those that own nothing,
    so that a reader can tell "nothing there" from "not looked at".

    Example::

        plan = build_cleanup_plan("pr_7", {"warehouse": warehouse, "lake": lake})
        for planned in plan:
            print(planned.describe())
        plan.objects_for("lake")  # what the lake store will be asked to remove
    """

    namespace: Namespace
    objects: tuple[PlannedObject, ...] = ()
    store_keys: tuple[str, ...] = ()
    include_unrecorded: bool = False

    def __iter__(self) -> Iterator[PlannedObject]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def is_empty(self) -> bool:
        """True when the namespace owns nothing in any store (for example after a cleanup)."""
        return not self.objects

    @property
    def removable(self) -> tuple[PlannedObject, ...]:
        """What the cleanup will remove: recorded objects, and unrecorded ones only with
        ``include_unrecorded``."""
        return tuple(p for p in self.objects if p.recorded or self.include_unrecorded)

    @property
    def kept(self) -> tuple[PlannedObject, ...]:
        """Unrecorded objects the cleanup leaves alone (reported, not removed)."""
        return tuple(p for p in self.objects if not (p.recorded or self.include_unrecorded))

    def objects_for(self, store_key: str) -> list[OwnedObject]:
        """The objects the store under ``store_key`` will be asked to remove, in plan order."""
        return [planned.obj for planned in self.removable if planned.store_key == store_key]

    def status_of(self, planned: PlannedObject) -> str:
        """``remove``, ``remove (unrecorded)`` or ``unrecorded: kept``, for tables of the plan."""
        if planned.recorded:
            return "remove"
        return "remove (unrecorded)" if self.include_unrecorded else "unrecorded: kept"

    def counts(self) -> dict[str, int]:
        """How many objects of each kind the cleanup will remove, e.g. ``{"schema": 1}``."""
        counts: dict[str, int] = {}
        for planned in self.removable:
            counts[planned.kind.value] = counts.get(planned.kind.value, 0) + 1
        return counts

    @property
    def contents(self) -> int:
        """How many things the removal would delete: each object and what it holds (the
        relations of a schema; the keys, versions, delete markers and uploads of a prefix)."""
        return sum(planned.survey.contents for planned in self.removable)

    @property
    def contents_complete(self) -> bool:
        """False when counting stopped early at the limit (:attr:`contents` is then a floor)."""
        return all(planned.survey.complete for planned in self.removable)

    def refused(self) -> list[PlannedObject]:
        """The objects the removal will refuse: objects outside the namespace depend on them."""
        return [planned for planned in self.removable if planned.survey.dependents]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the whole plan (``status`` per object, see :meth:`status_of`)."""
        return {
            "namespace": self.namespace.key,
            "stores": list(self.store_keys),
            "contents": self.contents,
            "contents_complete": self.contents_complete,
            "include_unrecorded": self.include_unrecorded,
            "objects": [
                {**planned.to_dict(), "status": self.status_of(planned)} for planned in self.objects
            ],
        }


def resolve_namespace(namespace: Namespace | str | None) -> Namespace:
    """The namespace to clean, or :class:`CleanupRefusedError` when there is none to clean.

    Production has no namespace, so an empty value is refused rather than read as "everything".
    """
    if isinstance(namespace, Namespace):
        return namespace
    text = (namespace or "").strip()
    if not text:
        raise CleanupRefusedError(
            "No namespace was given: production has no namespace and is never cleaned. "
            "Name the branch namespace to clean, for example 'pr_42'."
        )
    parsed = Namespace.try_parse(text)
    if parsed is None:
        raise CleanupRefusedError(
            f"{text[:80]!r} is not a branch namespace, so nothing can be cleaned for it: expected "
            f"{KEY_SHAPES} (see `dagster-branch context`)."
        )
    return parsed


def _merge(objects: Sequence[OwnedObject]) -> list[OwnedObject]:
    """One entry per physical object; ``found_in`` keeps every source (ledger, discovery)."""
    merged: dict[OwnedObject, OwnedObject] = {}
    for obj in objects:
        seen = merged.get(obj)
        if seen is None:
            merged[obj] = obj
        elif not obj.found_in <= seen.found_in:
            merged[obj] = OwnedObject(
                namespace=seen.namespace,
                backend=seen.backend,
                kind=seen.kind,
                name=seen.name,
                container=seen.container,
                found_in=seen.found_in | obj.found_in,
            )
    return sorted(merged.values())


def build_cleanup_plan(
    namespace: Namespace | str,
    stores: Mapping[str, BranchStore],
    *,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    include_unrecorded: bool = False,
) -> CleanupPlan:
    """Ask every store what ``namespace`` owns, and return the deduplicated plan.

    Objects are deduplicated per store, never across stores: two warehouses may both hold a
    schema called ``analytics__pr_7``, and each must drop its own. Objects a store reports for
    another namespace are kept, so that verification can refuse the plan and say why. Each
    store that can (a :class:`~dagster_branch.inventory.SurveyingStore`) also counts what each
    object holds, stopping once the plan's count passes ``max_objects``, and names the objects
    outside the namespace that depend on it.

    Args:
        namespace: the namespace to clean (``"pr_42"`` or a :class:`Namespace`).
        stores: the branch-aware resources by resource key.
        max_objects: where counting may stop (the cleanup's circuit breaker).
        include_unrecorded: also remove objects found by their name alone (no record of this
            owner's names them); by default they are listed and kept, and not counted.

    Raises:
        CleanupRefusedError: ``namespace`` is empty (production) or not a namespace.
        DagsterBranchError: a store could not list its objects (nothing is planned then).
    """
    target = resolve_namespace(namespace)
    planned: list[PlannedObject] = []
    counted = 0
    for store_key, store in stores.items():
        objects = _merge(store.objects_of(target))
        removable = [o for o in objects if o.recorded or include_unrecorded]
        surveys: Mapping[OwnedObject, Survey] = {}
        if removable and isinstance(store, SurveyingStore):
            surveys = store.survey(removable, limit=max(max_objects - counted, 0))
        for obj in objects:
            survey = surveys.get(obj, Survey())
            counted += survey.contents
            planned.append(PlannedObject(store_key, obj, survey))
    return CleanupPlan(
        namespace=target,
        objects=tuple(planned),
        store_keys=tuple(stores),
        include_unrecorded=include_unrecorded,
    )
