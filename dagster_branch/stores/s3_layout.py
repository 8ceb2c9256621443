"""Where each deployment's S3 objects live: pure rules, no I/O.

:class:`S3Layout` holds the routing part of a :class:`~dagster_branch.BranchS3Resource`'s
configuration and answers three questions for any deployment: which bucket and key a path maps to,
what a namespace owns (a key prefix in a shared bucket, or a whole bucket), and whether a write to
a given bucket and key stays inside the deployment's own corner. Keeping it free of I/O lets the
property tests check the layout for arbitrary prefixes, branch names and configurations.

Layouts (production writes to ``s3://<bucket>/<prefix>/…`` in every case)::

    strategy="prefix":  s3://<branch_bucket or bucket>/<branch_root>/<namespace>/<prefix>/…
    strategy="bucket":  s3://<naming.bucket_name(bucket, namespace)>/<prefix>/…

Example::

    >>> from dagster_branch.naming import Namespace
    >>> layout = S3Layout(bucket="acme-data", prefix="lake")
    >>> layout.validate()
    >>> layout.key_for(Namespace.parse("pr_42"), "orders/2024.parquet")
    '_branches/pr_42/lake/orders/2024.parquet'
    >>> layout.key_for(None, "orders/2024.parquet")
    'lake/orders/2024.parquet'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dagster_branch.errors import (
    DagsterBranchConfigError,
    DagsterBranchNamingError,
    NamespaceViolationError,
)
from dagster_branch.naming import (
    S3_KEY_MAX_BYTES,
    Namespace,
    bucket_name,
    clean_folder,
    namespace_of_bucket,
    namespace_prefix,
)
from dagster_branch.run_tags import TAG_NAMESPACE, TAG_PULL_REQUEST

__all__ = [
    "BACKEND",
    "MARKER_NAME",
    "TAG_NAMESPACE",
    "TAG_OWNER",
    "TAG_PULL_REQUEST",
    "TAG_REPOSITORY",
    "S3Layout",
    "clean_folder",
    "split_path",
]

BACKEND = "s3"  # the backend column of S3 ledger rows and inventory objects
MARKER_NAME = ".dagster-branch.json"
# Tags put on namespace buckets (strategy="bucket"), beside the run tags TAG_NAMESPACE (read back
# by the inventory) and TAG_PULL_REQUEST.
TAG_OWNER = "dagster-branch/owner"  # the code location (or explicit owner) that created it
TAG_REPOSITORY = "dagster-branch/repository"

# Operations that read, or that only authenticate, never need the write guard.
_NOT_WRITES = frozenset({"CreateSession", "WriteGetObjectResponse"})
_WRITE_VERBS = (
    "Abort",
    "Complete",
    "Copy",
    "Create",
    "Delete",
    "Put",
    "Rename",
    "Restore",
    "Update",
    "Upload",
    "Write",
)


def split_path(path: str, *, what: str = "path") -> list[str]:
    """The segments of a relative object path; refuses ``.`` and ``..`` segments.

    S3 itself does not resolve ``..``, but some clients and consoles do, and a key that reads as
    ``lake/../_branches/…`` is a trap for every person who later looks at it.
    """
    parts = [part for part in path.split("/") if part]
    if any(part in {".", ".."} for part in parts):
        raise NamespaceViolationError(
            f"{what} {path[:200]!r} has a '.' or '..' segment: give a plain relative path such "
            "as 'orders/2024.parquet'."
        )
    return parts


@dataclass(frozen=True)
class S3Layout:
    """The routing rules of one S3 store (see the module docstring for the layouts).

    Args:
        bucket: the production bucket.
        prefix: the production folder inside ``bucket`` (may be empty when branches live in
            another bucket).
        strategy: ``"prefix"`` (branches under ``branch_root`` in a shared bucket) or
            ``"bucket"`` (one bucket per namespace, named from ``bucket``).
        branch_root: the folder holding every namespace under the prefix strategy.
        branch_bucket: the bucket holding every branch under the prefix strategy, when it is
            not the production bucket.
    """

    bucket: str
    prefix: str = ""
    strategy: Literal["prefix", "bucket"] = "prefix"
    branch_root: str = "_branches"
    branch_bucket: str | None = None

    # -- validation -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Refuse any configuration in which branch keys could share a prefix with production.

        Raises:
            DagsterBranchConfigError: the message names the field to change.
        """
        if not self.bucket.strip():
            raise DagsterBranchConfigError("bucket is empty: set it to the production bucket.")
        if self.branch_bucket is not None and not self.branch_bucket.strip():
            raise DagsterBranchConfigError(
                "branch_bucket is empty: leave it unset or name the bucket for branches."
            )
        self._check_folder(self.prefix, "prefix")
        if self.strategy == "bucket":
            self._validate_bucket_strategy()
        else:
            self._validate_prefix_strategy()

    @staticmethod
    def _check_folder(value: str, field: str) -> None:
        try:
            split_path(value, what=field)
        except NamespaceViolationError as exc:
            raise DagsterBranchConfigError(str(exc)) from None

    def _validate_bucket_strategy(self) -> None:
        if self.branch_bucket is not None:
            raise DagsterBranchConfigError(
                "branch_bucket is set with strategy='bucket', where every namespace gets its own "
                "bucket: unset branch_bucket, or use strategy='prefix' to put all branches in it."
            )
        probe = Namespace.parse("pr_1")
        try:
            branch = bucket_name(self.bucket, probe)
        except DagsterBranchNamingError as exc:
            raise DagsterBranchConfigError(f"bucket: {exc}") from None
        if branch == self.bucket or namespace_of_bucket(self.bucket, self.bucket) is not None:
            raise DagsterBranchConfigError(  # pragma: no cover (naming makes this impossible)
                f"bucket {self.bucket!r} would be its own branch bucket: choose another name."
            )

    def _validate_prefix_strategy(self) -> None:
        self._check_folder(self.branch_root, "branch_root")
        root = clean_folder(self.branch_root)
        try:
            namespace_prefix(Namespace.parse("pr_1"), root=root)
        except DagsterBranchNamingError as exc:
            raise DagsterBranchConfigError(str(exc)) from None
        if self.branch_data_bucket != self.bucket:
            return  # different buckets: no key of one can be a key of the other
        prefix = clean_folder(self.prefix)
        if not prefix:
            raise DagsterBranchConfigError(
                f"prefix is empty while branches share bucket {self.bucket!r}: production keys "
                f"could then start with {root + '/'!r}. Set prefix (e.g. 'lake'), or set "
                "branch_bucket to a separate bucket for branches (recommended)."
            )
        if _is_within(prefix, root) or _is_within(root, prefix):
            raise DagsterBranchConfigError(
                f"prefix {prefix!r} and branch_root {root!r} overlap in bucket "
                f"{self.bucket!r}: branch keys would live among production keys. Use a "
                "branch_root beside the production prefix (e.g. '_branches' with prefix 'lake'), "
                "or set branch_bucket to a separate bucket."
            )

    # -- routing --------------------------------------------------------------------------------

    @property
    def branch_data_bucket(self) -> str:
        """The bucket that holds every namespace under the prefix strategy."""
        return self.branch_bucket or self.bucket

    @property
    def production_folder(self) -> str:
        """Production's key prefix (``lake/``), or ``""`` when production owns its whole bucket."""
        prefix = clean_folder(self.prefix)
        return prefix + "/" if prefix else ""

    def bucket_for(self, namespace: Namespace | None) -> str:
        """The bucket a deployment writes to."""
        if namespace is None:
            return self.bucket
        if self.strategy == "bucket":
            return bucket_name(self.bucket, namespace)
        return self.branch_data_bucket

    def namespace_root(self, namespace: Namespace) -> tuple[str, str]:
        """``(bucket, key prefix)`` of everything ``namespace`` owns; the prefix is ``""`` when
        the namespace owns its whole bucket."""
        if self.strategy == "bucket":
            return bucket_name(self.bucket, namespace), ""
        return self.branch_data_bucket, namespace_prefix(namespace, root=self.branch_root)

    def folder_for(self, namespace: Namespace | None) -> str:
        """The key prefix a deployment writes under (ends with ``/``, or is ``""``)."""
        if namespace is None:
            return self.production_folder
        _, root = self.namespace_root(namespace)
        return root + self.production_folder

    def key_for(self, namespace: Namespace | None, path: str) -> str:
        """The key of relative ``path`` for a deployment (``None``: production).

        A trailing ``/`` is kept, so ``key_for(ns, "exports/")`` is a folder to list under.
        """
        parts = split_path(path)
        if not parts:
            raise NamespaceViolationError(
                "The object path is empty: give a relative path such as 'orders/2024.parquet'."
            )
        key = self.folder_for(namespace) + "/".join(parts) + ("/" if path.endswith("/") else "")
        if len(key.encode()) > S3_KEY_MAX_BYTES:
            raise DagsterBranchNamingError(
                f"The key for {path[:80]!r} would be {len(key.encode())} bytes, over S3's limit "
                f"of {S3_KEY_MAX_BYTES}: shorten the path or the prefix."
            )
        return key

    def marker_key(self, namespace: Namespace) -> str:
        """The ownership marker object of a namespace (used when no ledger is configured)."""
        return self.namespace_root(namespace)[1] + MARKER_NAME

    # -- ownership ------------------------------------------------------------------------------

    def write_problem(
        self, namespace: Namespace | None, bucket: str, key: str | None
    ) -> str | None:
        """Why a deployment may not write ``bucket``/``key`` (``key=None``: a bucket-level
        change such as a policy), or ``None`` when the write stays inside its own corner."""
        where = f"s3://{bucket}/{key}" if key is not None else f"bucket {bucket!r}"
        if namespace is None:
            if bucket != self.bucket:
                return f"{where} is outside the production bucket {self.bucket!r}"
            folder = self.production_folder
            if key is not None and not key.startswith(folder):
                return f"{where} is outside the production prefix {folder!r}"
            if key is None and folder:
                return f"{where} is shared: production owns only the prefix {folder!r} in it"
            return None
        own_bucket, own_prefix = self.namespace_root(namespace)
        if bucket != own_bucket:
            return f"{where} is outside the bucket of namespace {namespace} ({own_bucket!r})"
        if key is None and own_prefix:
            return f"{where} is shared: namespace {namespace} owns only {own_prefix!r} in it"
        if key is not None and not key.startswith(own_prefix):
            return f"{where} is outside the prefix of namespace {namespace} ({own_prefix!r})"
        return None


