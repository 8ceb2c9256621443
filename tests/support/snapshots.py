"""Snapshots of the test servers, to prove what a test changed and what it left alone.

Two depths: the whole contents (:func:`warehouse_dump`, :func:`s3_dump`, :func:`sqlite_files`:
every row, object version, delete marker, unfinished upload and file hash), and digests that
are cheap to take many times (:func:`database_snapshot`, :func:`s3_snapshot`). All read the
servers with plain SQLAlchemy and boto3, never through the library under test, except
:func:`live_ledger`, which reads the ledger the way the cleanup does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import sqlalchemy as sa

from dagster_branch import Namespace
from dagster_branch.dialects import attach_sqlite_schemas, list_schema_names, sqlite_schema_files
from dagster_branch.ledger import Ledger

BUCKET = "acme-data"
"""The production bucket of the test worlds (``tests/faults/world.py``, ``tests/cleanup/``)."""

# Catalogs of the database itself, never part of a snapshot.
SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "pg_toast", "temp"}


# -- whole contents ------------------------------------------------------------------------------


def _engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        attach_sqlite_schemas(engine, set(sqlite_schema_files(engine)))
    return engine


def warehouse_dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, by ``schema.table``, with the column names first."""
    engine = _engine(url)
    dump: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            schemas = (
                [*sorted(sqlite_schema_files(engine)), "main"]
                if engine.dialect.name == "sqlite"
                else list_schema_names(conn)
            )
            for schema in schemas:
                if schema in SYSTEM_SCHEMAS or schema.startswith("pg_"):
                    continue
                dump[f"{schema}/"] = []  # an empty schema still shows
                for name in inspector.get_table_names(schema=schema):
                    columns = [
                        (c["name"], str(c["type"])) for c in inspector.get_columns(name, schema)
                    ]
                    table = sa.table(name, *(sa.column(c) for c, _ in columns), schema=schema)
                    rows = [tuple(sorted(r._mapping.items())) for r in conn.execute(table.select())]
                    dump[f"{schema}.{name}"] = [tuple(columns), *sorted(rows, key=repr)]
    finally:
        engine.dispose()
    return dump


def sqlite_files(url: str) -> dict[str, str]:
    """SHA-256 of each SQLite database file (main and emulated schemas), by file name."""
    database = sa.make_url(url).database
    if not database or not url.startswith("sqlite"):
        return {}
    main = Path(database)
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(main.parent.glob(main.name + "*"))
        if not p.name.endswith(("-journal", "-wal", "-shm"))
    }


def s3_dump(s3: Any, *, removed: Callable[[str], bool]) -> dict[str, Any]:
    """Every bucket with every version, delete marker and unfinished upload; bodies hashed,
    except those of the ``bucket/key`` names that ``removed`` accepts (their ETag is kept)."""
    dump: dict[str, Any] = {}
    for bucket in sorted(b["Name"] for b in s3.list_buckets()["Buckets"]):
        versions: list[tuple[Any, ...]] = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in page.get("Versions", []):
                # Bodies are compared byte for byte where they must stay unchanged; the ETag
                # (an MD5 of the body) is enough for the objects the cleanup removes.
                digest = v["ETag"]
                if not removed(bucket + "/" + v["Key"]):
                    body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
                    digest = hashlib.sha256(body["Body"].read()).hexdigest()
                versions.append(("version", v["Key"], v["VersionId"], v["Size"], digest))
            for m in page.get("DeleteMarkers", []):
                versions.append(("marker", m["Key"], m["VersionId"], 0, ""))
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        dump[bucket] = {
            "objects": sorted(versions),
            "uploads": sorted((u["Key"], u["UploadId"]) for u in uploads),
        }
    return dump


# -- digests -------------------------------------------------------------------------------------


def database_snapshot(url: str) -> dict[str, str]:
    """Each analytics* schema with a digest of its tables' names and rows."""
    engine = sa.create_engine(url)
    found: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            for schema in list_schema_names(conn):
                if not schema.startswith("analytics"):
                    continue
                digest = hashlib.sha256()
                for table in sorted(sa.inspect(conn).get_table_names(schema=schema)):
                    quoted = sa.table(table, schema=schema)
                    rows = conn.execute(sa.select(sa.text("*")).select_from(quoted)).all()
                    digest.update(repr((table, sorted(map(tuple, rows)))).encode())
                found[schema] = digest.hexdigest()
    finally:
        engine.dispose()
    return found


def live_ledger(url: str, namespace: str | None = None, store: str | None = None) -> set[str]:
    """Qualified names of the live (not dropped) ledger rows."""
    ledger = Ledger.from_url(url)
    try:
        ns = Namespace.parse(namespace) if namespace else None
        return {
            f"{e.store}:{e.container + '/' if e.container else ''}{e.name}"
            for e in ledger.live_entries(ns, store=store)
        }
    finally:
        ledger.close()


def s3_snapshot(endpoint: str, bucket: str = BUCKET, prefix: str = "") -> dict[str, str]:
    """Every key under ``prefix`` with its ETag (content hash)."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"]
    return found


def outside(snapshot: Mapping[str, str], namespace: str) -> dict[str, str]:
    """The part of an S3 snapshot that does not belong to ``namespace``."""
    return {k: v for k, v in snapshot.items() if not k.startswith(f"_branches/{namespace}/")}
