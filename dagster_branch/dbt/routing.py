"""What a dbt command needs to run branch-aware: the routing variable and the defer flags.

Pure decisions from the warehouse's routing and the production manifest's path; no I/O except
checking that the manifest file exists.

In a branch deployment for PR 7 with ``base_schema="analytics"`` and
``extra_schemas=["analytics_marts"]``::

    dbt build --vars '{"dagster_branch": {"namespace": "pr_7", "schemas":
                {"analytics": "analytics__pr_7", "analytics_marts": "analytics_marts__pr_7"}}}'
              --defer --state <state_path> --favor-state

The package's ``generate_schema_name`` macro reads the variable; without it (production, local)
dbt keeps its own names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dagster_branch.errors import DagsterBranchConfigError
from dagster_branch.naming import Namespace
from dagster_branch.resources.database import BranchDatabaseResource

__all__ = ["DEFER_COMMANDS", "ROUTING_VAR", "DbtRouting"]

ROUTING_VAR = "dagster_branch"
"""The dbt variable the package's macro reads (``var("dagster_branch")``)."""

DEFER_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot", "compile", "show", "ls"})
"""dbt commands that take ``--defer``, ``--state`` and ``--favor-state``."""

_USER_STATE_FLAGS = ("--defer", "--no-defer", "--state", "--defer-state", "--favor-state")


@dataclass(frozen=True)
class DbtRouting:
    """How this deployment runs dbt: its namespace, the schema map, and the production manifest.

    ``namespace`` is ``None`` in production and locally: dbt then runs exactly as asked.
    """

    namespace: Namespace | None
    schemas: Mapping[str, str] = field(default_factory=dict)
    state_path: Path | None = None

    @classmethod
    def of(
        cls, warehouse: BranchDatabaseResource, *, state_path: str | Path | None = None
    ) -> DbtRouting:
        """The routing of ``warehouse``'s deployment; only branch deployments are routed.

        Raises:
            DagsterBranchConfigError: the warehouse uses ``strategy="table_prefix"``, which dbt's
                schema naming cannot follow.
        """
        if not warehouse.deployment.is_branch_deployment:
            return cls(None)
        if warehouse.strategy != "schema":
            raise DagsterBranchConfigError(
                f"dbt routing needs strategy='schema' on the {warehouse.store_key!r} resource: "
                "dbt names schemas, not table prefixes. Set strategy='schema'."
            )
        routing = warehouse.routing()
        return cls(routing.namespace, dict(routing.schemas), _path(state_path))

    @property
    def production_manifest(self) -> Path | None:
        """The production ``manifest.json`` under ``state_path``, if it is there."""
        if self.state_path is None:
            return None
        manifest = self.state_path / "manifest.json"
        return manifest if manifest.is_file() else None

    def variable(self) -> dict[str, Any] | None:
        """The value of ``var("dagster_branch")``, or ``None`` when dbt keeps its own names."""
        if self.namespace is None:
            return None
        return {"namespace": self.namespace.key, "schemas": dict(self.schemas)}

    def args(self, args: Sequence[str], *, defer: bool = True) -> list[str]:
        """``args`` with the routing variable merged into ``--vars`` and, for commands that take
        them, ``--defer --state <state_path> --favor-state`` (unless ``args`` already set state
        flags, ``defer`` is false, or there is no production manifest)."""
        routed = list(args)
        variable = self.variable()
        if variable is None:
            return routed
        routed = _with_variable(routed, variable)
        command = next((a for a in routed if not a.startswith("-")), None)
        flags_given = any(a.split("=", 1)[0] in _USER_STATE_FLAGS for a in routed)
        if defer and command in DEFER_COMMANDS and not flags_given and self.production_manifest:
            routed += ["--defer", "--state", str(self.state_path), "--favor-state"]
        return routed


def _path(value: str | Path | None) -> Path | None:
    return Path(value) if value is not None and str(value) else None


def _with_variable(args: list[str], variable: dict[str, Any]) -> list[str]:
    """Merge ``{ROUTING_VAR: variable}`` into the ``--vars`` of ``args`` (dbt reads only one)."""
    merged: dict[str, Any] = {}
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--vars" and index + 1 < len(args):
            merged.update(_parse_vars(args[index + 1]))
            index += 2
            continue
        if arg.startswith("--vars="):
            merged.update(_parse_vars(arg.split("=", 1)[1]))
        else:
            rest.append(arg)
        index += 1
    if ROUTING_VAR in merged:
        raise DagsterBranchConfigError(
            f"--vars sets {ROUTING_VAR!r} itself: leave it to dagster_branch.dbt, which sets it "
            "in branch deployments only."
        )
    merged[ROUTING_VAR] = variable
    return [*rest, "--vars", json.dumps(merged, sort_keys=True)]


def _parse_vars(text: str) -> dict[str, Any]:
    try:
        value = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise DagsterBranchConfigError(
            f"--vars {text[:60]!r} is not a YAML or JSON mapping: pass e.g. "
            '--vars \'{"key": "value"}\'.'
        )
    return value
