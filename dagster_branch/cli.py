"""The ``dagster-branch`` command line."""

from __future__ import annotations

import json
import sys

import click

from dagster_branch.context import DeploymentContext
from dagster_branch.errors import DagsterBranchError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dagster-branch")
def main() -> None:
    """Route Dagster+ branch deployments to their own schemas and buckets, and clean up after."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def context(as_json: bool) -> None:
    """Show the deployment this environment resolves to, and its namespace."""
    try:
        resolved = DeploymentContext.from_env()
    except DagsterBranchError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = resolved.describe()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        click.echo(f"{key.ljust(width)}  {value if value is not None else '-'}")


@main.command()
def demo() -> None:
    """Play the whole branch lifecycle locally (until the example project lands: the context)."""
    click.echo("dagster-branch: resolved deployment context")
    context.main(args=[], standalone_mode=False)


if __name__ == "__main__":
    sys.exit(main())
