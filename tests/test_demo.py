"""`make demo` (`python -m example_project.demo`): the README's first command, run end to end
as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dagster_branch import Namespace

ROOT = Path(__file__).resolve().parents[1]


def _table(output: str) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """The before/after table: (deployment, store) -> [(before, after) of each location]."""
    lines = output.split("What existed before and after the cleanup:", 1)[1].strip().splitlines()
    rows: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for line in lines[2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        deployment, store, _location, before, after = cells
        rows.setdefault((deployment, store), []).append((before, after))
    return rows


@pytest.mark.timeout(700)
def test_demo_plays_the_lifecycle_and_removes_only_the_merged_branch(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AWS_"))}
    env["HOME"] = str(tmp_path)  # a fresh user: no git or AWS configuration to lean on

    finished = subprocess.run(
        [sys.executable, "-m", "example_project.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert finished.returncode == 0, finished.stdout + finished.stderr
    out = finished.stdout
    merged = Namespace.for_branch("feature/orders-v2")
    assert f"the sensor requested branch_cleanup for {merged}" in out
    rows = _table(out)
    assert rows == {
        # analytics (3 Python tables, dbt's seed, view, table and incremental) and analytics_marts
        ("production", "warehouse"): [("7 relations, 160 rows",) * 2, ("1 relation, 4 rows",) * 2],
        ("production", "lake"): [("1 object", "1 object")],
        ("feature/new-region (open)", "warehouse"): [("3 relations, 144 rows",) * 2],
        ("feature/new-region (open)", "lake"): [("1 object", "1 object")],
        # the Python tables, and the one dbt model the branch changed (in its own marts schema)
        ("feature/orders-v2 (merged)", "warehouse"): [
            ("3 relations, 144 rows", "removed"),
            ("1 relation, 4 rows", "removed"),
        ],
        ("feature/orders-v2 (merged)", "lake"): [("1 object", "removed")],
    }
    assert "read the models it did not change from production: analytics.region_targets" in out
    assert "Production and feature/new-region are untouched; feature/orders-v2 is gone." in out
    # The demo reports its own duration; how long it takes is measured, not asserted (a timed
    # test fails on a loaded machine): see the README for the figure.
    assert re.search(r"Done in [0-9.]+s\.", out), out
