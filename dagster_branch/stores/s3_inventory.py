"""Inventory of the S3 store: which namespaces own what in S3, and the reads it is made of.

:class:`~dagster_branch.stores.s3.S3Store` does the inventory with the plain boto3 reads here
(bucket tags, marker objects, a one-key listing).

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
  :meth:`~dagster_branch.stores.s3.S3Store.ownership_problem`), never removed;
- prefix strategy: the folders directly under ``branch_root`` whose names are namespace keys,
  from ``ListObjectsV2`` with ``Delimiter='/'``: one request per 1,000 namespaces, never one per
  key.

``objects_of`` then checks one namespace with a few cheap requests (a filtered ``ListBuckets`` and
the tags of its bucket, or a one-key listing of the prefix that also sees versions, delete markers
and pending uploads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from dagster_branch.naming import (
    BUCKET_SEPARATOR,
    Namespace,
)
from dagster_branch.ownership import Owner
from dagster_branch.stores.s3_batches import error_code
from dagster_branch.stores.s3_layout import (
    TAG_NAMESPACE,
    TAG_OWNER,
    TAG_REPOSITORY,
)

__all__ = [
    "FOUND_IN_S3",
    "TAG_READERS",
    "BucketFinding",
    "BucketTags",
    "has_anything",
    "read_bucket_tags",
    "read_marker_owner",
    "tag_conflict",
    "tail_namespace",
]

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


def tail_namespace(name: str, prefix: str) -> Namespace | None:
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
            return tag_conflict(self.name, self.by_name, self.tag)
        return None


def tag_conflict(bucket: str, by_name: Namespace, tag: str) -> str:
    return (
        f"bucket {bucket!r} belongs to {by_name} by its name, but its {TAG_NAMESPACE} tag says "
        f"{tag!r}: the two keys disagree, so it is not removed; correct or delete the tag, then "
        "run the cleanup again"
    )


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
