"""Find the user's ``Definitions``: ``-m MODULE`` (importable) or ``-f FILE`` (a Python file).

The rules follow ``dagster dev``: a module-level attribute named ``defs`` wins; otherwise the
module must hold exactly one :class:`dagster.Definitions` object. The current directory is put on
``sys.path`` first, as ``dagster dev -m`` does, so ``-m example_project`` works from a checkout.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import dagster as dg

from dagster_branch.errors import DagsterBranchConfigError

__all__ = ["load_definitions"]


def load_definitions(*, module: str | None = None, file: str | None = None) -> dg.Definitions:
    """Import ``module`` or run ``file`` and return the ``Definitions`` it declares.

    Raises:
        DagsterBranchConfigError: neither or both were given, the import failed, or no single
            ``Definitions`` object was found (the message says which and what to do).
    """
    if (module is None) == (file is None):
        raise DagsterBranchConfigError("Give exactly one of -m MODULE or -f FILE.")
    loaded = _import_module(module) if module is not None else _import_file(str(file))
    return _definitions_in(loaded)


def _import_module(name: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.split(".")[0] == exc.name.split(".")[0]:
            raise DagsterBranchConfigError(
                f"Module {name!r} was not found: run from the folder that contains it, or "
                "install it in this environment."
            ) from exc
        raise DagsterBranchConfigError(f"Importing {name!r} failed: {exc}") from exc


def _import_file(path_text: str) -> ModuleType:
    path = Path(path_text).resolve()
    if not path.is_file():
        raise DagsterBranchConfigError(f"File {path_text!r} does not exist.")
    # Like `dagster dev -f`, the file's folder is importable, so sibling modules resolve.
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    module_name = f"_dagster_branch_target_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise DagsterBranchConfigError(f"{path_text!r} is not a Python file.")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def _definitions_in(loaded: ModuleType) -> dg.Definitions:
    named = getattr(loaded, "defs", None)
    if isinstance(named, dg.Definitions):
        return named
    found = [value for value in vars(loaded).values() if isinstance(value, dg.Definitions)]
    if len(found) == 1:
        return found[0]
    where = getattr(loaded, "__file__", None) or loaded.__name__
    if not found:
        raise DagsterBranchConfigError(
            f"No dagster.Definitions object was found in {where}: declare one at module level "
            "(conventionally named 'defs')."
        )
    raise DagsterBranchConfigError(
        f"{len(found)} Definitions objects were found in {where}: name the one to use 'defs'."
    )
