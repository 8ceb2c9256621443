"""The purge's listings: lean pages, and the next page requested before this one is parsed.

A purge's listing is its critical path: each ``ListObjectsV2`` page needs the continuation token
of the page before it, so the pages go one after another while the deletes run beside them. Two
things shorten that path without adding a request:

- **Lean pages.** The purge never reads ``LastModified``, and botocore spends about three
  quarters of a 1,000-key page's parse time turning those into datetimes. A ``before-parse``
  handler drops them from the raw XML of the purge's own listings only (a thread-local flag is
  set around them), so the caller's other calls on the same client, even at the same time,
  still get them.
- **Prefetch.** The same handler reads ``NextContinuationToken`` from the raw XML of a
  truncated page and requests the next page at once, on a second listing thread, while botocore
  is still parsing this one and the purge is handing its keys to the deletes. It is still one
  listing stream, token after token, so the requests are exactly those of a serial listing; at
  most two pages wait unconsumed, so memory stays flat. A token the handler cannot read only
  costs the overlap: the page is then requested after parsing, as before. A boto3 paginator
  asks for the next page only after parsing this one, so this listing does without one; the
  others (versions, multipart uploads, the plan's count) go through boto3's paginators
  (:func:`listing_pages`).

Example::

    calls = S3Calls(client)
    for page in prefetched_pages(calls, Bucket="acme-data", Prefix="_branches/pr_4/"):
        keys = [o["Key"] for o in page.get("Contents", [])]
"""

from __future__ import annotations

import contextlib
import html
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from dagster_branch.stores.s3_batches import Entry, S3Calls, error_code

__all__ = ["is_versioned", "lean_call", "listing_pages", "prefetched_pages", "version_entries"]

PAGE_SIZE = 1000  # the most keys one ListObjectsV2 page returns
PAGES_AHEAD = 2  # most pages fetched and not yet consumed

_LEAN_LISTING = threading.local()
_LAST_MODIFIED = re.compile(rb"<LastModified>[^<]*</LastModified>")
_NEXT_TOKEN = re.compile(rb"<NextContinuationToken>([^<]+)</NextContinuationToken>")
_TRUNCATED = b"<IsTruncated>true</IsTruncated>"
_LEAN_OPERATIONS = {
    "list_objects_v2": "ListObjectsV2",
    "list_object_versions": "ListObjectVersions",
}


def _lean_body(response_dict: dict[str, Any], **_: Any) -> None:
    if not getattr(_LEAN_LISTING, "active", False) or response_dict.get("status_code") != 200:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes):
        return
    on_token: Callable[[str], None] | None = getattr(_LEAN_LISTING, "on_token", None)
    if on_token is not None and _TRUNCATED in body:
        found = _NEXT_TOKEN.search(body)
        if found:
            on_token(html.unescape(found.group(1).decode("utf-8")))
    response_dict["body"] = _LAST_MODIFIED.sub(b"", body)


@contextlib.contextmanager
def _lean(calls: S3Calls, operation: str) -> Iterator[None]:
    """Within the block, this thread's listings of ``operation`` are parsed without
    ``LastModified``."""
    name = _LEAN_OPERATIONS.get(operation)
    if name is None:
        yield
        return
    calls.client.meta.events.register(  # idempotent per client: a fixed unique_id
        f"before-parse.s3.{name}", _lean_body, unique_id=f"dagster-branch-lean-{name}"
    )
    _LEAN_LISTING.active = True
    try:
        yield
    finally:
        _LEAN_LISTING.active = False


def lean_call(calls: S3Calls, operation: str, **params: Any) -> dict[str, Any]:
    """``calls.call`` for a listing, without parsing timestamps nobody reads."""
    with _lean(calls, operation):
        return calls.call(operation, **params)


def listing_pages(calls: S3Calls, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Pages of a listing from boto3's paginator (it follows ``NextKeyMarker`` and the like),
    each request counted and parsed without timestamps."""
    pages = iter(calls.client.get_paginator(operation).paginate(**params))

    def next_page() -> dict[str, Any] | None:
        with _lean(calls, operation):
            return next(pages, None)

    while (page := calls.counted(operation, next_page)) is not None:
        yield page


class _Prefetcher:
    """Fetches ``ListObjectsV2`` pages, each requested as soon as its token is in the raw XML."""

    def __init__(self, calls: S3Calls, params: dict[str, Any]) -> None:
        self.calls, self.params = calls, params
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="s3-list")
        self._lock = threading.Lock()
        self._ahead: dict[str, Future[dict[str, Any]]] = {}
        self._closed = False

    def _fetch(self, token: str | None) -> dict[str, Any]:
        _LEAN_LISTING.on_token = self._prefetch
        try:
            follow = {"ContinuationToken": token} if token else {}
            return lean_call(self.calls, "list_objects_v2", **self.params, **follow)
        finally:
            _LEAN_LISTING.on_token = None

    def _prefetch(self, token: str) -> None:
        with self._lock:
            if self._closed or token in self._ahead or len(self._ahead) >= PAGES_AHEAD:
                return  # the consumer will request it itself once it gets there
            self._ahead[token] = self._pool.submit(self._fetch, token)

    def page(self, token: str | None) -> Future[dict[str, Any]]:
        """The page after ``token``: the prefetched one when there is one, else requested now."""
        with self._lock:
            ahead = self._ahead.pop(token, None) if token else None
        return ahead or self._pool.submit(self._fetch, token)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._ahead.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def prefetched_pages(calls: S3Calls, **params: Any) -> Iterator[dict[str, Any]]:
    """``ListObjectsV2`` pages in order, the next one requested while this one is parsed."""
    prefetcher = _Prefetcher(calls, {**params, "MaxKeys": params.get("MaxKeys", PAGE_SIZE)})
    try:
        token: str | None = None
        while True:
            page = prefetcher.page(token).result()
            yield page
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if not token:
                return
    finally:
        prefetcher.close()


def is_versioned(calls: S3Calls, bucket: str) -> bool:
    """Versioning is on or suspended (versions may exist); ``False`` where not implemented."""
    try:
        status = calls.call("get_bucket_versioning", Bucket=bucket).get("Status")
    except ClientError as exc:
        if error_code(exc) in {"NotImplemented", "MethodNotAllowed"}:
            return False  # S3-compatible stores without versioning
        raise
    return status in {"Enabled", "Suspended"}


def version_entries(page: dict[str, Any]) -> list[Entry]:
    """The versions and delete markers of one ``ListObjectVersions`` page."""
    versions = [
        Entry(v["Key"], v.get("VersionId") or "null", int(v.get("Size", 0)))
        for v in page.get("Versions", [])
    ]
    markers = [
        Entry(m["Key"], m.get("VersionId") or "null", 0, True)
        for m in page.get("DeleteMarkers", [])
    ]
    return versions + markers
