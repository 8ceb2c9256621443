"""What exists in the demo's stores, read directly (not through dagster-branch), so that the
before/after table shows the stores' own truth rather than the library's view of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dagster_branch.naming import Namespace, namespace_of_key, namespace_of_schema

__all__ = ["Place", "Snapshot", "take_snapshot"]


@dataclass(frozen=True, order=True)
class Place:
    """One corner of a store: a schema, or a key prefix in a bucket."""

    store: str
    location: str
    namespace: str | None  # None: production


@dataclass(frozen=True)
class Snapshot:
    """How much each place holds: ``"3 tables, 144 rows"`` or ``"1 object"``."""

    contents: dict[Place, str]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


_TABLES = sa.text(
    "SELECT table_schema, table_name FROM information_schema.tables "
    "WHERE table_catalog = current_database() ORDER BY table_schema, table_name"
)


def _owner(schema: str, production_schemas: Sequence[str]) -> Namespace | None:
    for production in production_schemas:
        owner = namespace_of_schema(schema, production)
        if owner is not None:
            return owner
    return None


def _warehouse(engine: sa.Engine, production_schemas: Sequence[str]) -> dict[Place, str]:
    tables: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for schema, table in conn.execute(_TABLES):
            tables.setdefault(schema, []).append(table)
        found: dict[Place, str] = {}
        for schema, names in tables.items():
            owner = _owner(schema, production_schemas)
            if owner is None and schema not in production_schemas:
                continue  # not the example's data (the ledger, DuckDB's own schemas)
            count = sa.select(sa.func.count())
            rows = sum(
                int(conn.execute(count.select_from(sa.table(n, schema=schema))).scalar_one())
                for n in names
            )
            place = Place("warehouse", schema, owner.key if owner else None)
            found[place] = f"{_plural(len(names), 'relation')}, {_plural(rows, 'row')}"
    return found


def _lake(client: Any, bucket: str, root: str) -> dict[Place, str]:
    counts: dict[tuple[str, str | None], int] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key: str = item["Key"]
            owner = namespace_of_key(key, root=root)
            top = key.split("/", 1)[0] + "/"
            prefix = f"{root}/{owner.key}/" if owner is not None else top
            group = (prefix, owner.key if owner else None)
            counts[group] = counts.get(group, 0) + 1
    return {
        Place("lake", f"s3://{bucket}/{prefix}", owner): _plural(count, "object")
        for (prefix, owner), count in counts.items()
    }


def take_snapshot(
    engine: sa.Engine,
    production_schemas: Sequence[str],
    *,
    s3_client: Any | None = None,
    bucket: str | None = None,
    branch_root: str = "_branches",
) -> Snapshot:
    """Everything the example wrote, per place, read straight from DuckDB and S3."""
    contents = _warehouse(engine, production_schemas)
    if s3_client is not None and bucket is not None:
        contents.update(_lake(s3_client, bucket, branch_root))
    return Snapshot(contents)


def table_rows(
    before: Snapshot, after: Snapshot, labels: dict[str | None, str]
) -> Sequence[list[str]]:
    """Rows ``deployment, store, location, before, after`` in a stable order."""
    places = sorted(set(before.contents) | set(after.contents), key=_order(labels))
    return [
        [
            labels.get(place.namespace, place.namespace or "production"),
            place.store,
            place.location,
            before.contents.get(place, "-"),
            after.contents.get(place, "removed"),
        ]
        for place in places
    ]


def _order(labels: dict[str | None, str]) -> Any:
    ranks = {namespace: index for index, namespace in enumerate(labels)}
    return lambda place: (ranks.get(place.namespace, len(ranks)), place.store != "warehouse", place)
