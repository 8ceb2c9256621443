"""``python -m dagster_branch.dbt``: print the dbt package's folder, for ``packages.yml``."""

from dagster_branch.dbt import DBT_PACKAGE_DIR

print(DBT_PACKAGE_DIR)
