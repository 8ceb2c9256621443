"""What the test folders share, one module a concern.

- ``servers``: the PostgreSQL, S3 (moto) and Snowflake (fakesnow) servers the fixtures start.
- ``deployments``: the ``deploy`` fixture, switching deployments with Dagster+'s variables.
- ``snapshots``: whole dumps and cheap digests of the warehouse, the ledger and S3.
- ``sql``: plain SQL on a test database, with an engine of its own.
- ``requests_seen``: counting the requests a boto3 client sends.
- ``example``: what the tests know of ``example_project/``.
- ``scheduling``: how ``make test`` spreads the suite over pytest-xdist workers.
"""
