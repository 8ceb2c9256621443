"""Inventory of a :class:`~dagster_branch.BranchS3Resource`: which namespaces own what in S3.

Inventory = this owner's records plus discovery, deduplicated. Records are ledger rows (when
``ledger_url`` is set), the namespace and owner tags of a namespace bucket, and, without a
ledger, the marker object ``.dagster-branch.json`` of a prefix (one ``GetObject`` per namespace
folder); ``found_in`` says ``ledger``, ``tags`` or ``marker``. An object found by its name alone
(``found_in`` only ``s3``), or recorded before owners were kept, is *unrecorded*: reported,
removed only with ``include_unrecorded``. An object another owner recorded is left out.

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

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from dagster_branch.inventory import ObjectKind, OwnedObject, merge_sources
from dagster_branch.ledger import LedgerInventory
from dagster_branch.naming import (
    BUCKET_SEPARATOR,
    Namespace,
    namespace_of_bucket,
    namespace_of_key,
    namespace_prefix,
)
from dagster_branch.ownership import Owner
from dagster_branch.stores.s3_batches import error_code
from dagster_branch.stores.s3_layout import (
    BACKEND,
    TAG_NAMESPACE,
    TAG_OWNER,
    TAG_REPOSITORY,
    clean_folder,
    common_bucket_prefix,
)

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
    "read_marker_owner",
    "scan_buckets",
    "unrecorded_objects",
]

_logger = logging.getLogger(__name__)
FOUND_IN_S3 = frozenset({"s3"})
TAG_READERS = 8  # GetBucketTagging requests in flight while scanning many namespace buckets


class BucketTags(NamedTuple):
    """What ``GetBucketTagging`` said of a bucket: whether it exists, its namespace tag, and
    who tagged it (``None`` for a bucket tagged before owners were recorded)."""

    exists: bool
    namespace_tag: str | None
    owner: Owner | None = None


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
    tags = {t.get("Key"): t.get("Value") for t in tag_set}
    owner = tags.get(TAG_OWNER)
    return BucketTags(
        exists=True,
        namespace_tag=tags.get(TAG_NAMESPACE),
        owner=Owner(owner, tags.get(TAG_REPOSITORY) or None) if owner else None,
    )


def read_marker_owner(client: Any, bucket: str, key: str) -> tuple[bool, Owner | None]:
    """``(exists, owner)`` of a marker object ``.dagster-branch.json``: one ``GetObject``.
    A marker written before owners were recorded, or unreadable, has owner ``None``."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read(65_536)
    except ClientError as exc:
        if error_code(exc) in {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}:
            return False, None
        raise
    try:
        content = json.loads(body)
    except ValueError:
        return True, None
    owner = content.get("owner") if isinstance(content, dict) else None
    if not isinstance(owner, str) or not owner:
        return True, None
    repository = content.get("repository")
    return True, Owner(owner, repository if isinstance(repository, str) else None)


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
    tag_owner: Owner | None = None

    @property
    def by_tag(self) -> Namespace | None:
        """The namespace the ``dagster-branch/namespace`` tag names, if it names one."""
        return Namespace.try_parse(self.tag) if self.tag is not None else None

    @property
    def namespace(self) -> Namespace | None:
        """The namespace the bucket is reported under: its name's, else its tag's."""
        return self.by_name or self.by_tag

    def found_in(self, namespace: Namespace) -> frozenset[str]:
        """``"s3"`` when the name parses back to ``namespace``; ``"tags"`` when the tag names it
        and an owner tag says who (else ``"tags (no owner)"``: not a record of anyone's)."""
        tags = "tags" if self.tag_owner is not None else "tags (no owner)"
        return frozenset(
            source
            for source, owner in (("s3", self.by_name), (tags, self.by_tag))
            if owner == namespace
        )

    def is_foreign(self, owner: Owner) -> bool:
        """True when another owner tagged the bucket: it is none of ``owner``'s business."""
        return self.tag_owner is not None and self.tag_owner.name != owner.name

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
        BucketFinding(name, base, namespace_of_bucket(name, base), found.namespace_tag, found.owner)
        for name, found in zip(names, tags, strict=True)
        if found.exists
    ]
    owner = resource.resolved_owner()
    return [
        f
        for f in findings
        if (f.by_name is not None or f.tag is not None) and not f.is_foreign(owner)
    ]


