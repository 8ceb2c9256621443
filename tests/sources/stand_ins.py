"""Stand-ins for the GitHub, GitLab and Dagster+ APIs, served by pytest-httpserver.

They answer with the hosts' documented JSON shapes (GitHub's from the trimmed copy of its
OpenAPI examples in ``tests/fixtures/github-pulls-example.json``), page with ``Link`` headers,
answer ``304`` to a matching ``If-None-Match``, and check the headers a real host requires.
``fail_with`` queues faults (rate limits, 5xx, malformed JSON) for the next requests.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GITHUB_EXAMPLES = json.loads((FIXTURES / "github-pulls-example.json").read_text())
GITLAB_EXAMPLE = json.loads(
    (Path(__file__).parent / "gitlab-merge-request-example.json").read_text()
)
T0 = datetime(2024, 8, 1, 9, 0, tzinfo=timezone.utc)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


def rate_limited(reset_in: int = 600) -> Response:
    """GitHub's primary rate limit answer: 403, remaining 0, the reset as epoch seconds."""
    reset = int(datetime.now(timezone.utc).timestamp()) + reset_in
    return json_response(
        GITHUB_EXAMPLES["rate-limit-error"],
        status=403,
        headers={
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Used": "5000",
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Resource": "core",
        },
    )


class _FaultQueue:
    def __init__(self) -> None:
        self.faults: list[Callable[[], Response]] = []

    def fail_with(self, *responses: Response | Callable[[], Response]) -> None:
        """Answer the next requests with these (in order) instead of the real answer."""
        for response in responses:
            if isinstance(response, Response):  # a Response is callable too (a WSGI app)
                self.faults.append(lambda r=response: r)
            else:
                self.faults.append(response)

    def _fault(self) -> Response | None:
        return self.faults.pop(0)() if self.faults else None


