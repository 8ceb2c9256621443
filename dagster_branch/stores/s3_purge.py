"""Removing a namespace's S3 objects fast, with the fewest requests, and nothing else.

:func:`purge_prefix` empties one key prefix and :func:`purge_bucket` one bucket (then deletes it).
Both can be used on their own with any boto3 client::

    report = purge_prefix(boto3.client("s3"), "acme-data", "_branches/pr_42/")
    print(report.objects, report.bytes, report.total_requests)

How it keeps to about two requests per 1,000 objects, the minimum of the S3 API:

- ``GetBucketVersioning`` once, then ``ListMultipartUploads`` once, beside the listing (each
  upload found is aborted: it holds storage that no listing of objects shows).
- Unversioned: ``ListObjectsV2`` pages of 1,000 keys are streamed straight into
  ``DeleteObjects`` batches of 1,000 (``Quiet``), several in flight on a small thread pool with a
  bounded number of pending batches, so memory stays flat however large the prefix. The
  listing is the critical path (each page waits for the previous page's token), so each page is
  requested as soon as its token is in the raw XML of the page before, and pages are parsed
  without the ``LastModified`` timestamps nobody reads (see
  :mod:`dagster_branch.stores.s3_listing`).
- Versioned (or suspended): every version and delete marker is collected with
  ``ListObjectVersions`` (in rounds of at most ``versions_per_round``, so memory stays bounded),
  then deleted; a round that stopped early starts the listing again from the beginning, which
  holds only what is left. Deleting while paging with version markers is not safe everywhere.
- Throttling (``SlowDown``, ``503``) and dropped connections are retried by botocore (the
  client's retry mode); the keys a batch reports as throttled inside a ``200`` answer are sent
  again alone (see :mod:`dagster_branch.stores.s3_batches`).

:func:`remove_objects` is the :class:`~dagster_branch.BranchStore` side used by the cleanup job:
it checks each object's ownership again, purges (or, with ``cleanup_strategy="expire"``, sets a
lifecycle rule: see :mod:`dagster_branch.stores.s3_expire`), and marks what was removed dropped
in the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from dagster_branch.errors import CleanupRefusedError, DagsterBranchError
from dagster_branch.inventory import (
    ObjectKind,
    OwnedObject,
    RemovalResult,
    Survey,
    ledger_not_updated,
)
from dagster_branch.stores.s3_batches import (
    DELETE_BATCH_SIZE,
    BatchOutcome,
    Entry,
    RetryPolicy,
    S3Calls,
    delete_batch,
    error_code,
)
from dagster_branch.stores.s3_listing import listing_pages, prefetched_pages

if TYPE_CHECKING:
    from dagster_branch.resources.s3 import BranchS3Resource
    from dagster_branch.stores.s3_survey import S3Listing

__all__ = [
    "PurgeReport",
    "RetryPolicy",
    "is_versioned",
    "purge_bucket",
    "purge_prefix",
    "remove_objects",
    "version_entries",
]

_logger = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 5.0
MAX_FAILURES_LISTED = 20


@dataclass
class PurgeReport:
    """What a purge removed (or, in a dry run, would remove), and what it cost.

    ``objects`` counts what was deleted: keys in an unversioned bucket; versions plus delete
    markers in a versioned one (``delete_markers`` says how many of them were markers).
    ``requests`` counts HTTP requests per operation, botocore's own retries included.

    Example::

        report = purge_prefix(client, "acme-data", "_branches/pr_42/", dry_run=True)
        report.objects, report.bytes, report.requests_per_1000_objects  # (20000, 1.3e9, 2.1)
    """

    bucket: str
    prefix: str
    dry_run: bool = False
    versioned: bool = False
    objects: int = 0
    bytes: int = 0
    delete_markers: int = 0
    multipart_uploads: int = 0
    bucket_deleted: bool = False
    bucket_missing: bool = False
    failed_objects: int = 0
    failures: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when everything listed was removed (always true for a dry run that listed)."""
        return not self.failures and not self.failed_objects

    @property
    def total_requests(self) -> int:
        """Every HTTP request the purge sent."""
        return sum(self.requests.values())

    @property
    def requests_per_1000_objects(self) -> float:
        """``total_requests`` per 1,000 objects removed (``0`` when nothing was removed)."""
        return 1000.0 * self.total_requests / self.objects if self.objects else 0.0

    def describe(self) -> str:
        """One readable line: counts, bytes, requests and time."""
        verb = "would remove" if self.dry_run else "removed"
        extra = f", {self.multipart_uploads} multipart upload(s)" if self.multipart_uploads else ""
        return (
            f"s3://{self.bucket}/{self.prefix}: {verb} {self.objects:,} object(s), "
            f"{self.bytes:,} bytes{extra} in {self.seconds:.1f}s with "
            f"{self.total_requests:,} request(s)"
        )

    def _fail(self, message: str) -> None:
        if len(self.failures) < MAX_FAILURES_LISTED:
            self.failures.append(message)


