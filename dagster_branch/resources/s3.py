"""A dagster-aws ``S3Resource`` that writes each branch deployment into its own prefix or bucket.

Every credential and endpoint option of :class:`dagster_aws.s3.S3Resource` (region, profile,
endpoint URL, access keys, session token, ``max_attempts``, SSL) works unchanged: this class
extends it with the routing of :class:`~dagster_branch.stores.s3_layout.S3Layout`, a write
guard on the client it hands out and ownership records; inventory and removal are the S3 store's
(:class:`~dagster_branch.stores.s3.S3Store`), which :meth:`BranchS3Resource.as_store` hands out.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.handlers import disable_signing
from dagster import InitResourceContext
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr
from sqlalchemy.exc import SQLAlchemyError

from dagster_branch.boto_sessions import new_session
from dagster_branch.context import DeploymentContext
from dagster_branch.dialects import locks_file
from dagster_branch.errors import (
    DagsterBranchConfigError,
    DagsterBranchError,
    NamespaceViolationError,
    OwnershipConflictError,
)
from dagster_branch.inventory import ObjectKind, OwnedObject, RemovalResult, Survey
from dagster_branch.ledger import Ledger, LedgerEntry, db_error_text
from dagster_branch.naming import Namespace
from dagster_branch.ownership import OWNER_FIELD_DESCRIPTION, Owner
from dagster_branch.stores.s3 import S3Store, S3StoreSettings
from dagster_branch.stores.s3_batches import RetryPolicy, error_code
from dagster_branch.stores.s3_expire import merge_lifecycle_rules, safety_net_rules
from dagster_branch.stores.s3_inventory import read_marker_owner
from dagster_branch.stores.s3_layout import (
    BACKEND,
    TAG_NAMESPACE,
    TAG_OWNER,
    TAG_PULL_REQUEST,
    TAG_REPOSITORY,
    S3Layout,
    write_targets,
)

if TYPE_CHECKING:
    from botocore.model import OperationModel

__all__ = ["BranchS3Resource"]

_TAG_UNSAFE = re.compile(r"[^\w .:/=+\-@]", re.ASCII)
# One lock for every instance: namespaces are ensured once per run, so contention is nil, and a
# module lock survives the copies Dagster makes of resources (a lock attribute would not).
_ENSURE_LOCK = threading.Lock()
_CLIENT_LOCK = threading.Lock()  # lazy clients and ledger (boto3 sessions are not thread-safe)


class BranchS3Resource(S3Resource):
    """S3 for assets, routed per deployment: production, each branch, and local development
    each write to their own place, and the cleanup later finds exactly what a branch wrote.

    Production writes to ``s3://<bucket>/<prefix>/…``. With ``strategy="prefix"`` a branch for
    PR 42 writes to ``s3://<branch_bucket or bucket>/_branches/pr_42/<prefix>/…``; with
    ``strategy="bucket"`` to its own bucket ``<bucket>--pr-42``, created and tagged on first
    write. A separate ``branch_bucket`` is the recommended setup: branch credentials then need no
    rights on the production bucket at all.

    The client from :meth:`get_client` refuses, with :class:`NamespaceViolationError`, any write
    outside the deployment's own corner, and ensures the namespace before its first write.

    Example::

        from dagster import Definitions, EnvVar, asset

        @asset
        def export(lake: BranchS3Resource) -> None:
            lake.get_client().put_object(
                Bucket=lake.bucket_name, Key=lake.key("exports/orders.csv"), Body=b"id\\n1\\n"
            )

        defs = Definitions(
            assets=[export],
            resources={"lake": BranchS3Resource(
                bucket="acme-data", prefix="lake", branch_bucket="acme-branches",
                ledger_url=EnvVar("WAREHOUSE_URL"))},
        )
    """

    bucket: str = Field(description="The production bucket.")
    prefix: str = Field(
        default="",
        description="The production folder inside bucket, e.g. 'lake'. Required when branches "
        "share the production bucket (strategy='prefix' without branch_bucket).",
    )
    strategy: Literal["prefix", "bucket"] = Field(
        default="prefix",
        description="'prefix': branches write under <branch_root>/<namespace>/<prefix>/ in "
        "branch_bucket (or bucket). 'bucket': each namespace gets its own bucket, named from "
        "bucket, created on first use.",
    )
    branch_root: str = Field(
        default="_branches",
        description="Folder holding every namespace under strategy='prefix'.",
    )
    branch_bucket: str | None = Field(
        default=None,
        description="A separate bucket for all branches under strategy='prefix' (recommended: "
        "branch credentials then need no rights on the production bucket).",
    )
    bucket_tags: dict[str, str] = Field(
        default={},
        description="Extra tags put on namespace buckets created under strategy='bucket', "
        "beside the dagster-branch/namespace, pull-request and repository tags.",
    )
    expire_after_days: int | None = Field(
        default=None,
        ge=1,
        description="strategy='bucket' only: a lifecycle rule on each namespace bucket expires "
        "its objects after this many days, a safety net should a cleanup never run.",
    )
    ledger_url: str | None = Field(
        default=None,
        repr=False,
        description="SQLAlchemy URL of the ownership ledger (usually the warehouse's). Pass it "
        "as EnvVar: it may hold a password. Without it, ownership is marked by an object "
        "'.dagster-branch.json' in the namespace's prefix or bucket.",
    )
    ledger_schema: str | None = Field(
        default="dagster_branch",
        description="Schema of the ledger table dagster_branch_objects (None: default schema).",
    )
    store_key: str = Field(
        default="lake",
        description="The resource key this resource is bound to, recorded in the ledger.",
    )
    owner: str | None = Field(default=None, description=OWNER_FIELD_DESCRIPTION)
    record_again_seconds: float = Field(
        default=60.0,
        ge=0,
        description="A branch write records its namespace again (one ledger SELECT, or the "
        "marker's GET and PUT) when the last record is older than this: a cleanup that marked "
        "the namespace dropped meanwhile is followed by a new record, not by unrecorded keys. "
        "0 records before every write.",
    )
    cleanup_strategy: Literal["delete", "expire"] = Field(
        default="delete",
        description="How the cleanup removes a namespace: 'delete' lists and deletes now; "
        "'expire' puts a lifecycle rule so that S3 deletes it within about a day.",
    )
    cleanup_workers: int = Field(
        default=8,
        ge=1,
        le=64,
        description="DeleteObjects requests in flight at once during a cleanup (the client's "
        "connection pool is sized to match).",
    )
    retry_mode: Literal["standard", "adaptive"] = Field(
        default="standard",
        description="botocore's retry mode for every request, with max_attempts retries: "
        "'standard' (backoff with jitter on throttling, 5xx and dropped connections) or "
        "'adaptive' (the same, plus client-side rate limiting once S3 throttles).",
    )
    retry_base_delay_seconds: float = Field(
        default=0.2,
        ge=0,
        description="First pause before the keys a DeleteObjects answer reports as throttled "
        "(inside a 200, which botocore does not retry) are sent again, up to max_attempts times; "
        "doubled each time, with jitter.",
    )
    aws_secret_access_key: str | None = Field(
        default=None,
        repr=False,
        description="AWS secret access key to use when creating the boto3 session.",
    )
    aws_session_token: str | None = Field(
        default=None,
        repr=False,
        description="AWS session token to use when creating the boto3 session.",
    )

    _deployment: DeploymentContext | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)
    _client: Any = PrivateAttr(default=None)
    _cleanup_client: Any = PrivateAttr(default=None)
    _session: Any = PrivateAttr(default=None)
    _ledger: Ledger | None = PrivateAttr(default=None)
    _ensured: tuple[str, str] | None = PrivateAttr(default=None)
    _ensured_at: float = PrivateAttr(default=0.0)
    _store: S3Store | None = PrivateAttr(default=None)

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    # -- lifecycle ------------------------------------------------------------------------------

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Resolve the deployment and check the configuration before any step runs."""
        self._deployment = DeploymentContext.from_env()
        self._run_id = context.run.run_id if context.run is not None else None
        self.layout()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Close the clients created during the run."""
        self.close()

    def close(self) -> None:
        """Close the clients' connection pools and the ledger's engine; new ones are made (from
        the same boto3 session, cheaply) if the resource is used again."""
        for client in (self._client, self._cleanup_client):
            if client is not None:
                client.close()
        self._client = self._cleanup_client = self._store = None
        if self._ledger is not None:
            self._ledger.engine.dispose()
            self._ledger = None

    def get_object_to_set_on_execution_context(self) -> Any:
        """Ops using ``context.resources.<key>`` get the resource (routing included), not a
        bare client."""
        return self

    # -- routing --------------------------------------------------------------------------------

    @property
    def deployment(self) -> DeploymentContext:
        """The deployment this resource routes for (read from the environment once)."""
        if self._deployment is None:
            self._deployment = DeploymentContext.from_env()
        return self._deployment

    @property
    def namespace(self) -> Namespace | None:
        """This deployment's namespace; ``None`` in production."""
        return self.deployment.namespace

    def layout(self) -> S3Layout:
        """The validated routing rules.

        Raises:
            DagsterBranchConfigError: branch keys could share a prefix with production keys.
        """
        layout = S3Layout(
            bucket=self.bucket,
            prefix=self.prefix,
            strategy=self.strategy,
            branch_root=self.branch_root,
            branch_bucket=self.branch_bucket,
        )
        layout.validate()
        if self.expire_after_days is not None and self.strategy != "bucket":
            raise DagsterBranchConfigError(
                "expire_after_days is set with strategy='prefix': a lifecycle rule there would "
                "cover the shared bucket. Unset it, or use strategy='bucket'."
            )
        return layout

    @property
    def bucket_name(self) -> str:
        """The bucket this deployment writes to."""
        return self.layout().bucket_for(self.namespace)

    def key(self, path: str) -> str:
        """The key of relative ``path`` for this deployment: ``lake/orders.csv`` in production,
        ``_branches/pr_42/lake/orders.csv`` in the branch of PR 42."""
        return self.layout().key_for(self.namespace, path)

    def uri(self, path: str) -> str:
        """``s3://<bucket_name>/<key(path)>``."""
        return f"s3://{self.bucket_name}/{self.key(path)}"

    @property
    def production_bucket(self) -> str:
        """The production bucket (for reads of data a branch did not build)."""
        return self.bucket

    def production_key(self, path: str) -> str:
        """The key of ``path`` in production, whatever this deployment is (for reads)."""
        return self.layout().key_for(None, path)

    def production_uri(self, path: str) -> str:
        """``s3://<bucket>/<production_key(path)>``."""
        return f"s3://{self.bucket}/{self.production_key(path)}"

    # -- clients --------------------------------------------------------------------------------

    def get_client(self) -> Any:
        """A boto3 S3 client (created once per resource instance) that refuses writes outside
        this deployment's corner and creates the namespace before the first write."""
        if self._client is None:
            with _CLIENT_LOCK:
                if self._client is None:
                    client = self._new_client()
                    client.meta.events.register("before-parameter-build.s3", self._guard_write)
                    self._client = client
        return self._client

    def get_cleanup_client(self) -> Any:
        """A client without the write guard, for ``ensure_namespace``, inventory and cleanup
        (created once per resource instance, from the same boto3 session)."""
        if self._cleanup_client is None:
            with _CLIENT_LOCK:
                if self._cleanup_client is None:
                    self._cleanup_client = self._new_client()
        return self._cleanup_client

    def _new_client(self) -> Any:
        """A client from this instance's boto3 session, configured like dagster-aws's own.

        The session is made once, reading botocore's models through the process's shared loader
        (:mod:`dagster_branch.boto_sessions`); a second client from it is a few milliseconds.
        Sessions are not thread-safe, so this runs under ``_CLIENT_LOCK``; the clients are.
        """
        if self._session is None:
            self._session = new_session(self.profile_name)
        config = Config(
            retries={"max_attempts": self.max_attempts, "mode": self.retry_mode},
            # One connection per purge worker, plus listing and the checks beside them.
            max_pool_connections=max(10, self.cleanup_workers + 2),
        )
        client = self._session.client(
            "s3",
            region_name=self.region_name,
            use_ssl=self.use_ssl,
            verify=self.verify,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            config=config,
        )
        if self.use_unsigned_session:
            client.meta.events.register("choose-signer.s3.*", disable_signing)
        return client

    def _guard_write(self, params: dict[str, Any], model: OperationModel, **_: Any) -> None:
        targets = list(write_targets(model.name, params))
        if not targets:
            return
        layout, namespace = self.layout(), self.namespace
        for bucket, key in targets:
            problem = layout.write_problem(namespace, bucket, key)
            if problem is not None:
                who = f"namespace {namespace}" if namespace else "the production deployment"
                raise NamespaceViolationError(
                    f"Refused {model.name} for {who}: {problem}. Build keys with "
                    f"{type(self).__name__}.key(path) and write to .bucket_name."
                )
        if namespace is not None:
            self.ensure_namespace()

    # -- ownership ------------------------------------------------------------------------------

    def ensure_namespace(self) -> None:
        """Create and record this deployment's namespace; idempotent and cheap to repeat.

        Production: nothing to do. First records ownership in the ledger (``ledger_url``),
        which refuses a name another owner recorded. Bucket strategy: creates the namespace
        bucket if missing, with its lifecycle safety net and tags, owner included (one
        ``GetBucketTagging`` when it exists). Without a ledger, reads the marker object
        ``.dagster-branch.json`` at the namespace's root and (re)writes it with this owner (one
        ``GET`` and one ``PUT``). Called automatically before the first write through
        :meth:`get_client` or the IO manager, and again before the first write after
        ``record_again_seconds`` (a minute), so that a record a cleanup marked dropped
        meanwhile is written again.

        Raises:
            OwnershipConflictError: another owner (code location, repository) recorded the
                namespace's bucket or prefix.
        """
        namespace = self.namespace
        if namespace is None:
            return
        layout = self.layout()
        root = layout.namespace_root(namespace)
        with _ENSURE_LOCK:
            fresh = time.monotonic() - self._ensured_at < self.record_again_seconds
            if self._ensured == root and fresh:
                return
            bucket, prefix = root
            try:
                if self.ledger_url:  # first: never an unrecorded bucket, nor another owner's
                    self._record(namespace, bucket, prefix)
                if self.strategy == "bucket":
                    self._ensure_bucket(bucket, namespace)
                if not self.ledger_url:
                    self._put_marker(namespace, bucket, layout.marker_key(namespace))
            except (ClientError, BotoCoreError) as exc:
                raise DagsterBranchError(
                    f"Could not set up namespace {namespace} in s3://{bucket}/{prefix}: "
                    f"{error_code(exc)}. Check that this deployment's credentials may write "
                    "there (and create buckets, under strategy='bucket')."
                ) from exc
            self._ensured, self._ensured_at = root, time.monotonic()

    def bucket_tags_for(self, namespace: Namespace) -> dict[str, str]:
        """The tags of a namespace bucket: the user's ``bucket_tags`` plus ours."""
        d = self.deployment
        ours = {
            TAG_NAMESPACE: namespace.key,
            TAG_OWNER: self.resolved_owner().name,
            TAG_PULL_REQUEST: namespace.pull_request_id or d.pull_request_id or "",
            TAG_REPOSITORY: d.git_repo or "",
        }
        tags = {**self.bucket_tags, **ours}
        return {_tag_text(k, 128): _tag_text(v, 256) for k, v in tags.items() if v}

    def _ensure_bucket(self, bucket: str, namespace: Namespace) -> None:
        client = self.get_cleanup_client()
        try:
            tags = client.get_bucket_tagging(Bucket=bucket).get("TagSet", [])
        except ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchBucket":
                self._create_bucket(client, bucket)
                tags = []
            elif code == "NoSuchTagSet":
                tags = []
            else:
                raise
        current = {t.get("Key"): t.get("Value", "") for t in tags}
        tagged_by = current.get(TAG_OWNER)
        owner = self.resolved_owner()
        if tagged_by and tagged_by != owner.name:
            raise _conflict(
                f"bucket {bucket!r}",
                Owner(tagged_by, current.get(TAG_REPOSITORY) or None),
                owner,
                namespace,
            )
        if TAG_NAMESPACE in current and tagged_by:
            return  # tagged last, so a tagged bucket is fully set up
        if self.expire_after_days is not None:
            merge_lifecycle_rules(client, bucket, safety_net_rules(self.expire_after_days))
        merged = {t["Key"]: t.get("Value", "") for t in tags} | self.bucket_tags_for(namespace)
        client.put_bucket_tagging(
            Bucket=bucket,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(merged.items())]},
        )
        if self._store is not None:
            self._store.forget_tags(bucket)  # read again when next asked

    def _create_bucket(self, client: Any, bucket: str) -> None:
        region = client.meta.region_name
        params: dict[str, Any] = {"Bucket": bucket}
        if region and region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            client.create_bucket(**params)
        except ClientError as exc:
            code = error_code(exc)
            if code == "BucketAlreadyExists":
                raise DagsterBranchConfigError(
                    f"Bucket {bucket!r} belongs to another AWS account (bucket names are "
                    "global): change bucket, the base of namespace bucket names, or use "
                    "strategy='prefix'."
                ) from exc
            if code != "BucketAlreadyOwnedByYou":
                raise

    def _record(self, namespace: Namespace, bucket: str, prefix: str) -> None:
        d = self.deployment
        kind, name, container = (
            (ObjectKind.PREFIX, prefix, bucket) if prefix else (ObjectKind.BUCKET, bucket, None)
        )
        ledger = self.get_ledger()
        ledger.record(
            LedgerEntry(
                namespace=namespace,
                store=self.store_key,
                backend=BACKEND,
                kind=kind,
                name=name,
                container=container,
                pull_request_id=d.pull_request_id,
                branch=d.git_branch,
                deployment_name=d.deployment_name,
                run_id=self._run_id,
                git_sha=d.git_sha,
            )
        )
        if locks_file(ledger.engine):  # a DuckDB ledger: let another process (dbt) open it
            self._ledger = None
            ledger.engine.dispose()

    def _put_marker(self, namespace: Namespace, bucket: str, key: str) -> None:
        """(Re)write the marker after checking that no other owner wrote it (one ``GET``, one
        ``PUT`` per run); its ``LastModified`` then tells :meth:`last_activity_of` when a run
        last wrote here."""
        d = self.deployment
        owner = self.resolved_owner()
        _, marked_by = read_marker_owner(self.get_cleanup_client(), bucket, key)
        if marked_by is not None and owner.conflicts_with(marked_by):
            raise _conflict(f"s3://{bucket}/{key}", marked_by, owner, namespace)
        body = {
            "namespace": namespace.key,
            "owner": owner.name,
            "store": self.store_key,
            "pull_request_id": d.pull_request_id,
            "branch": d.git_branch,
            "repository": d.git_repo,
            "deployment_name": d.deployment_name,
            "git_sha": d.git_sha,
            "run_id": self._run_id,
            "written_at": datetime.now(timezone.utc).isoformat(),
        }
        self.get_cleanup_client().put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(body, indent=2).encode(),
            ContentType="application/json",
        )

    def resolved_owner(self) -> Owner:
        """Who this resource's records belong to: ``owner``, else the code location."""
        return Owner.resolve(self.owner, self.deployment)

    def get_ledger(self) -> Ledger:
        """The ownership ledger at ``ledger_url`` (which must be set).

        One ledger and engine per resource instance, made on first use and disposed by
        :meth:`close`: a sensor tick asking about hundreds of namespaces reuses its connections
        instead of opening one per question. ``pool_pre_ping`` replaces a connection the server
        dropped meanwhile.
        """
        if not self.ledger_url:
            raise DagsterBranchConfigError(f"{self.store_key}: ledger_url is not set.")
        with _CLIENT_LOCK:
            if self._ledger is None:
                engine = sa.create_engine(self.ledger_url, pool_pre_ping=True)
                self._ledger = Ledger(
                    engine, control_schema=self.ledger_schema, owner=self.resolved_owner()
                )
        return self._ledger

    # -- BranchStore ----------------------------------------------------------------------------

    def store_settings(self) -> S3StoreSettings:
        """What the S3 store needs of this configuration (reads the deployment for the owner)."""
        return S3StoreSettings(
            store_key=self.store_key,
            layout=self.layout(),
            owner=self.resolved_owner(),
            cleanup_strategy=self.cleanup_strategy,
            cleanup_workers=self.cleanup_workers,
            # Throttled keys get as many sends as botocore gives a request: max_attempts retries.
            retry=RetryPolicy(
                max_attempts=self.max_attempts + 1, base_delay=self.retry_base_delay_seconds
            ),
        )

    def as_store(self) -> S3Store:
        """The S3 store (inventory and removal), on :meth:`get_cleanup_client` and the ledger
        at ``ledger_url`` (if set); made once, until :meth:`close`, so that it reads each
        bucket's tags once."""
        if self._store is None:
            store = S3Store(
                self.get_cleanup_client(),
                self.store_settings(),
                self.get_ledger() if self.ledger_url else None,
                record_again=self.record_again,
            )
            with _CLIENT_LOCK:
                if self._store is None:
                    self._store = store
        return self._store

    def list_namespaces(self) -> set[Namespace]:
        """Every namespace this resource's owner recorded here: ledger rows, namespace buckets
        with its tags, and (without a ledger) folders with its marker (paginated listings,
        never every key)."""
        return self.as_store().list_namespaces()

    def claim_unowned_records(self) -> int:
        """Make this resource's owner the owner of its store's live ledger rows that have none
        (written before owners were recorded); returns how many (``dagster-branch claim``)."""
        if not self.ledger_url:
            return 0
        return self.get_ledger().claim_unowned(store=self.store_key)

    def unrecorded_objects(self) -> list[OwnedObject]:
        """Buckets or folders shaped like a namespace's that no record of this owner names:
        what ``dagster-branch orphans`` reports as unrecorded."""
        return self.as_store().unrecorded_objects()

    def objects_of(self, namespace: Namespace) -> list[OwnedObject]:
        """The prefix or bucket ``namespace`` owns here (ledger and discovery, deduplicated)."""
        return self.as_store().objects_of(namespace)

    def last_activity_of(self, namespace: Namespace) -> datetime | None:
        """When a run last wrote ``namespace`` here, for the sensor's ``stale_after``: the
        ledger's last activity, else the marker's ``LastModified``; ``None`` when unknown
        (:meth:`~dagster_branch.stores.s3.S3Store.last_activity_of`).

        Raises:
            DagsterBranchError: the ledger or S3 could not be read.
        """
        return self.as_store().last_activity_of(namespace)

    def ownership_problem(self, obj: OwnedObject) -> str | None:
        """Why ``obj`` must not be removed by a cleanup of ``obj.namespace``, else ``None``."""
        return self.as_store().ownership_problem(obj)

    def survey(self, objects: Sequence[OwnedObject], *, limit: int) -> dict[OwnedObject, Survey]:
        """For the plan: every key, version, delete marker and incomplete upload of each prefix
        or bucket, counted in one listing that stops past ``limit`` and is kept for the purge."""
        return self.as_store().survey(objects, limit=limit)

    def remove_objects(
        self,
        objects: Sequence[OwnedObject],
        *,
        dry_run: bool,
        log: logging.Logger,
        surveys: Mapping[OwnedObject, Survey] | None = None,
    ) -> list[RemovalResult]:
        """Purge (or expire) each prefix or bucket separately; never raises per object. With
        the plan's ``surveys`` it deletes what the plan listed instead of listing again."""
        return self.as_store().remove_objects(objects, dry_run=dry_run, log=log, surveys=surveys)

    def record_again(self, objects: set[OwnedObject], *, log: logging.Logger) -> str | None:
        """Record objects that came back after the cleanup removed them: a new live ledger
        row each, or without a ledger their marker object again.

        Returns:
            ``None`` when done, else why the records could not be written (never raises).
        """
        try:
            for obj in sorted(objects):
                bucket = obj.name if obj.kind is ObjectKind.BUCKET else obj.container or ""
                if self.ledger_url:
                    prefix = "" if obj.kind is ObjectKind.BUCKET else obj.name
                    self._record(obj.namespace, bucket, prefix)
                else:
                    key = self.layout().marker_key(obj.namespace)
                    self._put_marker(obj.namespace, bucket, key)
        except (DagsterBranchError, SQLAlchemyError, ClientError, BotoCoreError) as exc:
            if isinstance(exc, DagsterBranchError):
                reason = str(exc)
            elif isinstance(exc, SQLAlchemyError):
                reason = db_error_text(exc)
            else:
                reason = error_code(exc)
            log.error(f"Objects came back after the cleanup, but were not recorded: {reason}")
            return reason
        return None


def _conflict(
    what: str, other: Owner, owner: Owner, namespace: Namespace
) -> OwnershipConflictError:
    return OwnershipConflictError(
        f"{what} is already recorded by {other.describe()}; {owner.describe()} would write into "
        f"it as {namespace}. Two code locations must not share branch names: give each its own "
        "prefix, branch_root or branch_bucket (strategy='prefix') or bucket (strategy='bucket')."
    )


def _tag_text(value: str, limit: int) -> str:
    """S3 tags allow letters, digits, spaces and ``+ - = . _ : / @``, within a length limit."""
    return _TAG_UNSAFE.sub("_", value)[:limit]
