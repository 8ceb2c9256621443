"""The cleanup job as a code location would load it, for runs under the multiprocess executor.

Each step runs in a process of its own that rebuilds the job from this module, so the platform
to clean is read from the ``CLEANUP_TEST_WORLD`` environment variable (JSON).
"""

from __future__ import annotations

import json
import os

import dagster as dg

from dagster_branch.sources.github import GitHubPullRequests
from tests.cleanup.helpers import CLEANUP_JOB
from tests.cleanup.world import World

WORLD_VARIABLE = "CLEANUP_TEST_WORLD"


def cleanup_job() -> dg.JobDefinition:
    """The production Definitions' cleanup job, resources bound (a reconstructable target)."""
    spec = json.loads(os.environ[WORLD_VARIABLE])
    world = World(warehouse_url=spec["warehouse_url"], s3_endpoint=spec["s3_endpoint"])
    source = GitHubPullRequests(
        repository="acme/data", token=spec["github_token"], api_url=spec["github_api_url"]
    )
    defs = dg.Definitions(jobs=[CLEANUP_JOB], resources={**world.stores(), "pull_requests": source})
    return defs.get_job_def(CLEANUP_JOB.name)
