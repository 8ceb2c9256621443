"""Lifecycle rules: let S3 delete a namespace's objects itself.

For prefixes too large to delete promptly, the cleanup can instead put a lifecycle rule that
expires current and noncurrent versions, removes expired delete markers and aborts incomplete
multipart uploads after one day (:func:`expire_prefix`, :func:`expire_bucket`). Bucket mode can
also put a safety-net rule when it creates a namespace bucket (:func:`safety_net_rules`).

A lifecycle configuration replaces the bucket's whole configuration, so every function here
reads the existing rules, replaces only the rules it owns (by id) and writes the merged list
back; other teams' rules stay. Two writers changing the same bucket's rules at the same moment
can still lose one update: S3 offers no conditional write for lifecycle configurations.

Example::

    rule_id = expire_prefix(client, "acme-data", "_branches/pr_42/")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from dagster_branch.errors import DagsterBranchError
from dagster_branch.naming import short_hash
from dagster_branch.stores.s3_batches import S3Calls, error_code

__all__ = [
    "expire_bucket",
    "expire_prefix",
    "expiry_rule_ids",
    "expiry_rules",
    "merge_lifecycle_rules",
    "remove_lifecycle_rules",
    "safety_net_rules",
]

RULE_PREFIX = "dagster-branch-"
MAX_RULES = 1000  # S3's limit per bucket


def expiry_rules(prefix: str, *, days: int = 1, rule_id: str | None = None) -> list[dict[str, Any]]:
    """Rules that remove everything under ``prefix`` (``""``: the whole bucket) after ``days``.

    Two rules, because S3 does not allow ``ExpiredObjectDeleteMarker`` beside ``Days``: one
    expires current and noncurrent versions and aborts uploads, one removes the delete markers
    the first leaves behind.
    """
    base = rule_id or f"{RULE_PREFIX}expire-{short_hash(prefix)}"
    where = {"Prefix": prefix}
    return [
        {
            "ID": f"{base}-objects",
            "Filter": where,
            "Status": "Enabled",
            "Expiration": {"Days": days},
            "NoncurrentVersionExpiration": {"NoncurrentDays": days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
        },
        {
            "ID": f"{base}-markers",
            "Filter": where,
            "Status": "Enabled",
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
    ]


def expiry_rule_ids(prefix: str) -> set[str]:
    """The ids of the rules :func:`expire_prefix` (or :func:`expire_bucket`, ``""``) puts."""
    return {rule["ID"] for rule in expiry_rules(prefix)}


def safety_net_rules(days: int) -> list[dict[str, Any]]:
    """The optional rules of a namespace bucket: everything in it expires after ``days``."""
    return expiry_rules("", days=days, rule_id=f"{RULE_PREFIX}safety-net")


def _existing_rules(calls: S3Calls, bucket: str) -> list[dict[str, Any]]:
    try:
        rules = calls.call("get_bucket_lifecycle_configuration", Bucket=bucket).get("Rules", [])
    except ClientError as exc:
        if error_code(exc) != "NoSuchLifecycleConfiguration":
            raise
        return []
    return list(rules)


def merge_lifecycle_rules(client: Any, bucket: str, rules: Sequence[dict[str, Any]]) -> None:
    """Put ``rules`` on ``bucket``, replacing rules with the same ids and keeping all others."""
    calls = S3Calls(client)
    ours = {rule["ID"] for rule in rules}
    merged = [r for r in _existing_rules(calls, bucket) if r.get("ID") not in ours] + list(rules)
    if len(merged) > MAX_RULES:
        raise DagsterBranchError(
            f"Bucket {bucket!r} would have {len(merged)} lifecycle rules, over S3's limit of "
            f"{MAX_RULES}: remove old rules, or use cleanup_strategy='delete'."
        )
    calls.call(
        "put_bucket_lifecycle_configuration",
        Bucket=bucket,
        LifecycleConfiguration={"Rules": merged},
    )


def remove_lifecycle_rules(client: Any, bucket: str, rule_ids: set[str]) -> bool:
    """Take the rules ``rule_ids`` off ``bucket`` (once the data they expire is gone), keeping
    all others; ``True`` if something changed. A missing bucket changes nothing."""
    calls = S3Calls(client)
    try:
        existing = _existing_rules(calls, bucket)
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            return False
        raise
    kept = [rule for rule in existing if rule.get("ID") not in rule_ids]
    if len(kept) == len(existing):
        return False
    if kept:
        calls.call(
            "put_bucket_lifecycle_configuration",
            Bucket=bucket,
            LifecycleConfiguration={"Rules": kept},
        )
    else:
        calls.call("delete_bucket_lifecycle", Bucket=bucket)
    return True


def expire_prefix(client: Any, bucket: str, prefix: str, *, days: int = 1) -> str:
    """Let S3 delete everything under ``prefix`` (a folder ending in ``/``); returns the rule id."""
    if not prefix.endswith("/"):
        raise DagsterBranchError(
            f"Refusing an expiry rule on prefix {prefix!r} of {bucket!r}: it must end with '/'."
        )
    rules = expiry_rules(prefix, days=days)
    merge_lifecycle_rules(client, bucket, rules)
    return str(rules[0]["ID"]).removesuffix("-objects")


def expire_bucket(client: Any, bucket: str, *, days: int = 1) -> str:
    """Let S3 delete everything in ``bucket``; the next cleanup run deletes the empty bucket."""
    rules = expiry_rules("", days=days)
    merge_lifecycle_rules(client, bucket, rules)
    return str(rules[0]["ID"]).removesuffix("-objects")
