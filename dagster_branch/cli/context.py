"""``dagster-branch context``: the deployment this environment resolves to, and its namespace."""

from __future__ import annotations

import click

from dagster_branch.cli.errors import reports_errors
from dagster_branch.cli.output import echo_json
from dagster_branch.context import DeploymentContext


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@reports_errors
def context(as_json: bool) -> None:
    """Show the deployment this environment resolves to, and its namespace."""
    summary = DeploymentContext.from_env().describe()
    if as_json:
        echo_json(summary)
        return
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        click.echo(f"{key.ljust(width)}  {value if value is not None else '-'}")
