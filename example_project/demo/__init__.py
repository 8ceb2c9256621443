"""``make demo`` (``python -m example_project.demo``): the whole branch lifecycle, locally.

It plays this example project from a clone of the repository (the installed package holds
neither the example nor its servers).

No network and no accounts: the warehouse is a DuckDB file, the Git host is a bare git
repository in a temporary folder (read by :class:`~dagster_branch.GitRemoteBranches`), and the
data lake is a local S3 server (moto) when moto is installed. The story:

1. production materializes the example project, its dbt models included, and publishes its dbt
   manifest (as a production deploy does for branch deployments to defer to);
2. two branch deployments (``feature/orders-v2`` and ``feature/new-region``) materialize into
   their own schemas and prefixes, named from their branches (``br_<slug>_<hash>``);
   ``feature/orders-v2`` also builds the dbt model it changed, ``marts/region_summary``, into its
   own marts schema, reading the models it did not change from production (dbt's defer);
3. the cleanup sensor ticks in production: both branches are open, nothing is requested;
4. ``feature/orders-v2`` is merged and deleted on the remote ("PR merged");
5. the sensor ticks again and requests ``branch_cleanup`` for that branch's namespace;
6. the job runs that request and removes exactly that namespace;
7. a table shows what existed before and after: production and ``feature/new-region``
   untouched, ``feature/orders-v2`` gone. The demo checks this itself and fails otherwise.

Each phase runs in this process with the variables Dagster+ would set for that deployment
(:func:`dagster_branch.testing.deployment_env`), through the project's real ``Definitions``: the
asset job for materializations, ``build_sensor_context`` for sensor ticks, and the cleanup job
for the run request.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import dagster as dg
import sqlalchemy as sa

from dagster_branch import DagsterBranchError, Namespace
from dagster_branch.cli.output import format_table
from dagster_branch.run_tags import TAG_NAMESPACE
from dagster_branch.testing import deployment_env
from example_project import definitions as project
from example_project.demo.git_remote import DemoRemote
from example_project.demo.snapshot import Snapshot, table_rows, take_snapshot

__all__ = ["DemoError", "run_demo"]

MERGED_BRANCH = "feature/orders-v2"
KEPT_BRANCH = "feature/new-region"
BUCKET = "dagster-branch-demo"
BASE_SCHEMA = "analytics"
MARTS_SCHEMA = "analytics_marts"  # where the example's dbt models of custom schema "marts" go
CHANGED_DBT_MODEL = dg.AssetKey(["marts", "region_summary"])
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class DemoError(DagsterBranchError):
    """The demo could not run, or did not end as it should."""


class _Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.mark = self.started

    def lap(self) -> str:
        now = time.monotonic()
        text, self.mark = f"({now - self.mark:.1f}s)", now
        return text

    def total(self) -> float:
        return time.monotonic() - self.started


def _step(number: int, text: str, clock: _Clock) -> None:
    click.echo(f"{number}. {text} {clock.lap()}")


def _first_failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                return data.user_failure_data.description
            error = data.error
            while error is not None and error.cause is not None:
                error = error.cause  # Dagster wraps the user's exception: show the root
            return error.message.strip() if error is not None else "unknown error"
    return "the run failed"


def _materialize(instance: dg.DagsterInstance, *, dbt: str) -> int:
    """Materialize the example: with ``dbt`` = ``"all"``, ``"changed"`` (only the model the
    branch changed) or ``"none"`` of its dbt models."""
    defs: dg.Definitions = project.build_definitions()
    job = defs.resolve_implicit_global_asset_job_def()
    keys = set(defs.resolve_all_asset_keys())
    dbt_keys = {k for k in keys if _is_dbt(defs, k)}
    selection = keys - dbt_keys
    if dbt == "all":
        selection |= dbt_keys
    elif dbt == "changed" and CHANGED_DBT_MODEL in dbt_keys:
        selection.add(CHANGED_DBT_MODEL)
    with contextlib.redirect_stdout(io.StringIO()):  # dbt's own log lines: the demo narrates
        result = job.execute_in_process(
            instance=instance,
            run_config=QUIET,
            raise_on_error=False,
            asset_selection=list(selection),
        )
    if not result.success:
        raise DemoError(f"Materializing the example project failed: {_first_failure(result)}")
    return len(result.get_asset_materialization_events())


def _is_dbt(defs: dg.Definitions, key: dg.AssetKey) -> bool:
    return "dbt" in defs.resolve_assets_def(key).specs_by_key[key].kinds


def _publish_manifest(state: Path) -> bool:
    """Copy production's dbt manifest where branch deployments look for it (what
    ``dagster-cloud ci dagster-dbt project manage-state`` does between two deploys)."""
    if importlib.util.find_spec("dagster_dbt") is None:
        return False
    transformations = importlib.import_module("example_project.transformations")
    manifest: Path = transformations.shop_project().manifest_path
    state.mkdir(parents=True, exist_ok=True)
    shutil.copy(manifest, state / "manifest.json")
    return True


def _deferred_reads(folder: Path) -> list[tuple[str, str]]:
    """The relations the changed model's newest compiled SQL in dbt's target ``folder`` reads
    (``schema.table``)."""
    compiled = max(
        folder.glob("*/compiled/shop/models/marts/region_summary.sql"),
        key=lambda f: f.stat().st_mtime,
    )
    return [(m[1], m[2]) for m in re.finditer(r'"(\w+)"\."(\w+)" as', compiled.read_text())]


@contextlib.contextmanager
def _quiet_dagster_logger() -> Iterator[None]:
    logger = logging.getLogger("dagster")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tick(
    instance: dg.DagsterInstance, cursor: str | None
) -> tuple[list[dg.RunRequest], str | None, str | None]:
    defs: dg.Definitions = project.build_definitions()
    sensor = defs.resolve_sensor_def("branch_cleanup_sensor")
    with (
        _quiet_dagster_logger(),
        dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
        ) as context,
    ):
        # What the sensor daemon does on each tick; the demo prints its outcome itself.
        tick = sensor.evaluate_tick(context)
    return list(tick.run_requests or []), tick.cursor, tick.skip_message


def _run_cleanup(instance: dg.DagsterInstance, request: dg.RunRequest) -> Any:
    defs: dg.Definitions = project.build_definitions()
    job = defs.resolve_job_def(request.job_name or "branch_cleanup")
    result = job.execute_in_process(
        instance=instance,
        run_config={**request.run_config, **QUIET},
        tags=request.tags,
        raise_on_error=False,
    )
    if not result.success:
        raise DemoError(f"The cleanup run failed: {_first_failure(result)}")
    return result.output_for_node("record")


@contextlib.contextmanager
def _lake(use_s3: bool) -> Iterator[dict[str, str]]:
    """The S3 variables for a local S3 server with the demo's bucket, or none without moto."""
    if not use_s3:
        yield {}
        return
    try:
        import moto  # noqa: F401
    except ImportError:
        click.echo("(moto is not installed: the demo runs without its S3 part)")
        yield {}
        return
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # its access log is not the story
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    try:
        variables = {
            "DATA_BUCKET": BUCKET,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",  # a local stand-in's dummy key
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="demo",
            aws_secret_access_key="demo",  # noqa: S106
        )
        client.create_bucket(Bucket=BUCKET)
        yield variables
    finally:
        server.stop()


