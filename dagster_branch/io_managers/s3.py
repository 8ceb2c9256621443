"""dagster-aws's S3 pickle IO manager, routed per deployment through ``BranchS3Resource``.

Assets keep their code: outputs are pickled to ``resource.key(<asset path>)``, so production
writes ``s3://acme-data/lake/orders`` and the branch of PR 42 writes
``s3://acme-data/_branches/pr_42/lake/orders``. An input the branch has not built is read from
production's object instead (read from production, write to the branch), when the branch's
credentials may read it.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from botocore.exceptions import ClientError
from dagster import (
    ConfigurableIOManager,
    InputContext,
    MetadataValue,
    OutputContext,
    UPathIOManager,
)
from dagster_aws.s3.io_manager import PickledObjectS3IOManager
from pydantic import Field
from upath import UPath

from dagster_branch.resources.s3 import BranchS3Resource
from dagster_branch.stores.s3_batches import error_code

__all__ = ["BranchS3PickleIOManager"]

_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden"})
PICKLE_PROTOCOL = 4  # the protocol Dagster's own pickling IO managers use


class BranchS3PickleIOManager(ConfigurableIOManager):
    """Pickles asset and op outputs to S3 where this deployment writes; no routing code in assets.

    A drop-in for dagster-aws's ``S3PickleIOManager``: the bucket and prefix come from the
    :class:`~dagster_branch.BranchS3Resource` (production's ``S3PickleIOManager(s3_bucket="acme-
    data", s3_prefix="dagster")`` becomes ``BranchS3Resource(bucket="acme-data",
    prefix="dagster")``, and production's existing objects keep their keys).

    Example::

        from dagster import Definitions, asset

        @asset
        def orders() -> list[int]:
            return [1, 2, 3]

        @asset
        def order_count(orders: list[int]) -> int:
            return len(orders)

        lake = BranchS3Resource(bucket="acme-data", prefix="dagster", branch_bucket="acme-branches")
        defs = Definitions(
            assets=[orders, order_count],
            resources={"io_manager": BranchS3PickleIOManager(s3_resource=lake)},
        )
    """

    s3_resource: BranchS3Resource = Field(
        description="The branch-aware S3 resource that decides the bucket and keys."
    )
    path_prefix: str = Field(
        default="",
        description="A folder under the resource's prefix for this IO manager's objects.",
    )
    read_production_fallback: bool = Field(
        default=True,
        description="In a branch or locally, load an input the deployment has not built from "
        "production's object (read from production, write to the branch).",
    )

    def _inner(self) -> _BranchPickledObjectS3IOManager:
        return _BranchPickledObjectS3IOManager(
            self.s3_resource,
            path_prefix=self.path_prefix,
            read_production_fallback=self.read_production_fallback,
        )

    def load_input(self, context: InputContext) -> Any:
        """Load the input from this deployment's object, else (in a branch) from production's."""
        return self._inner().load_input(context)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Pickle ``obj`` to this deployment's key (the namespace is ensured first)."""
        self._inner().handle_output(context, obj)


class _BranchPickledObjectS3IOManager(PickledObjectS3IOManager):
    """dagster-aws's pickle IO manager with every key mapped through the resource.

    Paths handed around by ``UPathIOManager`` stay relative (``dagster/orders``); only the
    methods that touch S3 turn them into this deployment's (or production's) bucket and key.
    """

    def __init__(
        self, resource: BranchS3Resource, *, path_prefix: str, read_production_fallback: bool
    ) -> None:
        # dagster-aws's __init__ lists the bucket, which may not exist yet in bucket mode: the
        # namespace is created on the first write instead, by the resource's client.
        self.resource = resource
        self.s3 = resource.get_client()
        self.bucket = resource.bucket_name
        self.fallback = read_production_fallback and resource.namespace is not None
        UPathIOManager.__init__(self, base_path=UPath(path_prefix) if path_prefix else None)

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        # S3 keys never hold '..' segments here (the resource refuses them): escape them.
        return base_path / partition.lstrip("/").replace("..", "%2E%2E")

    def _key(self, path: UPath) -> str:
        return self.resource.key(path.as_posix())

    def _uri_for_path(self, path: UPath) -> str:
        return f"s3://{self.bucket}/{self._key(path)}"

    def _read(self, bucket: str, key: str) -> Any:
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return pickle.loads(body)  # noqa: S301 (our own pickles, as in dagster-aws)

    def load_from_path(self, context: InputContext, path: UPath) -> Any:
        key = self._key(path)
        try:
            return self._read(self.bucket, key)
        except ClientError as exc:
            if error_code(exc) not in _MISSING:
                raise
        if not self.fallback:
            raise FileNotFoundError(f"Could not find s3://{self.bucket}/{key}")
        production_bucket = self.resource.production_bucket
        production_key = self.resource.production_key(path.as_posix())
        try:
            obj = self._read(production_bucket, production_key)
        except ClientError as exc:
            code = error_code(exc)
            if code in _MISSING:
                raise FileNotFoundError(
                    f"Could not find s3://{self.bucket}/{key} (not built in this deployment) "
                    f"nor production's s3://{production_bucket}/{production_key}."
                ) from exc
            if code in _DENIED:
                raise FileNotFoundError(
                    f"s3://{self.bucket}/{key} was not built in this deployment, and its "
                    f"credentials may not read production's s3://{production_bucket}/"
                    f"{production_key}: materialize the upstream asset in the branch, or grant "
                    "read access to production."
                ) from exc
            raise
        what = context.asset_key.to_user_string() if context.has_asset_key else key
        context.log.info(
            f"{what} is not built in {self.resource.namespace}: read production's "
            f"s3://{production_bucket}/{production_key}"
        )
        return obj

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        data = io.BytesIO(pickle.dumps(obj, PICKLE_PROTOCOL))
        self.s3.upload_fileobj(data, self.bucket, self._key(path))

    def path_exists(self, path: UPath) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(path))
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return False
            raise
        return True

    def unlink(self, path: UPath) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(path))

    def get_metadata(self, context: OutputContext, obj: Any) -> dict[str, MetadataValue]:
        path = self._get_path(context)
        metadata: dict[str, MetadataValue] = {"uri": MetadataValue.path(self._uri_for_path(path))}
        if self.resource.namespace is not None:
            metadata["dagster-branch/namespace"] = MetadataValue.text(self.resource.namespace.key)
        return metadata
