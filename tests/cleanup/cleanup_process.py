"""Run the cleanup job in a process of its own, so that a test can kill it midway.

Usage: ``python -m tests.cleanup.cleanup_process '<json>'`` with ``warehouse_url``,
``s3_endpoint``, ``lake_endpoint`` (the lake store's endpoint, e.g. a slowing proxy),
``github_api_url`` and ``namespace``. Exits 0 when the run succeeds.
"""

from __future__ import annotations

import json
import sys

from dagster_branch.sources.github import GitHubPullRequests
from tests.cleanup.helpers import CLEANUP_JOB, cleanup_config
from tests.cleanup.world import PRODUCTION, World, deployment


def main(arguments: str) -> int:
    spec = json.loads(arguments)
    world = World(warehouse_url=spec["warehouse_url"], s3_endpoint=spec["s3_endpoint"])
    source = GitHubPullRequests(
        repository="acme/data", token=spec["github_token"], api_url=spec["github_api_url"]
    )
    # One DeleteObjects request at a time, so that "midway" is between two batches.
    lake = world.lake(endpoint=spec["lake_endpoint"], cleanup_workers=1)
    with deployment(PRODUCTION):
        result = CLEANUP_JOB.execute_in_process(
            run_config=cleanup_config(spec["namespace"]),
            resources={**world.stores(lake=lake), "pull_requests": source},
            raise_on_error=False,
        )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
