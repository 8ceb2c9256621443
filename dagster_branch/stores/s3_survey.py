"""Counting what a prefix or bucket holds before the purge, and keeping the listing for it.

The cleanup's circuit breaker (``max_objects``) counts what would actually be removed: every key,
version, delete marker and incomplete multipart upload. Counting needs a listing, and the purge
needs one too; listing twice would cost a third request per 1,000 keys on top of the purge's two
(one page, one ``DeleteObjects``). So the counting pass keeps what it listed (``S3Listing``), the
plan carries it to the removal, and the purge deletes those entries without listing again; then
one more listing request (nothing left: one page) catches keys written after the plan, and one
``ListMultipartUploads`` the uploads.

Counting stops as soon as the count passes the limit (``max_objects`` less what other objects of
the plan already hold): a namespace far over the limit costs ``limit / 1,000`` requests and as
little memory, and the run is refused before anything is removed. The listing is kept only up to
``CARRY_LIMIT`` entries (about 100 bytes each); above that the purge lists again as it streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dagster_branch.stores.s3_batches import Entry, S3Calls, error_code
from dagster_branch.stores.s3_listing import is_versioned, listing_pages, version_entries

__all__ = ["CARRY_LIMIT", "S3Listing", "count_prefix"]

CARRY_LIMIT = 100_000


@dataclass(frozen=True)
class S3Listing:
    """What one counting pass found under a prefix (``""``: the whole bucket).

    ``entries`` is ``None`` when counting stopped at the limit (``complete`` is then false) or
    when there were more than :data:`CARRY_LIMIT` to keep.
    """

    bucket: str
    prefix: str
    versioned: bool
    objects: int
    bytes: int
    delete_markers: int
    multipart_uploads: int
    complete: bool
    bucket_missing: bool = False
    entries: tuple[Entry, ...] | None = None
    requests: int = 0

    @property
    def contents(self) -> int:
        """Keys or versions, delete markers included, and incomplete uploads."""
        return self.objects + self.multipart_uploads


def _entries(page: dict[str, Any], versioned: bool) -> list[Entry]:
    if versioned:
        return version_entries(page)
    return [Entry(o["Key"], None, int(o.get("Size", 0))) for o in page.get("Contents", [])]


def count_prefix(client: Any, bucket: str, prefix: str, *, limit: int) -> S3Listing:
    """List ``prefix`` of ``bucket`` once, counting, and stop once the count passes ``limit``.

    Requests: ``GetBucketVersioning``, one listing page per 1,000 entries (at most
    ``limit / 1,000 + 1``), one ``ListMultipartUploads`` page per 1,000 uploads. A missing bucket
    counts as empty (``bucket_missing``).
    """
    calls = S3Calls(client)
    try:
        return _count(calls, bucket, prefix, limit)
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise
        # Gone, or removed by a concurrent cleanup while it was being listed: nothing to count.
        return S3Listing(
            bucket, prefix, False, 0, 0, 0, 0, True, bucket_missing=True,
            requests=calls.total_requests,
        )  # fmt: skip


def _count(calls: S3Calls, bucket: str, prefix: str, limit: int) -> S3Listing:
    versioned = is_versioned(calls, bucket)
    kept: list[Entry] | None = []
    objects = size = markers = uploads = 0
    operation = "list_object_versions" if versioned else "list_objects_v2"
    complete = True
    for page in listing_pages(calls, operation, Bucket=bucket, Prefix=prefix, MaxKeys=1000):
        entries = _entries(page, versioned)
        objects += len(entries)
        size += sum(e.size for e in entries)
        markers += sum(e.is_delete_marker for e in entries)
        if kept is not None:
            kept.extend(entries)
            if len(kept) > CARRY_LIMIT:
                kept = None  # too many to carry: the purge streams its own listing
        if objects > limit:
            complete = False
            break
    if complete:
        for page in listing_pages(calls, "list_multipart_uploads", Bucket=bucket, Prefix=prefix):
            uploads += len(page.get("Uploads", []))
            if objects + uploads > limit:
                complete = False
                break
    return S3Listing(
        bucket=bucket,
        prefix=prefix,
        versioned=versioned,
        objects=objects,
        bytes=size,
        delete_markers=markers,
        multipart_uploads=uploads,
        complete=complete,
        entries=tuple(kept) if complete and kept is not None else None,
        requests=calls.total_requests,
    )