def _inventory(resource: BranchS3Resource, namespace: Namespace | None) -> LedgerInventory:
    if not resource.ledger_url:
        return LedgerInventory()
    return resource.get_ledger().inventory(namespace, store=resource.store_key)


def _discover_buckets(resource: BranchS3Resource) -> list[OwnedObject]:
    found: list[OwnedObject] = []
    for finding in scan_buckets(resource):
        problem = finding.problem()
        if problem is not None:  # still listed: its cleanup run then shows the refusal
            _logger.warning(f"{resource.store_key}: {problem}.")
        namespace = finding.namespace
        if namespace is not None:
            found.append(
                OwnedObject(
                    namespace, BACKEND, ObjectKind.BUCKET, finding.name, None,
                    finding.found_in(namespace),
                )
            )  # fmt: skip
    return found


def _discover_folders(resource: BranchS3Resource) -> list[OwnedObject]:
    """Namespace folders under ``branch_root``, one ``ListObjectsV2`` per 1,000; without a
    ledger, each folder's marker is read too (one ``GetObject`` each)."""
    client = resource.get_cleanup_client()
    layout = resource.layout()
    bucket = layout.branch_data_bucket
    root = clean_folder(resource.branch_root)
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=root + "/", Delimiter="/", PaginationConfig={"PageSize": 1000}
    )
    namespaces: list[Namespace] = []
    try:
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                folder = common["Prefix"]
                namespace = namespace_of_key(folder, root=root)
                # The folder must be exactly the namespace's own: '_branches/pr_42/'.
                if namespace is not None and folder == namespace_prefix(namespace, root=root):
                    namespaces.append(namespace)
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise
    return [f for f in map(lambda ns: _folder(resource, ns), namespaces) if f is not None]


def _folder(resource: BranchS3Resource, namespace: Namespace) -> OwnedObject | None:
    """The namespace's folder as found in S3, with its marker's verdict when there is no
    ledger: ``None`` when another owner's marker claims it."""
    layout = resource.layout()
    bucket, prefix = layout.namespace_root(namespace)
    found_in = FOUND_IN_S3
    if not resource.ledger_url:
        client = resource.get_cleanup_client()
        exists, owner = read_marker_owner(client, bucket, layout.marker_key(namespace))
        if owner is not None and owner.name != resource.resolved_owner().name:
            return None
        if exists:
            found_in = found_in | {"marker" if owner is not None else "marker (no owner)"}
    return OwnedObject(namespace, BACKEND, ObjectKind.PREFIX, prefix, bucket, found_in)


def _discovered(resource: BranchS3Resource) -> list[OwnedObject]:
    if resource.strategy == "bucket":
        return _discover_buckets(resource)
    return _discover_folders(resource)


def list_namespaces(resource: BranchS3Resource) -> set[Namespace]:
    """Namespaces this owner recorded: live ledger rows, plus namespace buckets with this
    owner's tags and (without a ledger) folders with this owner's marker. Objects found by name
    only are left to :func:`unrecorded_objects`."""
    recorded = {e.namespace for e in _inventory(resource, None).records}
    if resource.strategy == "bucket" or not resource.ledger_url:
        recorded |= {obj.namespace for obj in _discovered(resource) if obj.recorded}
    return recorded


def unrecorded_objects(resource: BranchS3Resource) -> list[OwnedObject]:
    """Buckets or folders shaped like a namespace's that no record of this owner names (found
    by name only, or recorded before owners were kept); another owner's are left out."""
    found = _inventory(resource, None)
    mine = {e.identity for e in found.records}
    objects = [e.to_owned() for e in found.unowned] + [
        obj
        for obj in _discovered(resource)
        if obj.identity not in mine and obj.identity not in found.foreign
    ]
    return [obj for obj in merge_sources(objects) if not obj.recorded]


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
    """The namespace's bucket or prefix, if it exists in S3 now (another owner's left out)."""
    if resource.strategy == "bucket":
        return [
            OwnedObject(namespace, BACKEND, ObjectKind.BUCKET, f.name, None, f.found_in(namespace))
            for f in scan_buckets(resource, namespace)
            if f.namespace == namespace
        ]
    client = resource.get_cleanup_client()
    bucket, prefix = resource.layout().namespace_root(namespace)
    if not has_anything(client, bucket, prefix):
        return []
    folder = _folder(resource, namespace)
    return [folder] if folder is not None else []


