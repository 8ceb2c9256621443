"""Run dagster-branch's S3 purge alone in this process and print its figures as JSON.

Usage: ``python _purge_child.py ENDPOINT_URL BUCKET PREFIX``. The memory benchmark starts it as a
separate process, so its peak resident memory (``VmHWM``) belongs to the purge and nothing else.
It prints ``{"hwm_before_kib": …, "hwm_after_kib": …, "objects": …, "requests": …, "seconds": …,
"ok": …}``:
the peak after the imports and the client, then the peak at the end, and the
purge's own time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import high_water_mark_kib, use_dummy_aws_credentials


def main() -> int:
    endpoint_url, bucket, prefix = sys.argv[1:4]
    use_dummy_aws_credentials()
    import boto3
    from botocore.config import Config

    from dagster_branch.stores.s3_purge import purge_prefix

    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )
    before = high_water_mark_kib()
    report = purge_prefix(client, bucket, prefix)
    after = high_water_mark_kib()
    print(
        json.dumps(
            {
                "hwm_before_kib": before,
                "hwm_after_kib": after,
                "objects": report.objects,
                "requests": report.total_requests,
                "seconds": report.seconds,
                "ok": report.ok,
            }
        )
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
