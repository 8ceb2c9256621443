"""Emptying a PostgreSQL schema in dependency order, then dropping it without ``CASCADE``.

``DROP SCHEMA … CASCADE`` follows dependencies out of the schema; ``RESTRICT`` (the default)
does not, so the server itself refuses a drop that something outside still depends on. A schema
with contents cannot be dropped with ``RESTRICT``, so its objects are dropped first, in as few
statements as the dependencies allow: one ``DROP <kind> a, b, c`` per kind while objects of that
kind depend only on each other or on what is already gone (PostgreSQL drops the objects named in
one statement as one set). A schema of tables and views takes two drops (views, then tables)
plus the ``DROP SCHEMA``; one catalogue query reads the objects and their dependencies.

What is dropped: tables (also partitioned and foreign), views, materialized views, sequences
that no column owns (an owned sequence goes with its table), enum, domain, range, base and
composite types, and routines (functions, procedures, aggregates). Anything else (an operator, a
collation, a text search configuration) stays, and ``DROP SCHEMA`` then fails naming it: the
schema is kept whole (one transaction) and the failure is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from dagster_branch.stores.dependents import no_jit, resolved_edges_sql

__all__ = ["DropObjects", "SchemaContents", "drop_schema_in_order", "schema_contents"]

# The order kinds are tried in: dependents before what they depend on, as far as a fixed order
# goes; the dependencies read from the catalogue decide the rest.
_KIND_ORDER = (
    "VIEW",
    "MATERIALIZED VIEW",
    "FOREIGN TABLE",
    "TABLE",
    "SEQUENCE",
    "ROUTINE",
    "DOMAIN",
    "TYPE",
)
_RELATIONS = frozenset({"TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE"})

_CONTENTS = (
    """
WITH spaces AS (SELECT oid FROM pg_namespace WHERE nspname = :schema),
objs AS (
  SELECT 'pg_class'::regclass AS c, r.oid AS o,
    CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
      WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' WHEN 'c' THEN 'TYPE'
      ELSE 'TABLE' END AS kind,
    r.relname::text AS name, NULL::text AS args
  FROM pg_class r
  WHERE r.relnamespace IN (SELECT oid FROM spaces)
    AND r.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')
    AND NOT (r.relkind = 'S' AND EXISTS (
      SELECT 1 FROM pg_depend s WHERE s.classid = 'pg_class'::regclass AND s.objid = r.oid
        AND s.refclassid = 'pg_class'::regclass AND s.deptype IN ('a', 'i')))
  UNION ALL
  SELECT 'pg_type'::regclass, t.oid, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
    t.typname::text, NULL
  FROM pg_type t
  WHERE t.typnamespace IN (SELECT oid FROM spaces)
    AND t.typtype IN ('e', 'd', 'r', 'b') AND t.typrelid = 0
    AND NOT EXISTS (SELECT 1 FROM pg_type a WHERE a.typarray = t.oid)
    AND NOT EXISTS (SELECT 1 FROM pg_range g WHERE g.rngmultitypid = t.oid)
  UNION ALL
  SELECT 'pg_proc'::regclass, p.oid, 'ROUTINE', p.proname::text,
    pg_get_function_identity_arguments(p.oid)
  FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM spaces)
),"""
    + resolved_edges_sql()
    + """
SELECT o.kind, o.name, o.args, o.c::oid, o.o::oid,
  ARRAY(
    SELECT DISTINCT r.dep_c::oid::text || ':' || r.dep_o::text
    FROM resolved r JOIN objs x ON x.c = r.dep_c AND x.o = r.dep_o
    WHERE r.ref_c = o.c AND r.ref_o = o.o AND NOT (x.c = o.c AND x.o = o.o)
  ) AS dependents
FROM objs o
ORDER BY o.kind, o.name
"""
)


@dataclass(frozen=True)
class _Object:
    kind: str
    name: str
    args: str | None
    key: str
    dependents: frozenset[str]


@dataclass(frozen=True)
class SchemaContents:
    """What a schema holds, as the drop will name it, and in which order."""

    objects: tuple[_Object, ...]

    @property
    def relations(self) -> int:
        """Tables, views, materialized views and foreign tables."""
        return sum(o.kind in _RELATIONS for o in self.objects)

    def statements(self) -> list[tuple[str, list[_Object]]]:
        """``(kind, objects)`` for each ``DROP``, dependents first; what cannot be ordered
        (a cycle across kinds) is left out, and ``DROP SCHEMA`` then fails on it."""
        left = {o.key: o for o in self.objects}
        drops: list[tuple[str, list[_Object]]] = []
        progress = True
        while left and progress:
            progress = False
            for kind in _KIND_ORDER:
                batch = {k for k, o in left.items() if o.kind == kind}
                # Keep only objects whose remaining dependents are in the same statement.
                changed = True
                while changed:
                    changed = False
                    for k in list(batch):
                        if any(d in left and d not in batch for d in left[k].dependents):
                            batch.discard(k)
                            changed = True
                if batch:
                    drops.append((kind, sorted((left[k] for k in batch), key=lambda o: o.name)))
                    for k in batch:
                        del left[k]
                    progress = True
        return drops


def schema_contents(
    conn: sa.Connection, schema: str, *, jit_is_off: bool = False
) -> SchemaContents:
    """The droppable objects of ``schema`` and the dependencies between them: one query
    (``jit_is_off``: this transaction already switched JIT off, so it is not sent again)."""
    if not jit_is_off:
        no_jit(conn)
    rows = conn.execute(sa.text(_CONTENTS), {"schema": schema})
    return SchemaContents(
        tuple(
            _Object(kind, name, args, f"{c}:{o}", frozenset(dependents or ()))
            for kind, name, args, c, o, dependents in rows
        )
    )


class DropObjects(ExecutableDDLElement):
    """``DROP <kind> IF EXISTS s.a, s.b, …`` (``RESTRICT``), names quoted by the dialect's
    preparer (``IF EXISTS``: a concurrent cleanup may have dropped some already)."""

    def __init__(self, kind: str, schema: str, objects: list[_Object]) -> None:
        self.kind, self.schema, self.objects = kind, schema, objects


@compiles(DropObjects)
def _compile_drop_objects(element: DropObjects, compiler: DDLCompiler, **kw: Any) -> str:
    preparer = compiler.preparer
    schema = preparer.quote_schema(element.schema)
    names = []
    for obj in element.objects:
        name = f"{schema}.{preparer.quote(obj.name)}"
        if element.kind == "ROUTINE":  # named with its argument types, as the server formats them
            args = compiler.sql_compiler.post_process_text(obj.args or "")  # type: ignore[no-untyped-call]
            name += f"({args})"
        names.append(name)
    return f"DROP {element.kind} IF EXISTS {', '.join(names)}"


def drop_schema_in_order(conn: sa.Connection, schema: str, contents: SchemaContents) -> int:
    """Drop ``contents`` in dependency order, then ``schema``, all without ``CASCADE``.

    Runs in the caller's transaction, so a refusal by the server leaves the schema whole.
    Returns the number of statements sent (the drops and the ``DROP SCHEMA``).
    """
    sent = 0
    for kind, objects in contents.statements():
        conn.execute(DropObjects(kind, schema, objects))
        sent += 1
    conn.execute(sa.schema.DropSchema(schema, if_exists=True))  # RESTRICT: the server's guard
    return sent + 1
