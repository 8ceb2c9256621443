"""`dagster dev -m example_project`: the example project loads in Dagster's own UI server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.example import DBT_ASSETS, PYTHON_ASSETS
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).with_name("dagster")
QUERY = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        location { name }
        jobs { name }
        sensors { name }
        assetNodes { assetKey { path } }
      }
    }
  }
}
"""


def _graphql(port: int) -> dict[str, Any] | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            payload: dict[str, Any] = json.load(response)
            return payload
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    # `dagster dev` ignores SIGINT when it is not in the foreground: stop its whole group.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            continue


def test_dagster_dev_loads_the_assets_the_sensor_and_the_job(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "DATA_BUCKET": "shop-lake",  # only named: nothing reaches S3 while definitions load
        "DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod",
    }
    log = (tmp_path / "dagster-dev.log").open("wb")
    process = subprocess.Popen(
        [str(DAGSTER), "dev", "-m", "example_project", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    repository = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            payload = _graphql(port)
            result = (payload or {}).get("data", {}).get("repositoriesOrError", {})
            if result.get("__typename") == "RepositoryConnection" and result["nodes"]:
                repository = result["nodes"][0]
                break
            time.sleep(1)
    finally:
        _stop(process)
        log.close()

    output = (tmp_path / "dagster-dev.log").read_text(errors="replace")
    assert repository is not None, f"dagster dev did not serve the project:\n{output[-3000:]}"
    assert repository["location"]["name"] == "example_project"
    assets = {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]}
    assert assets == PYTHON_ASSETS | DBT_ASSETS
    assert {sensor["name"] for sensor in repository["sensors"]} == {"branch_cleanup_sensor"}
    assert "branch_cleanup" in {job["name"] for job in repository["jobs"]}
    assert process.returncode is not None  # stopped with its process group
