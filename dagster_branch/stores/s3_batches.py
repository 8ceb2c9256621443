"""The S3 calls a purge makes: counted, and batched deletes.

Retrying a failed request is botocore's job: throttling and transient errors (``SlowDown``,
``503``, ``RequestTimeout``, dropped connections, a body cut short) are retried by the client's
retry mode (``Config(retries={"mode": "standard", "max_attempts": N})``), with its backoff and
retry quota. Every call goes through :class:`S3Calls`, which counts the HTTP requests it cost,
botocore's retries included (read from ``ResponseMetadata.RetryAttempts``).

One retry is left to this module, because botocore cannot see it: ``DeleteObjects`` answers
``200 OK`` and lists, inside the body, the keys it did not delete. :func:`delete_batch` sends one
request for up to 1,000 keys (``Quiet``, so the answer lists only failures) and sends again
exactly the keys the answer reports as throttled, with backoff (:class:`RetryPolicy`).

Example::

    calls = S3Calls(client, RetryPolicy(max_attempts=5, base_delay=0.1))
    outcome = delete_batch(calls, "acme-data", [Entry("_branches/pr_4/a", None, 10)])
    calls.total_requests  # 1
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "DELETE_BATCH_SIZE",
    "BatchOutcome",
    "Entry",
    "RetryPolicy",
    "S3Calls",
    "delete_batch",
    "error_code",
]

DELETE_BATCH_SIZE = 1000  # the most keys one DeleteObjects request accepts

# Per-key error codes of a DeleteObjects answer worth sending the key again for.
RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "RequestTimeout",
        "InternalError",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "BandwidthLimitExceeded",
        "500",
        "502",
        "503",
        "504",
    }
)
GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion"})


@dataclass(frozen=True)
class RetryPolicy:
    """How the keys a ``DeleteObjects`` answer reports as throttled are sent again.

    ``max_attempts`` counts sends of a key, the first included. Re-send ``n`` (from 0) waits a
    random time between 0 and ``min(max_delay, base_delay * 2**n)`` seconds ("full jitter"), so
    that several workers hitting the same throttled prefix spread out instead of retrying in
    lockstep.

    Example::

        RetryPolicy(max_attempts=3, base_delay=0.01)  # quick, for tests
    """

    max_attempts: int = 8
    base_delay: float = 0.2
    max_delay: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("max_attempts must be >= 1 and the delays >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(attempt, 30)))
        return random.uniform(0, ceiling)  # noqa: S311 (jitter, not cryptography)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore error (``SlowDown``, ``NoSuchBucket``, ``503``…)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(error.get("Code") or status or "Unknown")
    return type(exc).__name__


class Entry(NamedTuple):
    """One thing to delete: a key, or a key version (``version_id``), with its size."""

    key: str
    version_id: str | None
    size: int
    is_delete_marker: bool = False

    def identifier(self) -> dict[str, str]:
        """The ``ObjectIdentifier`` of a ``DeleteObjects`` request."""
        if self.version_id is None:
            return {"Key": self.key}
        return {"Key": self.key, "VersionId": self.version_id}


class S3Calls:
    """A client wrapper that counts the requests each operation cost (thread-safe).

    ``retry`` paces the re-sends of :func:`delete_batch`; whole requests are retried by botocore
    (``retries`` counts both).
    """

    def __init__(
        self,
        client: Any,
        retry: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.retries = 0

    @property
    def total_requests(self) -> int:
        """Every HTTP request sent so far, botocore's own retries included."""
        with self._lock:
            return sum(self.requests.values())

    def _count(self, operation: str, metadata: Any) -> None:
        retried = 0
        if isinstance(metadata, dict):
            retried = int(metadata.get("RetryAttempts", 0) or 0)
        with self._lock:
            self.requests[operation] += 1 + retried
            self.retries += retried

    def backoff(self, attempt: int) -> None:
        """Wait before re-send ``attempt`` of throttled keys and count it."""
        with self._lock:
            self.retries += 1
        self._sleep(self.retry.delay(attempt))

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (e.g. ``list_objects_v2``) once; botocore retries what is
        transient, as its retry mode says.

        Raises:
            botocore.exceptions.ClientError: an error botocore did not retry, or one that
                outlasted its attempts.
        """
        response = self.counted(operation, lambda: getattr(self.client, operation)(**params))
        assert response is not None
        return response

    def counted(
        self, operation: str, send: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """``send()`` (one request of ``operation``, e.g. a paginator's next page), counted;
        ``None`` passes through uncounted (a paginator that had no page left to ask for)."""
        try:
            response = send()
        except ClientError as exc:
            self._count(operation, exc.response.get("ResponseMetadata"))
            raise
        except BotoCoreError:
            self._count(operation, None)  # attempts not reported: counted as one
            raise
        if response is not None:
            self._count(operation, response.get("ResponseMetadata"))
        return response


@dataclass
class BatchOutcome:
    """What one batch achieved: entries deleted, and the reason each failed entry failed."""

    deleted: list[Entry] = field(default_factory=list)
    failed: dict[Entry, str] = field(default_factory=dict)


def delete_batch(calls: S3Calls, bucket: str, entries: Sequence[Entry]) -> BatchOutcome:
    """Delete up to 1,000 entries with ``DeleteObjects``; retry the keys reported as throttled.

    Never raises: a request that fails for good marks every entry it carried as failed.
    Keys that are already gone count as deleted (a concurrent cleanup got there first).
    """
    if len(entries) > DELETE_BATCH_SIZE:
        raise ValueError(f"at most {DELETE_BATCH_SIZE} entries per batch, got {len(entries)}")
    outcome = BatchOutcome()
    pending = list(entries)
    attempt = 0
    while pending:
        by_identity = {(e.key, e.version_id): e for e in pending}
        try:
            response = calls.call(
                "delete_objects",
                Bucket=bucket,
                Delete={"Objects": [e.identifier() for e in pending], "Quiet": True},
            )
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "NoSuchBucket":
                outcome.deleted.extend(pending)  # the bucket, and so the keys, are gone
            else:
                reason = f"DeleteObjects failed: {error_code(exc)}"
                outcome.failed.update(dict.fromkeys(pending, reason))
            return outcome
        throttled: list[Entry] = []
        for error in response.get("Errors", []):
            entry = by_identity.pop((error.get("Key", ""), error.get("VersionId")), None)
            if entry is None:  # some servers echo no VersionId: match on the key alone
                entry = next((e for k, e in by_identity.items() if k[0] == error.get("Key")), None)
                if entry is None:
                    continue
                by_identity.pop((entry.key, entry.version_id))
            code = str(error.get("Code", "Unknown"))
            if code in GONE_CODES:
                outcome.deleted.append(entry)
            elif code in RETRYABLE_CODES:
                throttled.append(entry)
            else:
                outcome.failed[entry] = f"{code}: {error.get('Message', '')}".rstrip(": ")
        outcome.deleted.extend(by_identity.values())
        attempt += 1
        if throttled and attempt >= calls.retry.max_attempts:
            reason = f"still throttled after {attempt} attempts"
            outcome.failed.update(dict.fromkeys(throttled, reason))
            break
        if throttled:
            calls.backoff(attempt - 1)
        pending = throttled
    return outcome