def _snapshot(engine: sa.Engine, lake: dict[str, str]) -> Snapshot:
    client = None
    if lake:
        import boto3

        client = boto3.client("s3", endpoint_url=lake["AWS_ENDPOINT_URL"], region_name="us-east-1")
    return take_snapshot(
        engine, [BASE_SCHEMA, MARTS_SCHEMA], s3_client=client, bucket=lake.get("DATA_BUCKET")
    )


def _check(before: Snapshot, after: Snapshot, merged: Namespace) -> None:
    """Production and the kept branch exactly as before; the merged branch gone."""
    for place, contents in before.contents.items():
        now = after.contents.get(place)
        if place.namespace == merged.key and now is not None:
            raise DemoError(f"{place.location} of {merged} is still there after its cleanup.")
        if place.namespace != merged.key and now != contents:
            raise DemoError(f"{place.location} changed during the cleanup: {contents} -> {now}.")
    if not any(p.namespace == merged.key for p in before.contents):
        raise DemoError(f"{merged} wrote nothing, so there was nothing to clean.")


def _play(folder: Path, lake: dict[str, str], clock: _Clock) -> None:
    merged, kept = Namespace.for_branch(MERGED_BRANCH), Namespace.for_branch(KEPT_BRANCH)
    remote = DemoRemote.create(folder, branches=[MERGED_BRANCH, KEPT_BRANCH])
    warehouse_url = f"duckdb:///{folder / 'warehouse.duckdb'}"
    common = {
        "WAREHOUSE_URL": warehouse_url,
        "SHOP_DBT_STATE_DIR": str(folder / "dbt-state"),
        # dbt's artifacts in the demo's folder: parsed with production's profile (so the
        # published manifest and partial parsing are production's), apart from other runs.
        "DBT_TARGET_PATH": str(folder / "dbt-target"),
        "DAGSTER_BRANCH_PR_SOURCE": "git",
        "DAGSTER_BRANCH_GIT_REMOTE": str(remote.bare),
        "DAGSTER_BRANCH_GRACE_MINUTES": "0",  # the demo does not wait ten minutes
        **lake,
    }
    where = "analytics" + (f" and s3://{BUCKET}/shop/" if lake else "")
    instance = dg.DagsterInstance.ephemeral(tempdir=str(folder / "dagster"))

    with deployment_env("production", extra=common):
        count = _materialize(instance, dbt="all")
        dbt = _publish_manifest(folder / "dbt-state")
    published = " and published its dbt manifest" if dbt else ""
    _step(1, f"production materialized {count} assets into {where}{published}", clock)
    for number, (branch, namespace) in enumerate(((MERGED_BRANCH, merged), (KEPT_BRANCH, kept)), 2):
        changes_dbt = dbt and branch == MERGED_BRANCH
        with deployment_env("branch", branch=branch, extra=common):
            count = _materialize(instance, dbt="changed" if changes_dbt else "none")
        _step(
            number,
            f"branch deployment of {branch} materialized {count} assets as {namespace}",
            clock,
        )
        if changes_dbt:
            reads = ", ".join(f"{s}.{t}" for s, t in _deferred_reads(folder / "dbt-target"))
            click.echo(
                f"   dbt built {MARTS_SCHEMA}__{namespace}.region_summary and read the models "
                f"it did not change from production: {reads}"
            )

    engine = sa.create_engine(warehouse_url)
    try:
        with deployment_env("production", extra=common):
            before = _snapshot(engine, lake)
            engine.dispose()
            requests, cursor, skip = _tick(instance, None)
        if requests:
            raise DemoError(
                f"The sensor requested a cleanup while both branches are open: {requests}"
            )
        _step(4, f"the cleanup sensor ticked in production: {skip or 'nothing to clean'}", clock)

        remote.merge_and_delete(MERGED_BRANCH)
        _step(
            5,
            f'{MERGED_BRANCH} was merged into main and deleted on the remote ("PR merged")',
            clock,
        )

        with deployment_env("production", extra=common):
            requests, cursor, _ = _tick(instance, cursor)
            if [r.tags.get(TAG_NAMESPACE) for r in requests] != [merged.key]:
                raise DemoError(f"The sensor should have requested the cleanup of {merged} only.")
            _step(
                6,
                f"the sensor requested branch_cleanup for {merged} (run key {requests[0].run_key})",
                clock,
            )
            outcome = _run_cleanup(instance, requests[0])
            removed = len(outcome.results())
            _step(7, f"branch_cleanup removed {removed} object(s) of {merged}", clock)
            after = _snapshot(engine, lake)
    finally:
        engine.dispose()

    labels = {
        None: "production",
        kept.key: f"{KEPT_BRANCH} (open)",
        merged.key: f"{MERGED_BRANCH} (merged)",
    }
    click.echo("\nWhat existed before and after the cleanup:\n")
    click.echo(
        format_table(
            ["deployment", "store", "location", "before", "after"],
            table_rows(before, after, labels),
        )
    )
    _check(before, after, merged)
    click.echo(
        f"\nProduction and {KEPT_BRANCH} are untouched; {MERGED_BRANCH} is gone. "
        f"Done in {clock.total():.1f}s."
    )


def run_demo(*, keep: bool = False, use_s3: bool = True) -> None:
    """Play the lifecycle (see the module docstring); raise :class:`DemoError` if it goes wrong."""
    clock = _Clock()
    folder = Path(tempfile.mkdtemp(prefix="dagster-branch-demo-"))
    click.echo("dagster-branch demo: a branch's whole lifecycle, on local stand-ins only\n")
    try:
        with _lake(use_s3) as lake:
            stores = "DuckDB" + (", a local S3 server" if lake else "")
            click.echo(f"stores: {stores}; Git host: a bare git repository; folder: {folder}\n")
            _play(folder, lake, clock)
    finally:
        if keep:
            click.echo(f"\nThe demo's files are kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
