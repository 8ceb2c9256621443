"""``dagster-branch demo``: the whole branch lifecycle on local stand-ins (see
:mod:`dagster_branch.demo`)."""

from __future__ import annotations

import click

from dagster_branch.cli.errors import reports_errors

__all__ = ["demo"]


@click.command()
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the demo's folder (warehouse file, git remote) and print where it is.",
)
@click.option("--no-s3", is_flag=True, help="Leave the S3 part out even when moto is installed.")
@reports_errors
def demo(keep: bool, no_s3: bool) -> None:
    """Play the branch lifecycle locally: no network, no accounts, under a minute.

    Production and two branch deployments materialize the example project into DuckDB (and a
    local S3 server when moto is installed); one branch is merged and deleted on a local git
    remote; the cleanup sensor requests its cleanup and the job removes it.
    """
    from dagster_branch.demo import run_demo  # imported late: it loads the example project

    run_demo(keep=keep, use_s3=not no_s3)
