"""The S3 store: what a :class:`~dagster_branch.BranchS3Resource`'s branches own in S3, and its
removal, as the :class:`~dagster_branch.BranchStore` the resource hands out (``as_store()``).

Built from the resource's cleanup client (boto3, no write guard), :class:`S3StoreSettings` and the
ledger (``None`` without ``ledger_url``); it never imports the resource. Inventory is described
in :mod:`dagster_branch.stores.s3_inventory`, the purge in :mod:`dagster_branch.stores.s3_purge`
(plain boto3), counting in :mod:`dagster_branch.stores.s3_survey` and lifecycle expiry in
:mod:`dagster_branch.stores.s3_expire`.

Removal checks each object's ownership again, purges it (or, with ``cleanup_strategy="expire"``,
sets a lifecycle rule), and marks in the ledger only what is verifiably gone; what came back
while the cleanup ran is recorded again through the resource (recording is the resource's job).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import SQLAlchemyError

from dagster_branch.errors import DagsterBranchError
from dagster_branch.inventory import (
    ObjectKind,
    OwnedObject,
    RemovalResult,
    Survey,
    ledger_not_updated,
    merge_sources,
)
from dagster_branch.ledger import Ledger, LedgerInventory, db_error_text, mark_removed
from dagster_branch.naming import Namespace, namespace_of_bucket, namespace_of_key, namespace_prefix
from dagster_branch.ownership import Owner
from dagster_branch.stores.s3_batches import RetryPolicy, error_code
from dagster_branch.stores.s3_expire import (
    expire_bucket,
    expire_prefix,
    expiry_rule_ids,
    remove_lifecycle_rules,
)
from dagster_branch.stores.s3_inventory import (
    FOUND_IN_S3,
    TAG_READERS,
    BucketFinding,
    BucketTags,
    has_anything,
    read_bucket_tags,
    read_marker_owner,
    tag_conflict,
    tail_namespace,
)
from dagster_branch.stores.s3_layout import BACKEND, S3Layout, clean_folder, common_bucket_prefix
from dagster_branch.stores.s3_purge import PurgeReport, operation_of, purge_bucket, purge_prefix
from dagster_branch.stores.s3_survey import S3Listing, count_prefix

__all__ = ["RECREATED", "RecordsAgain", "S3Store", "S3StoreSettings"]

_logger = logging.getLogger(__name__)

RECREATED = (
    "objects were written there again while the cleanup ran (a branch run still writing?), "
    "so it stays recorded; run the cleanup again once the branch stopped writing"
)


class RecordsAgain(Protocol):
    """How the resource records objects that came back after the cleanup removed them (a new
    ledger row, or the marker object); returns why it could not, else ``None``."""

    def __call__(self, objects: set[OwnedObject], *, log: logging.Logger) -> str | None: ...


@dataclass(frozen=True)
class S3StoreSettings:
    """What the S3 store needs to know of its resource's configuration (see the fields of
    :class:`~dagster_branch.BranchS3Resource`, which builds it with ``store_settings()``).

    Example::

        S3StoreSettings(store_key="lake", layout=S3Layout(bucket="acme-data", prefix="lake"),
                        owner=Owner("analytics"))
    """

    store_key: str
    layout: S3Layout
    owner: Owner
    cleanup_strategy: Literal["delete", "expire"] = "delete"
    cleanup_workers: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class S3Store:
    """The :class:`~dagster_branch.BranchStore` of S3 prefixes and buckets (see the module
    docstring). :meth:`~dagster_branch.BranchS3Resource.as_store` hands one out.

    Example::

        store = lake.as_store()
        objects = store.objects_of(Namespace.parse("pr_42"))
        refusals = {o.qualified_name: store.ownership_problem(o) for o in objects}
        results = store.remove_objects(objects, dry_run=True, log=logging.getLogger("cleanup"))
    """

    def __init__(
        self,
        client: Any,
        settings: S3StoreSettings,
        ledger: Ledger | None,
        *,
        record_again: RecordsAgain,
    ) -> None:
        self.client = client
        self.settings = settings
        self.ledger = ledger
        self.record_again = record_again
        # Namespace tags of existing buckets, read once per store (discovery, verify, removal).
        self._bucket_tags: dict[str, BucketTags] = {}
        self._tags_lock = threading.Lock()

    def namespace_tag_of(self, bucket: str) -> BucketTags:
        """Whether ``bucket`` exists and its ``dagster-branch/namespace`` tag.

        One ``GetBucketTagging``, remembered by this store when the bucket exists, so that
        discovery, verification and removal read each bucket's tags once.
        """
        cached = self._bucket_tags.get(bucket)
        if cached is None:
            cached = read_bucket_tags(self.client, bucket)
            if cached.exists:
                with self._tags_lock:
                    self._bucket_tags[bucket] = cached
        return cached

    def forget_tags(self, bucket: str) -> None:
        """Read ``bucket``'s tags again when next asked (the resource just tagged it)."""
        with self._tags_lock:
            self._bucket_tags.pop(bucket, None)

    def last_activity_of(self, namespace: Namespace) -> datetime | None:
        """When a run last wrote ``namespace`` here, for the sensor's ``stale_after``
        (:class:`~dagster_branch.detection.ReportsActivity`); ``None`` when unknown.

        Cheap, never a listing of keys: with a ledger, its last activity for the namespace's
        live rows (one statement; refreshed by each run's ``ensure_namespace``, to within the
        ledger's ``touch_every``); without one, or when the ledger has no row, the
        ``LastModified`` of the marker object (one ``HEAD``), which every run that writes
        rewrites.

        Raises:
            DagsterBranchError: the ledger or S3 could not be read.
        """
        key = self.settings.store_key
        latest: datetime | None = None
        if self.ledger is not None:
            try:
                latest = self.ledger.last_activity(namespace, store=key)
            except SQLAlchemyError as exc:
                raise DagsterBranchError(
                    f"{key}: could not read the ledger for {namespace}: {db_error_text(exc)}."
                ) from exc
        if latest is None:
            latest = self._marker_written_at(namespace)
        return latest

    def _marker_written_at(self, namespace: Namespace) -> datetime | None:
        layout, key = self.settings.layout, self.settings.store_key
        bucket, _ = layout.namespace_root(namespace)
        try:
            head = self.client.head_object(Bucket=bucket, Key=layout.marker_key(namespace))
        except ClientError as exc:
            if error_code(exc) in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}:
                return None
            raise DagsterBranchError(
                f"{key}: could not read the marker of {namespace} in s3://{bucket}: "
                f"{error_code(exc)}."
            ) from exc
        except BotoCoreError as exc:
            raise DagsterBranchError(
                f"{key}: could not reach S3 for the marker of {namespace}: {error_code(exc)}."
            ) from exc
        modified = head.get("LastModified")
        return modified.astimezone(timezone.utc) if isinstance(modified, datetime) else None

    def _mark_removed(self, objects: Sequence[OwnedObject], *, log: logging.Logger) -> str | None:
        """Mark ``objects`` dropped in the ledger, if one is configured; why that failed, else
        ``None`` (never raises: the objects are gone either way)."""
        if self.ledger is None or not objects:
            return None
        reason = mark_removed(self.ledger, self.settings.store_key, objects)
        if reason is not None:
            log.error(f"Removed {len(objects)} object(s), but the ledger was not updated: {reason}")
        return reason

    def scan_buckets(self, namespace: Namespace | None = None) -> list[BucketFinding]:
        """Branch-shaped buckets (of ``namespace`` only, if given) with their namespace tags.

        ``ListBuckets`` filtered by the common name prefix, then one ``GetBucketTagging`` per
        branch-shaped name, a few in flight at once. Untagged buckets whose names do not parse back
        are someone else's and are left out.
        """
        client = self.client
        prefix = common_bucket_prefix(self.settings.layout.bucket)
        names: list[str] = []
        paginator = client.get_paginator("list_buckets")
        for page in paginator.paginate(Prefix=prefix, PaginationConfig={"PageSize": 1000}):
            for bucket in page.get("Buckets", []):
                tail = tail_namespace(bucket["Name"], prefix)
                if tail is not None and (namespace is None or tail == namespace):
                    names.append(bucket["Name"])
        if len(names) > 1:
            with ThreadPoolExecutor(min(TAG_READERS, len(names)), "s3-tags") as pool:
                tags = list(pool.map(self.namespace_tag_of, names))
        else:
            tags = [self.namespace_tag_of(name) for name in names]
        base = self.settings.layout.bucket
        findings = [
            BucketFinding(
                name, base, namespace_of_bucket(name, base), found.namespace_tag, found.owner
            )
            for name, found in zip(names, tags, strict=True)
            if found.exists
        ]
        owner = self.settings.owner
        return [
            f
            for f in findings
            if (f.by_name is not None or f.tag is not None) and not f.is_foreign(owner)
        ]

    def _inventory(self, namespace: Namespace | None) -> LedgerInventory:
        if self.ledger is None:
            return LedgerInventory()
        return self.ledger.inventory(namespace, store=self.settings.store_key)

    def _discover_buckets(self) -> list[OwnedObject]:
        found: list[OwnedObject] = []
        for finding in self.scan_buckets():
            problem = finding.problem()
            if problem is not None:  # still listed: its cleanup run then shows the refusal
                _logger.warning(f"{self.settings.store_key}: {problem}.")
            namespace = finding.namespace
            if namespace is not None:
                found.append(
                    OwnedObject(
                        namespace, BACKEND, ObjectKind.BUCKET, finding.name, None,
                        finding.found_in(namespace),
                    )
                )  # fmt: skip
        return found

    def _discover_folders(self) -> list[OwnedObject]:
        """Namespace folders under ``branch_root``, one ``ListObjectsV2`` per 1,000; without a
        ledger, each folder's marker is read too (one ``GetObject`` each)."""
        client = self.client
        layout = self.settings.layout
        bucket = layout.branch_data_bucket
        root = clean_folder(layout.branch_root)
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
        return [f for f in map(self._folder, namespaces) if f is not None]

    def _folder(self, namespace: Namespace) -> OwnedObject | None:
        """The namespace's folder as found in S3, with its marker's verdict when there is no
        ledger: ``None`` when another owner's marker claims it."""
        layout = self.settings.layout
        bucket, prefix = layout.namespace_root(namespace)
        found_in = FOUND_IN_S3
        if self.ledger is None:
            exists, owner = read_marker_owner(self.client, bucket, layout.marker_key(namespace))
            if owner is not None and owner.name != self.settings.owner.name:
                return None
            if exists:
                found_in = found_in | {"marker" if owner is not None else "marker (no owner)"}
        return OwnedObject(namespace, BACKEND, ObjectKind.PREFIX, prefix, bucket, found_in)

    def _discovered(self) -> list[OwnedObject]:
        if self.settings.layout.strategy == "bucket":
            return self._discover_buckets()
        return self._discover_folders()

    def list_namespaces(self) -> set[Namespace]:
        """Namespaces this owner recorded: live ledger rows, plus namespace buckets with this
        owner's tags and (without a ledger) folders with this owner's marker. Objects found by name
        only are left to :meth:`unrecorded_objects`."""
        recorded = {e.namespace for e in self._inventory(None).records}
        if self.settings.layout.strategy == "bucket" or self.ledger is None:
            recorded |= {obj.namespace for obj in self._discovered() if obj.recorded}
        return recorded

    def unrecorded_objects(self) -> list[OwnedObject]:
        """Buckets or folders shaped like a namespace's that no record of this owner names (found
        by name only, or recorded before owners were kept); another owner's are left out."""
        return self._inventory(None).unrecorded(self._discovered())

    def discover_objects(self, namespace: Namespace) -> list[OwnedObject]:
        """The namespace's bucket or prefix, if it exists in S3 now (another owner's left out)."""
        if self.settings.layout.strategy == "bucket":
            return [
                OwnedObject(
                    namespace, BACKEND, ObjectKind.BUCKET, f.name, None, f.found_in(namespace)
                )
                for f in self.scan_buckets(namespace)
                if f.namespace == namespace
            ]
        bucket, prefix = self.settings.layout.namespace_root(namespace)
        if not has_anything(self.client, bucket, prefix):
            return []
        folder = self._folder(namespace)
        return [folder] if folder is not None else []

    def objects_of(self, namespace: Namespace) -> list[OwnedObject]:
        """This owner's records (and rows without owner) and discovery for one namespace, merged
        (``found_in`` tells from where); objects another owner recorded are left out."""
        found = self._inventory(namespace)
        discovered = [
            obj for obj in self.discover_objects(namespace) if obj.identity not in found.foreign
        ]
        recorded = [e.to_owned() for e in found.records + found.unowned]
        return merge_sources(recorded + discovered)

    def ownership_problem(self, obj: OwnedObject) -> str | None:
        """Why the cleanup of ``obj.namespace`` must not remove ``obj``; ``None`` when it may.

        The second key of the safety invariant: the object must be exactly where the resource's
        current configuration puts the namespace (the same bucket, the same prefix under
        ``branch_root``, or the namespace's own bucket under ``strategy="bucket"``), and never the
        production bucket, the shared branch bucket, or a prefix overlapping production's. A record
        (ledger row) naming any other place is a *mismatch*: refused, whatever the record says.
        """
        layout = self.settings.layout
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
                return (
                    f"bucket {obj.name!r} is not a bucket of {namespace} (from {layout.bucket!r})"
                )
            if prefix or obj.name != bucket:
                return _mismatch(f"bucket {obj.name!r}", namespace, expected)
            return self._tag_problem(obj.name, namespace)
        if not prefix:
            return _mismatch(f"prefix {where!r}", namespace, expected)
        if obj.name != prefix:
            return f"prefix {obj.name!r} is not the namespace folder {prefix!r} under branch_root"
        if obj.container != bucket:
            return _mismatch(f"prefix {where!r} (bucket {obj.container!r})", namespace, expected)
        return None

    def _tag_problem(self, bucket: str, namespace: Namespace) -> str | None:
        """The third look at a namespace bucket: its namespace tag, when it has one, must agree."""
        try:
            tags = self.namespace_tag_of(bucket)
        except (ClientError, BotoCoreError) as exc:
            return f"the tags of bucket {bucket!r} could not be read ({error_code(exc)})"
        if tags.namespace_tag is not None and tags.namespace_tag != namespace.key:
            return tag_conflict(bucket, namespace, tags.namespace_tag)
        owner = self.settings.owner
        if tags.owner is not None and tags.owner.name != owner.name:
            return (
                f"bucket {bucket!r} is tagged as {tags.owner.describe()}'s, "
                f"not {owner.describe()}'s"
            )
        return None

    def remove_objects(
        self,
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
        client = self.client
        options: dict[str, Any] = {
            "workers": self.settings.cleanup_workers,
            "retry": self.settings.retry,
            "log": log,
        }
        results: list[RemovalResult] = []
        removed: list[OwnedObject] = []
        for obj in objects:
            problem = self.ownership_problem(obj)
            if problem is not None:
                results.append(RemovalResult(obj=obj, removed=False, error=f"refused: {problem}"))
                continue
            bucket, prefix = (
                (obj.name, "") if obj.kind is ObjectKind.BUCKET else (obj.container, obj.name)
            )
            assert bucket is not None  # ownership_problem refuses a prefix without a bucket
            listing = _listing_of(surveys, obj, bucket, prefix)
            try:
                if self.settings.cleanup_strategy == "expire":
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
            results = self._record_removals(results, removed, log)
        return results

    def _record_removals(
        self,
        results: list[RemovalResult],
        removed: list[OwnedObject],
        log: logging.Logger,
    ) -> list[RemovalResult]:
        """Mark dropped only what is verifiably gone: S3 is asked before the ledger update (what
        is back is not marked) and after it (what came back meanwhile is recorded again: a new
        ledger row, or the marker object). A few requests per removed prefix or bucket."""
        client = self.client

        def still_there(obj: OwnedObject) -> bool:
            if obj.kind is ObjectKind.BUCKET:
                return read_bucket_tags(client, obj.name).exists
            return has_anything(client, obj.container or "", obj.name)

        back = {obj for obj in removed if still_there(obj)}
        failed = self._mark_removed([o for o in removed if o not in back], log=log)
        if failed is None:
            late = {obj for obj in removed if obj not in back and still_there(obj)}
            if self.ledger is not None:
                failed = self.record_again(late, log=log)
            else:  # the marker went with the purge: what is back must be marked again
                failed = self.record_again(back | late, log=log)
            back |= late
        for obj in sorted(back):
            log.warning(f"{obj.qualified_name}: {RECREATED}")
        results = [
            replace(r, removed=False, error=RECREATED) if r.obj in back else r for r in results
        ]
        return ledger_not_updated(results, failed) if failed is not None else results

    def survey(self, objects: Sequence[OwnedObject], *, limit: int) -> dict[OwnedObject, Survey]:
        """Count each prefix or bucket (:func:`count_prefix`), the plan's remaining ``limit`` shared
        across them; an object refused for its ownership is counted as one and not listed."""
        client = self.client
        surveys: dict[OwnedObject, Survey] = {}
        left = limit
        for obj in objects:
            if self.ownership_problem(obj) is not None:
                surveys[obj] = Survey()  # verification refuses the plan; nothing to list
                continue
            bucket, prefix = (
                (obj.name, "") if obj.kind is ObjectKind.BUCKET else (obj.container, obj.name)
            )
            try:
                listing = count_prefix(client, bucket or "", prefix, limit=max(left, 0))
            except (ClientError, BotoCoreError) as exc:
                raise DagsterBranchError(
                    f"Could not count the objects of {obj.qualified_name}: "
                    f"{getattr(exc, 'operation_name', 'S3 request')} failed ({error_code(exc)}); "
                    "nothing is removed until they can be counted. Run again later."
                ) from exc
            contents = listing.contents + (obj.kind is ObjectKind.BUCKET)
            left -= contents
            surveys[obj] = Survey(contents=contents, complete=listing.complete, listing=listing)
        return surveys


def _mismatch(what: str, namespace: Namespace, expected: str) -> str:
    return (
        f"mismatch: {what} is not where the current configuration puts {namespace} "
        f"({expected}); it is not removed. If the configuration changed since it was recorded, "
        "empty it by hand and mark its ledger row dropped"
    )


def _listing_of(
    surveys: Mapping[OwnedObject, Survey] | None, obj: OwnedObject, bucket: str, prefix: str
) -> S3Listing | None:
    """The counting pass's complete listing of exactly this bucket and prefix, if any."""
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
        return f"{operation_of(exc)} failed: {error_code(exc)}"
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