def objects_of(resource: BranchS3Resource, namespace: Namespace) -> list[OwnedObject]:
    """This owner's records (and rows without owner) and discovery for one namespace, merged
    (``found_in`` tells from where); objects another owner recorded are left out."""
    found = _inventory(resource, namespace)
    discovered = [
        obj for obj in discover_objects(resource, namespace) if obj.identity not in found.foreign
    ]
    recorded = [e.to_owned() for e in found.records + found.unowned]
    return merge_sources(recorded + discovered)


def ownership_problem(resource: BranchS3Resource, obj: OwnedObject) -> str | None:
    """Why the cleanup of ``obj.namespace`` must not remove ``obj``; ``None`` when it may.

    The second key of the safety invariant: the object must be exactly where the resource's
    current configuration puts the namespace (the same bucket, the same prefix under
    ``branch_root``, or the namespace's own bucket under ``strategy="bucket"``), and never the
    production bucket, the shared branch bucket, or a prefix overlapping production's. A record
    (ledger row) naming any other place is a *mismatch*: refused, whatever the record says.
    """
    layout = resource.layout()
    namespace = obj.namespace
    where = obj.qualified_name
    if obj.backend != BACKEND:
        return f"{where} is a {obj.backend} object, not an S3 one"
    if obj.kind not in {ObjectKind.BUCKET, ObjectKind.PREFIX}:
        return f"{where} is a {obj.kind.value}: an S3 store removes only prefixes and buckets"
    if obj.kind is ObjectKind.BUCKET and obj.name in {layout.bucket, layout.branch_data_bucket}:
        return f"bucket {obj.name!r} is the production or the shared branch bucket"
    if obj.kind is ObjectKind.PREFIX and not obj.container:
        return f"prefix {obj.name!r} names no bucket"
    if obj.kind is ObjectKind.PREFIX and obj.container == layout.bucket:
        production = layout.production_folder
        if not production or obj.name.startswith(production) or production.startswith(obj.name):
            return f"{where} overlaps production's prefix {production!r} in {layout.bucket!r}"
    bucket, prefix = layout.namespace_root(namespace)
    expected = f"s3://{bucket}/{prefix}"
    if obj.kind is ObjectKind.BUCKET:
        if namespace_of_bucket(obj.name, layout.bucket) not in {namespace, None}:
            return f"bucket {obj.name!r} is not a bucket of {namespace} (from {layout.bucket!r})"
        if prefix or obj.name != bucket:
            return _mismatch(f"bucket {obj.name!r}", namespace, expected)
        return _tag_problem(resource, obj.name, namespace)
    if not prefix:
        return _mismatch(f"prefix {where!r}", namespace, expected)
    if obj.name != prefix:
        return f"prefix {obj.name!r} is not the namespace folder {prefix!r} under branch_root"
    if obj.container != bucket:
        return _mismatch(f"prefix {where!r} (bucket {obj.container!r})", namespace, expected)
    return None


def _mismatch(what: str, namespace: Namespace, expected: str) -> str:
    return (
        f"mismatch: {what} is not where the current configuration puts {namespace} "
        f"({expected}); it is not removed. If the configuration changed since it was recorded, "
        "empty it by hand and mark its ledger row dropped"
    )


def _tag_problem(resource: BranchS3Resource, bucket: str, namespace: Namespace) -> str | None:
    """The third look at a namespace bucket: its namespace tag, when it has one, must agree."""
    try:
        tags = resource.namespace_tag_of(bucket)
    except (ClientError, BotoCoreError) as exc:
        return f"the tags of bucket {bucket!r} could not be read ({error_code(exc)})"
    if tags.namespace_tag is not None and tags.namespace_tag != namespace.key:
        return _tag_conflict(bucket, namespace, tags.namespace_tag)
    owner = resource.resolved_owner()
    if tags.owner is not None and tags.owner.name != owner.name:
        return f"bucket {bucket!r} is tagged as {tags.owner.describe()}'s, not {owner.describe()}'s"
    return None
