"""The ``dagster-branch`` command line.

Commands: ``context`` (the deployment and namespace this environment resolves to), ``plan``
(what a cleanup would remove), ``cleanup`` (run the cleanup job in process), ``orphans`` (live
namespaces the sensor would clean, or cannot decide on, and unrecorded objects), ``claim``
(adopt ledger rows written before owners were recorded). Exit codes are listed in
:mod:`dagster_branch.cli.errors`. The demo is not a command: it plays the example project, which
only a clone of the repository holds (``make demo``).
"""

from __future__ import annotations

import click

from dagster_branch.cli.claim import claim
from dagster_branch.cli.cleanup import cleanup, plan
from dagster_branch.cli.context import context
from dagster_branch.cli.orphans import orphans

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dagster-branch")
def main() -> None:
    """Route Dagster+ branch deployments to their own schemas and buckets, and clean up after.

    \b
    Exit codes: 0 done, 1 error, 2 usage error, 3 cleanup refused (nothing removed),
    4 cleanup incomplete (run it again).
    """


main.add_command(context)
main.add_command(plan)
main.add_command(cleanup)
main.add_command(orphans)
main.add_command(claim)
