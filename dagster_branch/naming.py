"""Namespaces and the per-backend names built from them: pure functions, no I/O.

A :class:`Namespace` is the key that names everything one deployment owns: ``pr_42`` for a pull
request, ``br_<slug>_<hash>`` for a branch without a PR, ``dev_<user>_<hash>`` for local
development. Keys contain only ``[a-z0-9_]`` and never two underscores in a row, so ``__`` can
separate a base name from a key and the split is unambiguous.

Wherever a name is slugged or shortened, a hash of the full original keeps it apart from every
other: :data:`HASH_LENGTH` hex digits of SHA-256, 64 bits, so that a birthday search over
ordinary branch names needs about 2**32 names for one collision (32 bits took 2.7 s).

Every ``*_name`` function has a ``namespace_of_*`` inverse. The inverse does not trust the shape of
a name alone: it rebuilds the name from the namespace it found and accepts it only when the result
is identical. That is the "name parses back to the namespace" key of the safety invariant.

Example::

    >>> ns = Namespace.for_pull_request("42")
    >>> schema_name("analytics", ns)
    'analytics__pr_42'
    >>> namespace_of_schema("analytics__pr_42", "analytics") == ns
    True
    >>> namespace_of_schema("analytics", "analytics") is None
    True
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

from dagster_branch.errors import DagsterBranchNamingError

__all__ = [
    "BUCKET_MAX_LENGTH",
    "S3_KEY_MAX_BYTES",
    "Namespace",
    "NamespaceKind",
    "bucket_name",
    "clean_folder",
    "key_prefix",
    "namespace_of_bucket",
    "namespace_of_key",
    "namespace_of_schema",
    "namespace_of_table",
    "schema_name",
    "short_hash",
    "table_name",
    "table_prefix",
]

SEPARATOR = "__"
BUCKET_SEPARATOR = "--"
SLUG_MAX_LENGTH = 16  # with a 64-bit hash, keys stay within 37 characters
PR_ID_MAX_DIGITS = 12
BUCKET_MIN_LENGTH = 3
BUCKET_MAX_LENGTH = 63
S3_KEY_MAX_BYTES = 1024
HASH_LENGTH = 16  # hex digits: 64 bits

# AWS reserves these for its own features (access points, Outposts, directory buckets, ...).
RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")

_PR_NUMBER = rf"[1-9][0-9]{{0,{PR_ID_MAX_DIGITS - 1}}}"
_PR_KEY = re.compile(rf"pr_({_PR_NUMBER})")
_SLUG = r"[a-z0-9]+(?:_[a-z0-9]+)*"
_BRANCH_KEY = re.compile(rf"br_({_SLUG})_[0-9a-f]{{{HASH_LENGTH}}}")
_DEV_KEY = re.compile(rf"dev_({_SLUG})_[0-9a-f]{{{HASH_LENGTH}}}")
_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
KEY_SHAPES = f"'pr_<number>', 'br_<slug>_<{HASH_LENGTH} hex>' or 'dev_<user>_<{HASH_LENGTH} hex>'"
"""The namespace key shapes, as error messages name them."""


def short_hash(text: str, length: int = HASH_LENGTH) -> str:
    """A stable hex digest prefix of ``text`` (SHA-256), used to keep shortened names unique."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def slugify(text: str, *, max_length: int = SLUG_MAX_LENGTH) -> str:
    """Lower-case ASCII slug of ``text``: runs of anything else become one ``_``.

    Accents are folded (``é`` gives ``e``); characters with no ASCII form are dropped. The result
    may be empty; callers decide what an empty slug means.
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")
    return slug[:max_length].rstrip("_")


class NamespaceKind(str, Enum):
    """What a namespace was made from."""

    PULL_REQUEST = "pr"
    BRANCH = "br"
    DEVELOPER = "dev"


@dataclass(frozen=True, order=True)
class Namespace:
    """The key that names everything one branch deployment (or developer) owns.

    Build one with :meth:`for_pull_request`, :meth:`for_branch` or :meth:`for_developer`, or
    read one back with :meth:`parse`. Production has no namespace.

    Example::

        >>> Namespace.for_pull_request("42").key
        'pr_42'
        >>> Namespace.for_branch("feature/Add orders!").key
        'br_feature_add_orde_87c9ffee7eb18433'
        >>> Namespace.for_developer("alice").key
        'dev_alice_2bd806c97f0e00af'
        >>> Namespace.parse("pr_42") == Namespace.for_pull_request(42)
        True
    """

    key: str

    def __post_init__(self) -> None:
        if not _matches_any_key(self.key):
            raise DagsterBranchNamingError(
                f"{self.key!r} is not a dagster-branch namespace: expected {KEY_SHAPES} (slugs "
                f"of at most {SLUG_MAX_LENGTH} lower-case letters, digits and single underscores)."
            )

    @classmethod
    def for_pull_request(cls, pull_request_id: str | int) -> Namespace:
        """The namespace of a pull request (or GitLab merge request) number."""
        text = str(pull_request_id).strip()
        if not re.fullmatch(_PR_NUMBER, text, flags=re.ASCII):
            raise DagsterBranchNamingError(
                f"Pull request id {str(pull_request_id)[:40]!r} is not valid: expected a "
                f"positive whole number of at most {PR_ID_MAX_DIGITS} digits, such as '42'."
            )
        return cls(f"pr_{text}")

    @classmethod
    def for_branch(cls, branch: str) -> Namespace:
        """The namespace of a branch deployment that has no pull request.

        The slug keeps names readable; the hash of the full branch name keeps two branches
        with the same slug (``feat/a-b`` and ``feat/a_b``) apart.
        """
        if not branch or not branch.strip():
            raise DagsterBranchNamingError(
                "The branch name is empty: "
                "set DAGSTER_CLOUD_GIT_BRANCH or DAGSTER_BRANCH_NAMESPACE."
            )
        slug = slugify(branch) or "branch"
        return cls(f"br_{slug}_{short_hash(branch)}")

    @classmethod
    def for_developer(cls, user: str) -> Namespace:
        """The namespace of local development by ``user``.

        The slug keeps names readable; the hash of the raw user name is always there, so two
        users whose names slugify alike (``Alice!`` and ``alice``), or a user literally called
        like another's namespace (``alice_<hash>``), never share a namespace.
        """
        if not user:
            raise DagsterBranchNamingError(
                "The user name is empty: set DAGSTER_BRANCH_USER or DAGSTER_BRANCH_NAMESPACE."
            )
        return cls(f"dev_{slugify(user) or 'user'}_{short_hash(user)}")

    @classmethod
    def parse(cls, key: str) -> Namespace:
        """Read a key such as ``pr_42`` back into a namespace; raises when it is not one."""
        return cls(key)

    @classmethod
    def try_parse(cls, key: str) -> Namespace | None:
        """Like :meth:`parse`, but returns ``None`` for anything that is not a namespace key."""
        return cls(key) if _matches_any_key(key) else None

    @property
    def kind(self) -> NamespaceKind:
        """Whether this namespace was made from a PR, a branch or a developer."""
        return NamespaceKind(self.key.split("_", 1)[0])

    @property
    def pull_request_id(self) -> str | None:
        """The PR number for ``pr_`` namespaces, else ``None``."""
        return self.key[3:] if self.kind is NamespaceKind.PULL_REQUEST else None

    def __str__(self) -> str:
        return self.key


def _matches_any_key(key: object) -> bool:
    """Whether ``key`` has exactly a shape the ``for_*`` builders produce (slug length included)."""
    if not isinstance(key, str):
        return False
    if _PR_KEY.fullmatch(key):
        return True
    match = _BRANCH_KEY.fullmatch(key) or _DEV_KEY.fullmatch(key)
    return match is not None and len(match.group(1)) <= SLUG_MAX_LENGTH


# -- warehouse names ----------------------------------------------------------------------------


def _fit(base: str, suffix: str, max_bytes: int) -> str:
    """``base + suffix``, shortening ``base`` with a stable hash when the whole is too long."""
    whole = base + suffix
    if len(whole.encode()) <= max_bytes:
        return whole
    marker = "_" + short_hash(base)
    budget = max_bytes - len((marker + suffix).encode())
    if budget < 1:
        raise DagsterBranchNamingError(
            f"Cannot fit a name for base {base[:40]!r} and suffix {suffix!r} into {max_bytes} "
            "bytes: raise max_length or use a shorter base name."
        )
    head = base.encode()[:budget].decode("utf-8", "ignore").rstrip("_")
    return head + marker + suffix


def schema_name(base: str, namespace: Namespace, *, max_length: int = 63) -> str:
    """The schema (or dataset) a namespace writes to: ``analytics`` + ``pr_42`` is
    ``analytics__pr_42``. ``max_length`` is in bytes (PostgreSQL 63, Redshift 127,
    Snowflake 255, BigQuery 1024)."""
    if not base:
        raise DagsterBranchNamingError("The base schema name is empty: set base_schema.")
    return _fit(base, SEPARATOR + namespace.key, max_length)


def namespace_of_schema(name: str, base: str, *, max_length: int = 63) -> Namespace | None:
    """The namespace a schema belongs to, or ``None`` (production, or someone else's schema)."""
    head, sep, key = name.rpartition(SEPARATOR)
    if not sep or not head:
        return None
    namespace = Namespace.try_parse(key)
    if namespace is None or not base:
        return None
    return namespace if schema_name(base, namespace, max_length=max_length) == name else None


def table_prefix(namespace: Namespace) -> str:
    """The prefix of a namespace's tables under the ``table_prefix`` strategy: ``pr_42__``."""
    return namespace.key + SEPARATOR


def table_name(name: str, namespace: Namespace, *, max_length: int = 63) -> str:
    """The physical table for ``name`` under the ``table_prefix`` strategy: ``pr_42__orders``."""
    if not name:
        raise DagsterBranchNamingError("The table name is empty.")
    prefix = table_prefix(namespace)
    if len((prefix + name).encode()) <= max_length:
        return prefix + name
    return prefix + _fit(name, "", max_length - len(prefix.encode()))


def namespace_of_table(name: str) -> Namespace | None:
    """The namespace of a ``table_prefix`` table name, or ``None``."""
    key, sep, rest = name.partition(SEPARATOR)
    if not sep or not rest:
        return None
    return Namespace.try_parse(key)


# -- S3 names -----------------------------------------------------------------------------------


def _bucket_problem(name: str) -> str | None:
    """Why ``name`` is not a valid general-purpose S3 bucket name, or ``None``."""
    if not BUCKET_MIN_LENGTH <= len(name) <= BUCKET_MAX_LENGTH:
        return f"it must be {BUCKET_MIN_LENGTH} to {BUCKET_MAX_LENGTH} characters long"
    if not _BUCKET_CHARS.fullmatch(name):
        return (
            "it may hold only a-z, 0-9, '.' and '-', and must start and end with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        return "it may not contain '..', '.-' or '-.'"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return "it may not look like an IP address"
    if name.startswith(RESERVED_BUCKET_PREFIXES):
        return f"it may not start with {', '.join(RESERVED_BUCKET_PREFIXES)}"
    if name.endswith(RESERVED_BUCKET_SUFFIXES):
        return f"it may not end with {', '.join(RESERVED_BUCKET_SUFFIXES)}"
    return None


def validate_bucket_name(name: str) -> str:
    """Return ``name`` if it is a valid S3 bucket name, else raise saying why."""
    problem = _bucket_problem(name)
    if problem:
        raise DagsterBranchNamingError(f"{name[:70]!r} is not a valid S3 bucket name: {problem}.")
    return name


def bucket_name(base: str, namespace: Namespace) -> str:
    """The bucket of a namespace under the ``bucket`` strategy: ``acme-data--pr-42``.

    ``base`` is shortened with a hash when the whole would pass 63 characters. The result
    always obeys the S3 naming rules, reserved prefixes and suffixes included.
    """
    base_slug = re.sub(r"[^a-z0-9.-]+", "-", base.lower()).strip(".-")
    base_slug = re.sub(r"\.{2,}", ".", base_slug)
    if not base_slug:
        raise DagsterBranchNamingError(
            f"Base bucket name {base[:40]!r} has no usable characters: use a-z, 0-9, '.' or '-'."
        )
    suffix = BUCKET_SEPARATOR + namespace.key.replace("_", "-")
    name = base_slug + suffix
    if len(name) > BUCKET_MAX_LENGTH or base_slug != base:
        budget = BUCKET_MAX_LENGTH - len(suffix) - HASH_LENGTH - 1
        head = base_slug[: max(budget, 1)].rstrip(".-") or "b"
        name = f"{head}-{short_hash(base)}{suffix}"
    return validate_bucket_name(name)


def namespace_of_bucket(name: str, base: str) -> Namespace | None:
    """The namespace that owns bucket ``name`` (built from ``base``), or ``None``."""
    _, sep, tail = name.rpartition(BUCKET_SEPARATOR)
    if not sep:
        return None
    namespace = Namespace.try_parse(tail.replace("-", "_"))
    if namespace is None:
        return None
    try:
        return namespace if bucket_name(base, namespace) == name else None
    except DagsterBranchNamingError:
        return None


def clean_folder(prefix: str) -> str:
    """``/a//b/`` gives ``a/b``: a folder path without empty segments or outer slashes.

    >>> clean_folder("/a//b/")
    'a/b'
    """
    return "/".join(part for part in prefix.split("/") if part)


def key_prefix(prefix: str, namespace: Namespace, *, root: str = "_branches") -> str:
    """Where a namespace's keys live inside a shared bucket: ``_branches/pr_42/<prefix>/``.

    The result always ends with ``/`` so that ``pr_4`` can never match the keys of ``pr_42``.
    """
    root_clean = clean_folder(root)
    if not root_clean or root_clean in {".", ".."} or ".." in root_clean.split("/"):
        raise DagsterBranchNamingError(
            f"branch_root {root!r} is not usable: give a folder name such as '_branches'."
        )
    parts = [root_clean, namespace.key, clean_folder(prefix)]
    return "/".join(p for p in parts if p) + "/"


def namespace_prefix(namespace: Namespace, *, root: str = "_branches") -> str:
    """Everything a namespace owns in a shared bucket lives under this prefix."""
    return key_prefix("", namespace, root=root)


def namespace_of_key(key: str, *, root: str = "_branches") -> Namespace | None:
    """The namespace of an S3 key (or prefix) under ``root``, or ``None``."""
    root_clean = clean_folder(root)
    if not key.startswith(root_clean + "/"):
        return None
    segment = key[len(root_clean) + 1 :].split("/", 1)[0]
    return Namespace.try_parse(segment)
