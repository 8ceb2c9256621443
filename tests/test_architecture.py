"""The import structure ARCHITECTURE.md draws: layers that import only from the layers above them,
store adapters that never import the resources, and no import cycle at all.

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import
back into a lower layer is still a circle, only hidden.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dagster_branch"

# ARCHITECTURE.md's layer table, top (imported by all) to bottom, by the first name after
# ``dagster_branch.`` ("" is the package itself: the public API, which re-exports every layer).
LAYERS: list[tuple[str, frozenset[str]]] = [
    ("vocabulary", frozenset({"errors", "naming", "pull_requests", "run_tags", "inventory"})),
    ("environment", frozenset({"context", "boto_sessions", "testing", "dialects"})),
    ("records", frozenset({"ownership", "ledger"})),
    ("stores", frozenset({"stores", "seeding"})),
    ("resources", frozenset({"resources", "io_managers", "dbt"})),
    ("detection", frozenset({"sources", "decision", "detection", "previous_runs"})),
    ("orchestration", frozenset({"cleanup", "sensors", "definitions", "components"})),
    ("entry points", frozenset({"cli", ""})),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every ``dagster_branch`` module ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from package import module`` imports the module; ``from module import name``
            # the module itself.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        yield from (t for t in targets if t in MODULES and t != name)


GRAPH = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def _layer(name: str) -> int:
    first = name.split(".")[1] if "." in name else ""
    for index, (_, members) in enumerate(LAYERS):
        if first in members:
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and to ARCHITECTURE.md")


def test_every_module_has_a_layer() -> None:
    assert {name: _layer(name) for name in MODULES}


def test_each_layer_imports_only_from_the_layers_above_it() -> None:
    wrong = [
        f"{name} ({LAYERS[_layer(name)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for name, targets in GRAPH.items()
        for target in targets
        if _layer(target) > _layer(name)
    ]
    assert wrong == []


def test_resources_never_import_the_cleanup_and_stores_never_import_the_resources() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if (name.startswith("dagster_branch.resources") and ".cleanup" in target)
        or (name.startswith("dagster_branch.stores") and ".resources" in target)
    ]
    assert wrong == []


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in GRAPH[name]:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while (member := stack.pop()) != name:
                component.append(member)
            if component:
                found.append(sorted([*component, name]))

    for name in GRAPH:
        if name not in index:
            visit(name)
    return found


def test_no_import_cycle_among_the_modules() -> None:
    assert _cycles() == []


# Importing any ``dagster_branch.x`` first runs the package's ``__init__``, which imports most
# modules itself: for those, importing them alone is exactly importing the package. Each of the
# others is then imported first, after ``sys.modules`` is cleared of the package.
_IMPORT_EACH_ALONE = """
import importlib, json, sys, traceback

def fresh(name):
    for loaded in [m for m in sys.modules if m.split(".")[0] == "dagster_branch"]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=-3)

failures = {}
fresh("dagster_branch")
by_the_package = set(sys.modules)
for name in sys.argv[1:]:
    if name not in by_the_package:
        fresh(name)
print(json.dumps(failures))
"""


def test_each_module_imports_alone() -> None:
    """Each module imported first, with no other ``dagster_branch`` module loaded, in one
    interpreter (the libraries stay loaded, so it takes seconds, not one start per module)."""
    names = [n for n in MODULES if not n.endswith("__main__")]  # those would run a command
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_ALONE, *names],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}
