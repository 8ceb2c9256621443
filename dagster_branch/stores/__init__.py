"""The store adapters: inventory and removal of what branches wrote, one adapter per backend.

Each adapter implements :class:`~dagster_branch.inventory.BranchStore`, built from an engine or a
boto3 client, the settings it needs and the ledger; it never imports the resources, which hand
it out (``as_store()``). :mod:`~dagster_branch.stores.warehouse` serves SQL warehouses,
:mod:`~dagster_branch.stores.s3` S3; :mod:`~dagster_branch.stores.s3_purge` empties a prefix or a
bucket with any boto3 client, on its own.
"""
