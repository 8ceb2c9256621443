"""``dagster-branch claim``: make the ledger rows written before owners were recorded this code
location's, so that its sensor and cleanup treat them as its own records.

Ledger rows of older releases have no owner: they belong to no one, and no cleanup removes what
they describe (``orphans`` lists them as unrecorded). Run this once, with the Definitions of the
one code location that wrote them, in an environment that resolves to its owner (the same
``DAGSTER_CLOUD_LOCATION_NAME``, or the resources' ``owner``).
"""

from __future__ import annotations

from typing import Any

import click

from dagster_branch.cli.errors import EXIT_ERROR, failure, reports_errors
from dagster_branch.cli.target import definitions_options, load_target, open_resources

__all__ = ["claim"]


@click.command()
@definitions_options
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@reports_errors
def claim(module_name: str | None, python_file: str | None, yes: bool) -> None:
    """Stamp this code location as the owner of ledger rows that have no owner."""
    defs = load_target(module_name, python_file)
    with open_resources(defs) as opened:
        claimers: dict[str, Any] = {
            key: store
            for key, store in opened.stores.items()
            if callable(getattr(store, "claim_unowned_records", None))
        }
        owners = {store.resolved_owner().describe() for store in claimers.values()}
        if not claimers:
            click.echo("No store of these Definitions keeps a ledger: nothing to claim.")
            return
        question = (
            f"Make {' and '.join(sorted(owners))} the owner of every live ledger row without "
            f"an owner in {', '.join(claimers)}?"
        )
        if not yes and not click.confirm(question, default=False):
            raise failure("Nothing was claimed.", EXIT_ERROR)
        for key, store in claimers.items():
            count = store.claim_unowned_records()
            click.echo(f"{key}: {count} ledger row(s) claimed.")
