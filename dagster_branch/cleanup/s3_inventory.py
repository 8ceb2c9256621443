"""Inventory of a :class:`~dagster_branch.BranchS3Resource`: which namespaces own what in S3.

Inventory = ledger rows (when ``ledger_url`` is set) plus discovery, deduplicated:

- bucket strategy: ``ListBuckets`` filtered by the common name prefix, then one
  ``GetBucketTagging`` per branch-shaped bucket (``<base>--<namespace>``; none for other names)
  to read its ``dagster-branch/namespace`` tag. A bucket belongs to the namespace its name parses
  back to (``naming.namespace_of_bucket``) or, when only the tag names one, to that namespace:
  ``found_in`` says ``"s3"`` for the name and ``"tags"`` for the tag. A name and a tag that
  disagree, or a tagged bucket whose name does not parse back, are reported (logged, and refused by
  :func:`ownership_problem`), never removed;
- prefix strategy: the folders directly under ``branch_root`` whose names are namespace keys,
  from ``ListObjectsV2`` with ``Delimiter='/'``: one request per 1,000 namespaces, never one per
  key.

``objects_of`` then checks one namespace with a few cheap requests (a filtered ``ListBuckets`` and
the tags of its bucket, or a one-key listing of the prefix that also sees versions, delete markers
and pending uploads).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from dagster_branch.cleanup.s3_batches import error_code
from dagster_branch.inventory import ObjectKind, OwnedObject
from dagster_branch.naming import (
    BUCKET_SEPARATOR,
    Namespace,
    namespace_of_bucket,
    namespace_of_key,
    namespace_prefix,
)
from dagster_branch.resources.s3_layout import TAG_NAMESPACE, clean_folder, common_bucket_prefix

if TYPE_CHECKING:
    from dagster_branch.resources.s3 import BranchS3Resource

__all__ = [
    "BucketFinding",
    "BucketTags",
    "has_anything",
    "list_namespaces",
    "objects_of",
    "ownership_problem",
    "read_bucket_tags",
    "scan_buckets",
]

_logger = logging.getLogger(__name__)
BACKEND = "s3"
FOUND_IN_S3 = frozenset({"s3"})
TAG_READERS = 8  # GetBucketTagging requests in flight while scanning many namespace buckets


class BucketTags(NamedTuple):
    """What ``GetBucketTagging`` said of a bucket: whether it exists, and its namespace tag."""

    exists: bool
    namespace_tag: str | None


def read_bucket_tags(client: Any, bucket: str) -> BucketTags:
    """One ``GetBucketTagging``; an untagged bucket (``NoSuchTagSet``) and a missing one are
    answers, not errors."""
    try:
        tag_set = client.get_bucket_tagging(Bucket=bucket).get("TagSet", [])
    except ClientError as exc:
        code = error_code(exc)
        if code == "NoSuchTagSet":
            return BucketTags(exists=True, namespace_tag=None)
        if code in {"NoSuchBucket", "404", "NotFound"}:
            return BucketTags(exists=False, namespace_tag=None)
        raise
    value = next((t.get("Value") for t in tag_set if t.get("Key") == TAG_NAMESPACE), None)
    return BucketTags(exists=True, namespace_tag=value)


def _tail_namespace(name: str, prefix: str) -> Namespace | None:
    """The namespace a bucket name ends with (``<prefix>…--pr-42``): its shape only, without
    checking that the whole name parses back."""
    if not name.startswith(prefix):
        return None
    _, sep, tail = name.rpartition(BUCKET_SEPARATOR)
    return Namespace.try_parse(tail.replace("-", "_")) if sep else None


@dataclass(frozen=True)
class BucketFinding:
    """A branch-shaped bucket, who its name says owns it, and what its namespace tag says."""

    name: str
    base: str
    by_name: Namespace | None
    tag: str | None

    @property
    def by_tag(self) -> Namespace | None:
        """The namespace the ``dagster-branch/namespace`` tag names, if it names one."""
        return Namespace.try_parse(self.tag) if self.tag is not None else None

    @property
    def namespace(self) -> Namespace | None:
        """The namespace the bucket is reported under: its name's, else its tag's."""
        return self.by_name or self.by_tag

    def found_in(self, namespace: Namespace) -> frozenset[str]:
        """``"s3"`` when the name parses back to ``namespace``, ``"tags"`` when the tag names it."""
        return frozenset(
            source
            for source, owner in (("s3", self.by_name), ("tags", self.by_tag))
            if owner == namespace
        )

    def problem(self) -> str | None:
        """Why this bucket must not be removed by anyone's cleanup, or ``None``."""
        if self.tag is None:
            return None
        if self.by_name is None:
            return (
                f"bucket {self.name!r} is tagged {TAG_NAMESPACE}={self.tag!r} but its name is "
                f"not a namespace bucket of {self.base!r}: it is left alone; delete it by hand "
                "if nobody needs it"
            )
        if self.tag != self.by_name.key:
            return _tag_conflict(self.name, self.by_name, self.tag)
        return None