class _PurgeProgress:
    """Logs counts at most every ``every`` seconds, and always at the end."""

    def __init__(self, report: PurgeReport, log: logging.Logger, every: float) -> None:
        self.report, self.log, self.every = report, log, every
        self.wait = max(every, 0.1)  # how long waits for batches block between two ticks
        self.started = self.last = time.monotonic()

    def tick(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            report = self.report
            verb = "counted" if report.dry_run else "deleted"
            when = "in all" if force else "so far"
            self.log.info(
                f"s3://{report.bucket}/{report.prefix}: {verb} {report.objects:,} object(s), "
                f"{report.bytes:,} bytes {when} ({now - self.started:.1f}s)"
            )


class _Deleter:
    """Runs ``DeleteObjects`` batches on a thread pool with a bounded number in flight."""

    def __init__(
        self, calls: S3Calls, report: PurgeReport, progress: _PurgeProgress, workers: int
    ) -> None:
        self.calls, self.report, self.progress = calls, report, progress
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-purge")
        self._slots = threading.BoundedSemaphore(workers * 2)
        self._lock = threading.Lock()
        self._futures: list[Future[None]] = []
        self.failed: set[tuple[str, str | None]] = set()

    def beside(self, work: Callable[..., None], *args: Any) -> Future[None]:
        """Run ``work`` on the pool now, outside the batch bound (one-off side work)."""
        return self._pool.submit(work, *args)

    def submit(self, entries: Sequence[Entry]) -> None:
        for start in range(0, len(entries), DELETE_BATCH_SIZE):
            batch = list(entries[start : start + DELETE_BATCH_SIZE])
            while not self._slots.acquire(timeout=self.progress.wait):
                self.progress.tick()
            self._futures.append(self._pool.submit(self._run, batch))
            self._futures = [f for f in self._futures if not f.done()]

    def _run(self, batch: list[Entry]) -> None:
        try:
            outcome = delete_batch(self.calls, self.report.bucket, batch)
        except Exception as exc:  # a bug must not lose the batch silently
            outcome = BatchOutcome(failed=dict.fromkeys(batch, f"{type(exc).__name__}: {exc}"))
        finally:
            self._slots.release()
        self._account(outcome)

    def _account(self, outcome: BatchOutcome) -> None:
        with self._lock:
            report = self.report
            for entry in outcome.deleted:
                report.objects += 1
                report.bytes += entry.size
                report.delete_markers += entry.is_delete_marker
            for entry, reason in outcome.failed.items():
                report.failed_objects += 1
                self.failed.add((entry.key, entry.version_id))
                version = f" (version {entry.version_id})" if entry.version_id else ""
                report._fail(f"{entry.key}{version}: {reason}")
        self.progress.tick()

    def drain(self) -> None:
        """Wait for every submitted batch."""
        for future in list(self._futures):
            while True:
                try:
                    future.result(timeout=self.progress.wait)
                    break
                except TimeoutError:
                    self.progress.tick()
        self._futures.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def is_versioned(calls: S3Calls, bucket: str) -> bool:
    """Versioning is on or suspended (versions may exist); ``False`` where not implemented."""
    try:
        status = calls.call("get_bucket_versioning", Bucket=bucket).get("Status")
    except ClientError as exc:
        if error_code(exc) in {"NotImplemented", "MethodNotAllowed"}:
            return False  # S3-compatible stores without versioning
        raise
    return status in {"Enabled", "Suspended"}


def _abort_uploads(calls: S3Calls, report: PurgeReport) -> None:
    for page in listing_pages(
        calls, "list_multipart_uploads", Bucket=report.bucket, Prefix=report.prefix
    ):
        for upload in page.get("Uploads", []):
            if not report.dry_run:
                try:
                    calls.call(
                        "abort_multipart_upload",
                        Bucket=report.bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                except ClientError as exc:
                    if error_code(exc) != "NoSuchUpload":  # gone already: fine
                        report._fail(f"abort upload of {upload['Key']}: {error_code(exc)}")
                        continue
            report.multipart_uploads += 1


def _count_only(report: PurgeReport, entries: Sequence[Entry]) -> None:
    report.objects += len(entries)
    report.bytes += sum(e.size for e in entries)
    report.delete_markers += sum(e.is_delete_marker for e in entries)


def _purge_current(
    calls: S3Calls, report: PurgeReport, deleter: _Deleter, p: _PurgeProgress
) -> None:
    """Unversioned: stream each page of keys into a delete batch while listing goes on."""
    for page in prefetched_pages(calls, Bucket=report.bucket, Prefix=report.prefix):
        entries = [Entry(o["Key"], None, int(o.get("Size", 0))) for o in page.get("Contents", [])]
        if report.dry_run:
            _count_only(report, entries)
            p.tick()
        elif entries:
            deleter.submit(entries)


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


def _purge_versions(
    calls: S3Calls, report: PurgeReport, deleter: _Deleter, p: _PurgeProgress, per_round: int
) -> None:
    """Versioned: collect versions and markers (a bounded round), delete them, start over."""
    while True:
        collected: list[Entry] = []
        more = False
        listing = listing_pages(
            calls,
            "list_object_versions",
            Bucket=report.bucket,
            Prefix=report.prefix,
            MaxKeys=1000,
        )
        for page in listing:
            # Entries that failed for good in an earlier round are listed again: skip them.
            collected.extend(e for e in version_entries(page) if e[:2] not in deleter.failed)
            if report.dry_run:
                _count_only(report, collected)
                collected.clear()
                p.tick()
            elif len(collected) >= per_round and page.get("IsTruncated"):
                more = True
                break
        if report.dry_run or not collected:
            return
        deleted_before = report.objects
        deleter.submit(collected)
        deleter.drain()
        # Start over (the listing then holds only what is left) if this round stopped early
        # and made progress; a round that deleted nothing would only repeat itself.
        if not more or report.objects == deleted_before:
            return


def _purge(
    client: Any,
    bucket: str,
    prefix: str,
    *,
    dry_run: bool,
    workers: int,
    retry: RetryPolicy | None,
    log: logging.Logger | None,
    progress_every: float,
    versions_per_round: int,
    delete_bucket: bool,
    listing: S3Listing | None = None,
) -> PurgeReport:
    if workers < 1 or versions_per_round < 1:
        raise ValueError("workers and versions_per_round must be at least 1")
    calls = S3Calls(client, retry)
    report = PurgeReport(bucket=bucket, prefix=prefix, dry_run=dry_run)
    progress = _PurgeProgress(report, log or _logger, progress_every)
    deleter = _Deleter(calls, report, progress, workers)
    try:
        carried = listing.entries if listing is not None and not dry_run else None
        if carried is not None and listing is not None:
            report.versioned = listing.versioned
        else:
            report.versioned = is_versioned(calls, bucket)
        # Incomplete uploads do not depend on the listing: abort them beside it, off the
        # critical path of the (serial) pages.
        uploads = deleter.beside(_abort_uploads, calls, report)
        if carried:
            # The counting pass listed these already: delete them, then list once more for
            # what was written since (nothing left: one page).
            deleter.submit(carried)
            deleter.drain()
        if report.versioned:
            _purge_versions(calls, report, deleter, progress, versions_per_round)
        else:
            _purge_current(calls, report, deleter, progress)
        uploads.result()
        deleter.drain()
        if delete_bucket and not dry_run and report.ok:
            _delete_bucket(calls, report)
    except (ClientError, BotoCoreError) as exc:
        deleter.drain()
        if error_code(exc) == "NoSuchBucket":
            report.bucket_missing = True  # nothing to remove: a second run, or never created
        else:
            report._fail(f"{_operation_of(exc)} failed: {error_code(exc)}")
    finally:
        deleter.close()
        report.requests = dict(calls.requests)
        report.retries = calls.retries
        report.seconds = time.monotonic() - progress.started
    progress.tick(force=True)
    return report


def _operation_of(exc: BaseException) -> str:
    return str(getattr(exc, "operation_name", "") or "S3 request")


def _delete_bucket(calls: S3Calls, report: PurgeReport) -> None:
    try:
        calls.call("delete_bucket", Bucket=report.bucket)
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise
    report.bucket_deleted = True


def purge_prefix(
    client: Any,
    bucket: str,
    prefix: str,
    *,
    dry_run: bool = False,
    workers: int = 8,
    retry: RetryPolicy | None = None,
    log: logging.Logger | None = None,
    progress_every: float = PROGRESS_EVERY_SECONDS,
    versions_per_round: int = 100_000,
    listing: S3Listing | None = None,
) -> PurgeReport:
    """Delete every object, version, delete marker and incomplete upload under ``prefix``.

    Idempotent: a second run finds nothing and removes nothing. A missing bucket is not an
    error (``report.bucket_missing``). Per-key failures do not raise; they are counted in the
    report (``report.ok`` is false), so that the caller decides.

    Args:
        client: a boto3 S3 client.
        bucket: the bucket.
        prefix: a folder prefix, ending with ``/`` so that ``pr_4/`` never matches ``pr_42/``.
        dry_run: list and count only; delete nothing.
        workers: ``DeleteObjects`` requests in flight at once (keep it below the client's
            ``max_pool_connections``, 10 by default).
        retry: how the keys a ``DeleteObjects`` answer reports as throttled are sent again
            (whole requests are retried by the client's botocore retry mode).
        log: where progress lines go, at least every ``progress_every`` seconds.
        versions_per_round: most versions held in memory at once in a versioned bucket.
        listing: what a counting pass (:func:`~dagster_branch.stores.s3_survey.count_prefix`)
            listed: its entries are deleted without listing them again, then one more
            listing catches what was written since.

    Raises:
        CleanupRefusedError: ``prefix`` is empty or does not end with ``/``.
    """
    if not prefix or not prefix.endswith("/"):
        raise CleanupRefusedError(
            f"Refusing to purge prefix {prefix!r} of bucket {bucket!r}: a prefix must be a "
            "folder ending with '/' (use purge_bucket to empty a whole bucket)."
        )
    return _purge(
        client,
        bucket,
        prefix,
        dry_run=dry_run,
        workers=workers,
        retry=retry,
        log=log,
        progress_every=progress_every,
        versions_per_round=versions_per_round,
        delete_bucket=False,
        listing=listing,
    )


def purge_bucket(
    client: Any,
    bucket: str,
    *,
    dry_run: bool = False,
    workers: int = 8,
    retry: RetryPolicy | None = None,
    log: logging.Logger | None = None,
    progress_every: float = PROGRESS_EVERY_SECONDS,
    versions_per_round: int = 100_000,
    listing: S3Listing | None = None,
) -> PurgeReport:
    """Empty ``bucket`` like :func:`purge_prefix` does a prefix, then delete the bucket.

    The bucket is deleted only when everything in it was removed. Idempotent: a bucket that
    no longer exists gives an empty report with ``bucket_missing`` set.
    """
    return _purge(
        client,
        bucket,
        "",
        dry_run=dry_run,
        workers=workers,
        retry=retry,
        log=log,
        progress_every=progress_every,
        versions_per_round=versions_per_round,
        delete_bucket=True,
        listing=listing,
    )


# -- the BranchStore side -----------------------------------------------------------------------


def remove_objects(
    resource: BranchS3Resource,
    objects: Sequence[OwnedObject],
    *,
    dry_run: bool,
    log: logging.Logger,
    surveys: Mapping[OwnedObject, Survey] | None = None,
) -> list[RemovalResult]:
    """Remove each object separately; never raises for one object (see the module docstring).

    With the plan's ``surveys``, each purge deletes what the counting pass listed instead of
    listing it again, and a dry run reports those counts without a request.
    """
    client = resource.get_cleanup_client()
    # Throttled keys get as many sends as botocore gives a request: max_attempts retries.
    retry = RetryPolicy(
        max_attempts=resource.max_attempts + 1, base_delay=resource.retry_base_delay_seconds
    )
    options: dict[str, Any] = {"workers": resource.cleanup_workers, "retry": retry, "log": log}
    results: list[RemovalResult] = []
    removed: list[OwnedObject] = []
    for obj in objects:
        problem = resource.ownership_problem(obj)
        if problem is not None:
            results.append(RemovalResult(obj=obj, removed=False, error=f"refused: {problem}"))
            continue
        bucket, prefix = (
            (obj.name, "") if obj.kind is ObjectKind.BUCKET else (obj.container, obj.name)
        )
        assert bucket is not None  # ownership_problem refuses a prefix without a bucket
        listing = _listing_of(surveys, obj, bucket, prefix)
        try:
            if resource.cleanup_strategy == "expire":
                result = _expire(client, obj, bucket, prefix, dry_run, log)
            elif dry_run and listing is not None:  # counted by the plan: no request
                result = RemovalResult(
                    obj=obj, removed=False, objects=listing.objects, bytes=listing.bytes
                )
            else:
                options["listing"] = listing
                if obj.kind is ObjectKind.BUCKET:
                    report = purge_bucket(client, bucket, dry_run=dry_run, **options)
                else:
                    report = purge_prefix(client, bucket, prefix, dry_run=dry_run, **options)
                log.info(report.describe())
                result = _result_of(obj, report)
        except (DagsterBranchError, ClientError, BotoCoreError) as exc:
            results.append(RemovalResult(obj=obj, removed=False, error=_describe(exc)))
            continue
        results.append(result)
        if result.removed:
            removed.append(obj)
    if removed:
        results = _record_removals(resource, client, results, removed, log)
    return results


def _listing_of(
    surveys: Mapping[OwnedObject, Survey] | None, obj: OwnedObject, bucket: str, prefix: str
) -> S3Listing | None:
    """The counting pass's complete listing of exactly this bucket and prefix, if any."""
    from dagster_branch.stores.s3_survey import S3Listing

    survey = surveys.get(obj) if surveys is not None else None
    listing = survey.listing if survey is not None else None
    if (
        isinstance(listing, S3Listing)
        and listing.complete
        and (
            listing.bucket,
            listing.prefix,
        )
        == (bucket, prefix)
    ):
        return listing
    return None


RECREATED = (
    "objects were written there again while the cleanup ran (a branch run still writing?), "
    "so it stays recorded; run the cleanup again once the branch stopped writing"
)


def _record_removals(
    resource: BranchS3Resource,
    client: Any,
    results: list[RemovalResult],
    removed: list[OwnedObject],
    log: logging.Logger,
) -> list[RemovalResult]:
    """Mark dropped only what is verifiably gone: S3 is asked before the ledger update (what
    is back is not marked) and after it (what came back meanwhile is recorded again: a new
    ledger row, or the marker object). A few requests per removed prefix or bucket."""
    from dagster_branch.stores.s3_inventory import has_anything, read_bucket_tags

    def still_there(obj: OwnedObject) -> bool:
        if obj.kind is ObjectKind.BUCKET:
            return read_bucket_tags(client, obj.name).exists
        return has_anything(client, obj.container or "", obj.name)

    back = {obj for obj in removed if still_there(obj)}
    failed = resource.mark_removed([o for o in removed if o not in back], log=log)
    if failed is None:
        late = {obj for obj in removed if obj not in back and still_there(obj)}
        if resource.ledger_url:
            failed = resource.record_again(late, log=log)
        else:  # the marker went with the purge: what is back must be marked again
            failed = resource.record_again(back | late, log=log)
        back |= late
    for obj in sorted(back):
        log.warning(f"{obj.qualified_name}: {RECREATED}")
    results = [replace(r, removed=False, error=RECREATED) if r.obj in back else r for r in results]
    return ledger_not_updated(results, failed) if failed is not None else results


def _expire(
    client: Any,
    obj: OwnedObject,
    bucket: str,
    prefix: str,
    dry_run: bool,
    log: logging.Logger,
) -> RemovalResult:
    """The ``expire`` strategy: a lifecycle rule now (pending), and on a later run, once S3 has
    emptied the prefix or bucket, the rule taken off again (or the empty bucket deleted)."""
    from dagster_branch.stores.s3_expire import (
        expire_bucket,
        expire_prefix,
        expiry_rule_ids,
        remove_lifecycle_rules,
    )
    from dagster_branch.stores.s3_inventory import has_anything

    if not has_anything(client, bucket, prefix):
        if dry_run:
            return RemovalResult(obj=obj, removed=False)
        if obj.kind is ObjectKind.BUCKET:
            report = purge_bucket(client, bucket, log=log)  # empty: 4 requests
            return _result_of(obj, report)
        remove_lifecycle_rules(client, bucket, expiry_rule_ids(prefix))
        return RemovalResult(obj=obj, removed=True)
    if dry_run:
        log.info(f"Dry run: would set an expiry rule on {obj.qualified_name}")
        return RemovalResult(obj=obj, removed=False, pending=True)
    if obj.kind is ObjectKind.BUCKET:
        rule = expire_bucket(client, bucket)
    else:
        rule = expire_prefix(client, bucket, prefix)
    log.info(
        f"Set lifecycle rule {rule!r} on {obj.qualified_name}: S3 deletes its objects within "
        "about a day; a later cleanup run then removes what is left."
    )
    return RemovalResult(obj=obj, removed=False, pending=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError | BotoCoreError):
        return f"{_operation_of(exc)} failed: {error_code(exc)}"
    return str(exc)


def _result_of(obj: OwnedObject, report: PurgeReport) -> RemovalResult:
    error = None
    if not report.ok:
        shown = "; ".join(report.failures[:5])
        count = f"{report.failed_objects} object(s) not removed" if report.failed_objects else ""
        error = ", ".join(part for part in (count, shown) if part)
    return RemovalResult(
        obj=obj,
        removed=report.ok and not report.dry_run,
        objects=report.objects,
        bytes=report.bytes,
        error=error,
    )
