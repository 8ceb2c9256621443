"""Emptying an S3 prefix or bucket fast, with the fewest requests: plain boto3, usable on its own.

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

The S3 store (:mod:`dagster_branch.stores.s3`) purges a closed branch's prefix or bucket with these
functions, after checking its ownership; nothing here knows about namespaces, ledgers or resources.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dagster_branch.errors import CleanupRefusedError
from dagster_branch.stores.s3_batches import (
    DELETE_BATCH_SIZE,
    BatchOutcome,
    Entry,
    RetryPolicy,
    S3Calls,
    delete_batch,
    error_code,
)
from dagster_branch.stores.s3_listing import (
    is_versioned,
    listing_pages,
    prefetched_pages,
    version_entries,
)
from dagster_branch.stores.s3_survey import S3Listing

__all__ = ["PurgeReport", "RetryPolicy", "operation_of", "purge_bucket", "purge_prefix"]

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
            report._fail(f"{operation_of(exc)} failed: {error_code(exc)}")
    finally:
        deleter.close()
        report.requests = dict(calls.requests)
        report.retries = calls.retries
        report.seconds = time.monotonic() - progress.started
    progress.tick(force=True)
    return report


def operation_of(exc: BaseException) -> str:
    """The S3 operation a botocore error came from (``ListObjectsV2``), for messages."""
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
