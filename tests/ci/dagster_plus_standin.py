"""A Dagster+ stand-in for the real ``dagster-cloud`` CLI, on loopback.

It answers the GraphQL operations that dagster-cloud-cli 1.13 sends (their text is in the
installed package: ``dagster_cloud_cli/gql.py`` and ``core/pex_builder/pex_registry.py``), keyed
by the operation name the CLI gives each one, and records every call with the deployment it was
addressed to (the URL path ``/<deployment>/graphql`` or the ``Dagster-Cloud-Deployment`` header).
An operation it does not know is answered with a GraphQL error, so the CLI fails loudly.

It also keeps what Dagster+ keeps: the branch deployments created from CI (repository, branch,
pull request number and status, commit), answered back to dagster-branch's own
``DagsterBranchDeployments`` query, and a pex registry that accepts uploads. That registry
already holds a ``deps.pex`` for every requirements hash, so ``ci build`` does not spend minutes
resolving third-party packages from PyPI; the source pex is built and uploaded for real.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

TOKEN = "user:ci-standin-token"
ARTIFACTS = "/artifacts/"
OPERATION = re.compile(r"\b(?:query|mutation)\s+(\w+)")


@dataclass(frozen=True)
class Call:
    """One GraphQL request as it reached the stand-in."""

    operation: str
    deployment: str | None  # from the URL path, else the Dagster-Cloud-Deployment header
    variables: dict[str, Any]


@dataclass
class BranchDeployment:
    """What Dagster+ records for a branch deployment (``createOrUpdateBranchDeployment``)."""

    name: str
    repo: str
    branch: str
    pull_request: str | None
    status: str | None
    commit: str
    timestamp: float
    history: list[str | None] = field(default_factory=list)  # every status it was sent


class DagsterPlusStandIn:
    """Serve the Dagster+ API the CLI uses on ``server``; ``url`` is the organization's URL."""

    def __init__(self, server: HTTPServer, *, dagster_version: str) -> None:
        self.server = server
        self.dagster_version = dagster_version
        self.calls: list[Call] = []
        self.branches: dict[tuple[str, str], BranchDeployment] = {}
        self.uploads: dict[str, bytes] = {}
        server.expect_request(
            re.compile(r"^(/[\w.-]+)?/graphql$"), method="POST"
        ).respond_with_handler(self._graphql)
        server.expect_request(re.compile(f"^{ARTIFACTS}")).respond_with_handler(self._artifact)

    @property
    def url(self) -> str:
        """The organization URL, what ``https://<organization>.dagster.cloud`` is in production."""
        return self.server.url_for("").rstrip("/")

    def operations(self) -> list[str]:
        """The GraphQL operations received, in order (CLI usage events left out)."""
        return [c.operation for c in self.calls if c.operation != "MarkCliEventMutation"]

    def calls_to(self, operation: str) -> list[Call]:
        """Every call of one operation, in order."""
        return [c for c in self.calls if c.operation == operation]

    # -- HTTP --------------------------------------------------------------------------------

    def _graphql(self, request: Request) -> Response:
        if request.headers.get("Dagster-Cloud-Api-Token") != TOKEN:
            return _json({"errors": [{"message": "Invalid Dagster Cloud API token"}]}, 401)
        body = json.loads(request.get_data())
        match = OPERATION.search(body["query"])
        operation = match.group(1) if match else "<anonymous>"
        path_deployment = request.path.removesuffix("/graphql").strip("/") or None
        deployment = path_deployment or request.headers.get("Dagster-Cloud-Deployment")
        variables = body.get("variables") or {}
        self.calls.append(Call(operation, deployment, variables))
        answer = getattr(self, f"_op_{operation}", None)
        if answer is None:
            return _json({"errors": [{"message": f"stand-in: unknown operation {operation}"}]})
        return _json({"data": answer(variables, request)})

    def _artifact(self, request: Request) -> Response:
        name = request.path.removeprefix(ARTIFACTS)
        if request.method == "PUT":
            self.uploads[name] = request.get_data()
            return Response(status=200)
        if name in self.uploads:
            return Response(self.uploads[name], status=200)
        if name.startswith("requirements-"):  # the registry's deps.pex for any requirements
            details = {"deps_pex_name": "deps-standin.pex", "dagster_version": self.dagster_version}
            return _json(details)
        return Response(status=404)

    # -- operations (named as the CLI names them) --------------------------------------------

    def _op_CliCreateOrUpdateBranchDeployment(self, v: dict[str, Any], _: Request) -> Any:
        data, commit = v["branchData"], v["commit"]
        key = (data["repoName"], data["branchName"])
        name = hashlib.sha1("/".join(key).encode()).hexdigest()[:12]  # Dagster+ names are ids
        branch = self.branches.setdefault(key, BranchDeployment(name, *key, None, None, "", 0.0))
        branch.pull_request = data["pullRequestNumber"] or branch.pull_request
        branch.status = data["pullRequestStatus"] or branch.status
        branch.commit, branch.timestamp = commit["commitHash"], commit["timestamp"]
        branch.history.append(data["pullRequestStatus"])
        deployment = {"__typename": "DagsterCloudDeployment", "deploymentName": name}
        return {"createOrUpdateBranchDeployment": {**deployment, "deploymentId": 7}}

    def _op_CliGetEcrInfo(self, _: dict[str, Any], request: Request) -> Any:
        return {
            "serverless": {
                "registryUrl": f"{request.host}/serverless",
                "awsRegion": "us-west-2",
                "awsAuthToken": "standin",
                "registryAllowCustomBase": False,
                "registryIsHarbor": False,
            }
        }

    def _op_GenerateServerlessPexUrlMutation(self, v: dict[str, Any], _: Request) -> Any:
        urls = [{"url": f"{self.url}{ARTIFACTS}{name}"} for name in v["filenames"]]
        return {"generateServerlessPexUrl": urls}

    def _op_MarkCliEventMutation(self, _: dict[str, Any], __: Request) -> Any:
        return {"markCliEvent": "ok"}

    def _op_CliDeployLocations(self, v: dict[str, Any], _: Request) -> Any:
        names = [{"locationName": loc["location_name"]} for loc in v["document"]["locations"]]
        return {"deployLocations": {"__typename": "DeployLocationsSuccess", "locations": names}}

    def _op_CliAddOrUpdateLocation(self, v: dict[str, Any], _: Request) -> Any:
        name = v["document"]["location_name"]
        return {
            "addOrUpdateLocationFromDocument": {
                "__typename": "WorkspaceEntry",
                "locationName": name,
            }
        }

    def _op_DeploymentInfoQuery(self, _: dict[str, Any], __: Request) -> Any:
        return {"currentDeployment": {"agentType": "SERVERLESS"}}

    def _op_CliAgentStatus(self, _: dict[str, Any], __: Request) -> Any:
        return {"agents": [{"status": "RUNNING", "errors": []}]}

    def _op_CliLocationsQuery(self, _: dict[str, Any], __: Request) -> Any:
        deployed = {
            loc["location_name"]
            for call in self.calls
            if call.operation in ("CliDeployLocations", "CliAddOrUpdateLocation")
            for loc in call.variables["document"].get("locations", [call.variables["document"]])
        }
        entries = [
            {
                "__typename": "WorkspaceLocationEntry",
                "name": name,
                "loadStatus": "LOADED",
                "locationOrLoadError": {"__typename": "RepositoryLocation", "name": name},
            }
            for name in sorted(deployed)
        ]
        return {"workspaceOrError": {"__typename": "Workspace", "locationEntries": entries}}

    def _op_CliLaunchRun(self, v: dict[str, Any], _: Request) -> Any:
        params = v["executionParams"]
        run = {
            "runId": f"run-{len(self.calls_to('CliLaunchRun'))}",
            "tags": params["executionMetadata"]["tags"],
            "status": "QUEUED",
            "runConfigYaml": json.dumps(params["runConfigData"]),
        }
        return {"launchRun": {"__typename": "LaunchRunSuccess", "run": run}}

    def _op_DagsterBranchDeployments(self, v: dict[str, Any], _: Request) -> Any:
        """dagster-branch's own query (``DagsterPlusBranchDeployments``), over what CI recorded."""
        nodes = [
            {
                "deploymentName": b.name,
                "branchDeploymentGitMetadata": {
                    "branchName": b.branch,
                    "repoName": b.repo,
                    "pullRequestStatus": b.status,
                    "pullRequestNumber": b.pull_request,
                },
            }
            for b in list(self.branches.values())[: v["limit"]]
        ]
        connection = {"__typename": "DagsterCloudDeploymentConnection", "nodes": nodes}
        return {"branchDeployments": connection}


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")
