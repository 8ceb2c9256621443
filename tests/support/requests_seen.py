"""Counting the requests a boto3 client sends, with botocore's own event hooks."""

from __future__ import annotations

from collections import Counter
from typing import Any


def count_requests(client: Any) -> Counter[str]:
    """Requests ``client`` sends from now on, by operation (``ListObjectsV2``, …), as a counter
    that fills while the client works."""
    seen: Counter[str] = Counter()

    def before_send(event_name: str, **_: Any) -> None:
        seen[event_name.rsplit(".", 1)[-1]] += 1

    client.meta.events.register("before-send.s3", before_send)
    return seen