def _tag_conflict(bucket: str, by_name: Namespace, tag: str) -> str:
    return (
        f"bucket {bucket!r} belongs to {by_name} by its name, but its {TAG_NAMESPACE} tag says "
        f"{tag!r}: the two keys disagree, so it is not removed; correct or delete the tag, then "
        "run the cleanup again"
    )


def scan_buckets(
    resource: BranchS3Resource, namespace: Namespace | None = None
) -> list[BucketFinding]:
    """Branch-shaped buckets (of ``namespace`` only, if given) with their namespace tags.

    ``ListBuckets`` filtered by the common name prefix, then one ``GetBucketTagging`` per
    branch-shaped name, a few in flight at once. Untagged buckets whose names do not parse back
    are someone else's and are left out.
    """
    client = resource.get_cleanup_client()
    prefix = common_bucket_prefix(resource.bucket)
    names: list[str] = []
    paginator = client.get_paginator("list_buckets")
    for page in paginator.paginate(Prefix=prefix, PaginationConfig={"PageSize": 1000}):
        for bucket in page.get("Buckets", []):
            tail = _tail_namespace(bucket["Name"], prefix)
            if tail is not None and (namespace is None or tail == namespace):
                names.append(bucket["Name"])
    if len(names) > 1:
        with ThreadPoolExecutor(min(TAG_READERS, len(names)), "s3-tags") as pool:
            tags = list(pool.map(resource.namespace_tag_of, names))
    else:
        tags = [resource.namespace_tag_of(name) for name in names]
    base = resource.bucket
    findings = [
        BucketFinding(name, base, namespace_of_bucket(name, base), found.namespace_tag)
        for name, found in zip(names, tags, strict=True)
        if found.exists
    ]
    return [f for f in findings if f.by_name is not None or f.tag is not None]


def _ledger_objects(resource: BranchS3Resource, namespace: Namespace | None) -> list[OwnedObject]:
    if not resource.ledger_url:
        return []
    with resource.open_ledger() as ledger:
        entries = ledger.live_entries(namespace, store=resource.store_key)
    return [entry.to_owned() for entry in entries]


def discover_namespaces(resource: BranchS3Resource) -> set[Namespace]:
    """Namespaces found in S3 itself (namespace buckets, or folders under ``branch_root``)."""
    if resource.strategy == "bucket":
        return _discover_buckets(resource)
    return _discover_folders(resource)


def _discover_buckets(resource: BranchS3Resource) -> set[Namespace]:
    found: set[Namespace] = set()
    for finding in scan_buckets(resource):
        problem = finding.problem()
        if problem is not None:  # still listed: its cleanup run then shows the refusal
            _logger.warning(f"{resource.store_key}: {problem}.")
        if finding.namespace is not None:
            found.add(finding.namespace)
    return found


def _discover_folders(resource: BranchS3Resource) -> set[Namespace]:
    client = resource.get_cleanup_client()
    found: set[Namespace] = set()
    layout = resource.layout()
    root = clean_folder(resource.branch_root)
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=layout.branch_data_bucket,
        Prefix=root + "/",
        Delimiter="/",
        PaginationConfig={"PageSize": 1000},
    )
    try:
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                folder = common["Prefix"]
                namespace = namespace_of_key(folder, root=root)
                # The folder must be exactly the namespace's own: '_branches/pr_42/'.
                if namespace is not None and folder == namespace_prefix(namespace, root=root):
                    found.add(namespace)
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise
    return found


