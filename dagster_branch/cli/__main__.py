"""``python -m dagster_branch.cli``: the same as the ``dagster-branch`` command."""

from dagster_branch.cli import main

main()