class GitHubStandIn(_FaultQueue):
    """``GET /repos/{owner}/{repo}/pulls`` and ``/pulls/{number}`` over a set of pull requests."""

    def __init__(
        self, server: HTTPServer, *, repository: str = "octo-org/analytics", token: str = "ghp_test"
    ) -> None:
        super().__init__()
        self.server = server
        self.repository = repository
        self.token = token
        self.pulls: dict[int, dict[str, Any]] = {}
        self.clock = T0
        base = f"/repos/{repository}/pulls"
        server.expect_request(base, method="GET").respond_with_handler(self._list)
        server.expect_request(
            re.compile(re.escape(base) + r"/\d+"), method="GET"
        ).respond_with_handler(self._one)

    @property
    def api_url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def tick(self, minutes: int = 1) -> datetime:
        self.clock += timedelta(minutes=minutes)
        return self.clock

    def add(
        self, number: int, *, head: str | None = None, at: datetime | None = None
    ) -> dict[str, Any]:
        pull = copy.deepcopy(GITHUB_EXAMPLES["pull-request-simple"])
        moment = at or self.tick()
        pull.update(
            number=number,
            id=number,
            state="open",
            url=f"https://api.github.com/repos/{self.repository}/pulls/{number}",
            html_url=f"https://github.com/{self.repository}/pull/{number}",
            created_at=iso(moment),
            updated_at=iso(moment),
            closed_at=None,
            merged_at=None,
        )
        pull["head"]["ref"] = head or f"feature-{number}"
        self.pulls[number] = pull
        return pull

    def close(self, number: int, *, merged: bool = False, at: datetime | None = None) -> None:
        moment = at or self.tick()
        self.pulls[number].update(
            state="closed",
            closed_at=iso(moment),
            merged_at=iso(moment) if merged else None,
            updated_at=iso(moment),
        )

    def reopen(self, number: int, *, at: datetime | None = None) -> None:
        moment = at or self.tick()
        self.pulls[number].update(
            state="open", closed_at=None, merged_at=None, updated_at=iso(moment)
        )

    def touch(self, number: int) -> None:
        self.pulls[number]["updated_at"] = iso(self.tick())

    # -- handlers -------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return json_response({"message": "Bad credentials", "status": "401"}, status=401)
        if request.headers.get("Accept") != "application/vnd.github+json":
            return json_response({"message": "Unsupported Accept"}, status=415)
        if request.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            return json_response({"message": "Unsupported API version"}, status=400)
        return None

    def _list(self, request: Request) -> Response:
        problem = self._fault() or self._authorized(request)
        if problem is not None:
            return problem
        assert request.args.get("state") == "all"
        assert request.args.get("sort") == "updated"
        assert request.args.get("direction") == "desc"
        per_page = int(request.args.get("per_page", "30"))
        page = int(request.args.get("page", "1"))
        ordered = sorted(
            self.pulls.values(), key=lambda p: (p["updated_at"], p["number"]), reverse=True
        )
        chunk = ordered[(page - 1) * per_page : page * per_page]
        body = json.dumps(chunk)
        etag = 'W/"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "X-RateLimit-Remaining": "4999"}
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers=headers)
        links = []
        last = max(1, -(-len(ordered) // per_page))
        query = {"state": "all", "sort": "updated", "direction": "desc", "per_page": per_page}
        if page < last:
            here = self.server.url_for(request.path)
            links.append(f'<{here}?{urlencode({**query, "page": page + 1})}>; rel="next"')
            links.append(f'<{here}?{urlencode({**query, "page": last})}>; rel="last"')
        if links:
            headers["Link"] = ", ".join(links)
        return Response(body, status=200, headers=headers, content_type="application/json")

    def _one(self, request: Request) -> Response:
        problem = self._fault() or self._authorized(request)
        if problem is not None:
            return problem
        number = int(request.path.rsplit("/", 1)[1])
        if number not in self.pulls:
            return json_response(GITHUB_EXAMPLES["basic-error-not-found"], status=404)
        extra = {
            k: v for k, v in GITHUB_EXAMPLES["pull-request-extra"].items() if not k.startswith("_")
        }
        pull = {
            **self.pulls[number],
            **extra,
            "merged": self.pulls[number]["merged_at"] is not None,
        }
        return json_response(pull)

    def api_requests(self) -> list[Request]:
        return [request for request, _ in self.server.log if request.path.startswith("/repos/")]


class GitLabStandIn(_FaultQueue):
    """``GET /projects/:id/merge_requests`` (offset paging) and ``/merge_requests/:iid``."""

    def __init__(
        self,
        server: HTTPServer,
        *,
        project: str = "1234",
        token: str = "glpat-test",
        link_paging: bool = False,
    ) -> None:
        super().__init__()
        self.server = server
        self.project = project
        self.token = token
        self.link_paging = link_paging
        self.merge_requests: dict[int, dict[str, Any]] = {}
        self.clock = T0
        base = f"/api/v4/projects/{project}/merge_requests"
        server.expect_request(base, method="GET").respond_with_handler(self._list)
        server.expect_request(
            re.compile(re.escape(base) + r"/\d+"), method="GET"
        ).respond_with_handler(self._one)

    @property
    def api_url(self) -> str:
        return self.server.url_for("/api/v4")

    def tick(self, minutes: int = 1) -> datetime:
        self.clock += timedelta(minutes=minutes)
        return self.clock

    def add(
        self, iid: int, *, source_branch: str | None = None, state: str = "opened"
    ) -> dict[str, Any]:
        moment = self.tick()
        item = copy.deepcopy(GITLAB_EXAMPLE)
        item.update(
            id=1000 + iid,
            iid=iid,
            state=state,
            created_at=moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            updated_at=moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            merged_at=None,
            closed_at=None,
            source_branch=source_branch or f"feature-{iid}",
            web_url=f"https://gitlab.example.com/data/analytics/-/merge_requests/{iid}",
        )
        self.merge_requests[iid] = item
        return item

    def finish(self, iid: int, state: str) -> None:
        stamp = self.tick().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        item = self.merge_requests[iid]
        item.update(state=state, updated_at=stamp)
        if state == "merged":
            item["merged_at"] = stamp
        elif state == "closed":
            item["closed_at"] = stamp

    def _list(self, request: Request) -> Response:
        if (problem := self._fault()) is not None:
            return problem
        if request.headers.get("PRIVATE-TOKEN") != self.token:
            return json_response({"message": "401 Unauthorized"}, status=401)
        assert request.args.get("order_by") == "updated_at"
        assert request.args.get("sort") == "desc"
        items = sorted(self.merge_requests.values(), key=lambda m: m["updated_at"], reverse=True)
        if "updated_after" in request.args:
            after = datetime.fromisoformat(request.args["updated_after"].replace("Z", "+00:00"))
            items = [
                m
                for m in items
                if datetime.fromisoformat(m["updated_at"].replace("Z", "+00:00")) >= after
            ]
        per_page = int(request.args.get("per_page", "20"))
        page = int(request.args.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(items)
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(page + 1) if more else "",
        }
        if more and self.link_paging:
            query = {k: v for k, v in request.args.items()}
            query["page"] = str(page + 1)
            headers["Link"] = (
                f'<{self.server.url_for(request.path)}?{urlencode(query)}>; rel="next"'
            )
            headers["X-Next-Page"] = ""
        return json_response(chunk, headers=headers)

    def _one(self, request: Request) -> Response:
        if (problem := self._fault()) is not None:
            return problem
        iid = int(request.path.rsplit("/", 1)[1])
        if iid not in self.merge_requests:
            return json_response({"message": "404 Not found"}, status=404)
        return json_response(self.merge_requests[iid])

    def api_requests(self) -> list[Request]:
        return [request for request, _ in self.server.log if request.path.startswith("/api/v4/")]


class DagsterPlusStandIn(_FaultQueue):
    """``POST /<deployment>/graphql`` answering ``branchDeployments`` in Dagster+'s shape."""

    def __init__(
        self, server: HTTPServer, *, deployment: str = "prod", token: str = "user:test-token"
    ) -> None:
        super().__init__()
        self.server = server
        self.deployment = deployment
        self.token = token
        self.deployments: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        server.expect_request(f"/{deployment}/graphql", method="POST").respond_with_handler(
            self._graphql
        )

    @property
    def url(self) -> str:
        return self.server.url_for(f"/{self.deployment}/graphql")

    def add(
        self,
        *,
        branch: str,
        number: int | None,
        status: str | None = "OPEN",
        repo: str = "octo-org/analytics",
    ) -> None:
        self.deployments.append(
            {
                "deploymentName": hashlib.sha1(f"{repo}{branch}".encode()).hexdigest()[:12],
                "deploymentId": len(self.deployments) + 10,
                "deploymentType": "BRANCH",
                "deploymentStatus": "ACTIVE",
                "isBranchDeployment": True,
                "branchDeploymentGitMetadata": {
                    "branchName": branch,
                    "repoName": repo,
                    "branchUrl": f"https://github.com/{repo}/tree/{branch}",
                    "pullRequestUrl": f"https://github.com/{repo}/pull/{number}"
                    if number
                    else None,
                    "pullRequestStatus": status,
                    "pullRequestNumber": str(number) if number is not None else None,
                },
            }
        )

    def _graphql(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.bodies.append(body)
        if (problem := self._fault()) is not None:
            return problem
        if request.headers.get("Dagster-Cloud-Api-Token") != self.token:
            return json_response({"errors": [{"message": "Invalid token"}]}, status=200)
        assert (
            "branchDeployments(limit: $limit, pullRequestStatus: $pullRequestStatus)"
            in body["query"]
        )
        limit = body["variables"]["limit"]
        fields = ("branchName", "repoName", "pullRequestStatus", "pullRequestNumber")
        nodes = [  # GraphQL answers exactly the fields asked for
            {
                "deploymentName": d["deploymentName"],
                "branchDeploymentGitMetadata": {
                    k: d["branchDeploymentGitMetadata"][k] for k in fields
                },
            }
            for d in self.deployments[:limit]
        ]
        return json_response(
            {
                "data": {
                    "branchDeployments": {
                        "__typename": "DagsterCloudDeploymentConnection",
                        "nodes": nodes,
                    }
                }
            }
        )