def list_namespaces(resource: BranchS3Resource) -> set[Namespace]:
    """Ledger namespaces plus discovered ones."""
    ledger: set[Namespace] = set()
    if resource.ledger_url:
        with resource.open_ledger() as opened:
            ledger = opened.namespaces(store=resource.store_key)
    return ledger | discover_namespaces(resource)


def has_anything(client: Any, bucket: str, prefix: str) -> bool:
    """One key, one version or delete marker, or one pending upload under ``prefix`` (``""``:
    anywhere in the bucket); ``False`` when the bucket does not exist."""
    try:
        if client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"):
            return True
        try:
            page = client.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            if page.get("Versions") or page.get("DeleteMarkers"):
                return True
        except ClientError as exc:
            if error_code(exc) not in {"NotImplemented", "MethodNotAllowed"}:
                raise
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix, MaxUploads=1)
        return bool(uploads.get("Uploads"))
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            return False
        raise


def discover_objects(resource: BranchS3Resource, namespace: Namespace) -> list[OwnedObject]:
    """The namespace's bucket or prefix, if it exists in S3 now."""
    if resource.strategy == "bucket":
        return [
            OwnedObject(namespace, BACKEND, ObjectKind.BUCKET, f.name, None, f.found_in(namespace))
            for f in scan_buckets(resource, namespace)
            if f.namespace == namespace
        ]
    client = resource.get_cleanup_client()
    bucket, prefix = resource.layout().namespace_root(namespace)
    if has_anything(client, bucket, prefix):
        return [OwnedObject(namespace, BACKEND, ObjectKind.PREFIX, prefix, bucket, FOUND_IN_S3)]
    return []


def objects_of(resource: BranchS3Resource, namespace: Namespace) -> list[OwnedObject]:
    """Ledger rows and discovery for one namespace, merged (``found_in`` tells from where)."""
    merged: dict[OwnedObject, frozenset[str]] = {}
    for obj in _ledger_objects(resource, namespace) + discover_objects(resource, namespace):
        merged[obj] = merged.get(obj, frozenset()) | obj.found_in
    return sorted(
        OwnedObject(o.namespace, o.backend, o.kind, o.name, o.container, found_in)
        for o, found_in in merged.items()
    )


def ownership_problem(resource: BranchS3Resource, obj: OwnedObject) -> str | None:
    """Why the cleanup of ``obj.namespace`` must not remove ``obj``; ``None`` when it may.

    The second key of the safety invariant: the name must parse back to the namespace, and it
    is never the production bucket, the shared branch bucket, or a prefix outside
    ``branch_root``.
    """
    layout = resource.layout()
    namespace = obj.namespace
    where = obj.qualified_name
    if obj.backend != BACKEND:
        return f"{where} is a {obj.backend} object, not an S3 one"
    if obj.kind is ObjectKind.BUCKET:
        if obj.name in {layout.bucket, layout.branch_data_bucket}:
            return f"bucket {obj.name!r} is the production or the shared branch bucket"
        if namespace_of_bucket(obj.name, layout.bucket) != namespace:
            return f"bucket {obj.name!r} is not a bucket of {namespace} (from {layout.bucket!r})"
        return _tag_problem(resource, obj.name, namespace)
    if obj.kind is not ObjectKind.PREFIX:
        return f"{where} is a {obj.kind.value}: an S3 store removes only prefixes and buckets"
    if not obj.container:
        return f"prefix {obj.name!r} names no bucket"
    expected = namespace_prefix(namespace, root=clean_folder(resource.branch_root))
    if obj.name != expected:
        return f"prefix {obj.name!r} is not the namespace folder {expected!r} under branch_root"
    if obj.container == layout.bucket:
        production = layout.production_folder
        if not production or obj.name.startswith(production) or production.startswith(obj.name):
            return f"{where} overlaps production's prefix {production!r} in {layout.bucket!r}"
    return None


def _tag_problem(resource: BranchS3Resource, bucket: str, namespace: Namespace) -> str | None:
    """The third look at a namespace bucket: its namespace tag, when it has one, must agree."""
    try:
        tags = resource.namespace_tag_of(bucket)
    except (ClientError, BotoCoreError) as exc:
        return f"the tags of bucket {bucket!r} could not be read ({error_code(exc)})"
    if tags.namespace_tag is not None and tags.namespace_tag != namespace.key:
        return _tag_conflict(bucket, namespace, tags.namespace_tag)
    return None
