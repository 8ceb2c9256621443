"""Inventory of a :class:`~dagster_branch.BranchS3Resource`: which namespaces own what in S3.

Inventory = ledger rows (when ``ledger_url`` is set) plus discovery, deduplicated:

- bucket strategy: buckets whose names parse back to a namespace
  (``naming.namespace_of_bucket``), from ``ListBuckets`` filtered by the common name prefix;
- prefix strategy: the folders directly under ``branch_root`` whose names are namespace keys,
  from ``ListObjectsV2`` with ``Delimiter='/'``: one request per 1,000 namespaces, never one per
  key.

``objects_of`` then checks one namespace with one or two cheap requests (``HeadBucket``, or a
one-key listing of the prefix that also sees versions, delete markers and pending uploads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from dagster_branch.cleanup.s3_batches import error_code
from dagster_branch.inventory import ObjectKind, OwnedObject
from dagster_branch.naming import Namespace, namespace_of_bucket, namespace_of_key, namespace_prefix
from dagster_branch.resources.s3_layout import clean_folder, common_bucket_prefix

if TYPE_CHECKING:
    from dagster_branch.resources.s3 import BranchS3Resource

__all__ = ["has_anything", "list_namespaces", "objects_of", "ownership_problem"]

BACKEND = "s3"
FOUND_IN_S3 = frozenset({"s3"})


def _ledger_objects(resource: BranchS3Resource, namespace: Namespace | None) -> list[OwnedObject]:
    if not resource.ledger_url:
        return []
    with resource.open_ledger() as ledger:
        entries = ledger.live_entries(namespace, store=resource.store_key)
    return [entry.to_owned() for entry in entries]


def discover_namespaces(resource: BranchS3Resource) -> set[Namespace]:
    """Namespaces found in S3 itself (bucket names or folders under ``branch_root``)."""
    client = resource.get_cleanup_client()
    found: set[Namespace] = set()
    if resource.strategy == "bucket":
        paginator = client.get_paginator("list_buckets")
        prefix = common_bucket_prefix(resource.bucket)
        for page in paginator.paginate(Prefix=prefix, PaginationConfig={"PageSize": 1000}):
            for bucket in page.get("Buckets", []):
                namespace = namespace_of_bucket(bucket["Name"], resource.bucket)
                if namespace is not None:
                    found.add(namespace)
        return found
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


def _bucket_exists(client: Any, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def discover_objects(resource: BranchS3Resource, namespace: Namespace) -> list[OwnedObject]:
    """The namespace's bucket or prefix, if it exists in S3 now."""
    client = resource.get_cleanup_client()
    bucket, prefix = resource.layout().namespace_root(namespace)
    if prefix:
        if has_anything(client, bucket, prefix):
            obj = OwnedObject(namespace, BACKEND, ObjectKind.PREFIX, prefix, bucket, FOUND_IN_S3)
            return [obj]
        return []
    if _bucket_exists(client, bucket):
        return [OwnedObject(namespace, BACKEND, ObjectKind.BUCKET, bucket, None, FOUND_IN_S3)]
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
        return None
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