def _is_within(inner: str, outer: str) -> bool:
    """True when folder ``inner`` is ``outer`` or below it (folders compared segment-wise)."""
    return inner == outer or inner.startswith(outer + "/")


def write_targets(operation: str, params: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
    """The ``(bucket, key)`` pairs an S3 API call would change; nothing for reads.

    ``key`` is ``None`` for bucket-level changes (policies, tags, lifecycle, the bucket itself).
    """
    if operation in _NOT_WRITES or not operation.startswith(_WRITE_VERBS):
        return []
    bucket = params.get("Bucket")
    if not isinstance(bucket, str):
        return []
    if operation == "DeleteObjects":
        objects = params.get("Delete", {}).get("Objects", [])
        return [(bucket, str(obj.get("Key", ""))) for obj in objects]
    key = params.get("Key")
    return [(bucket, key if isinstance(key, str) else None)]


def common_bucket_prefix(base: str) -> str:
    """A prefix shared by every namespace bucket made from ``base`` (to filter ListBuckets)."""
    shortest = bucket_name(base, Namespace.parse("pr_1"))
    longest = bucket_name(base, Namespace.for_branch("x" * 64))
    common = 0
    while common < min(len(shortest), len(longest)) and shortest[common] == longest[common]:
        common += 1
    return shortest[:common]
