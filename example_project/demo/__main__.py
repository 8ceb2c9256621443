"""``python -m example_project.demo`` (what ``make demo`` runs): the whole branch lifecycle on
local stand-ins, from a clone of the repository (see :mod:`example_project.demo`)."""

from __future__ import annotations

import click

from dagster_branch import DagsterBranchError
from example_project.demo import run_demo


@click.command()
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the demo's folder (warehouse file, git remote) and print where it is.",
)
@click.option("--no-s3", is_flag=True, help="Leave the S3 part out even when moto is installed.")
def demo(keep: bool, no_s3: bool) -> None:
    """Play the branch lifecycle locally: no network, no accounts, under a minute.

    Production and two branch deployments materialize the example project into DuckDB (and a
    local S3 server when moto is installed); one branch is merged and deleted on a local git
    remote; the cleanup sensor requests its cleanup and the job removes it.
    """
    try:
        run_demo(keep=keep, use_s3=not no_s3)
    except DagsterBranchError as exc:  # messages say what went wrong: no traceback
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    demo()
