"""Merge request states from the GitLab REST API (gitlab.com and self-managed GitLab).

One call of :meth:`GitLabMergeRequests.states_of` reads
``GET /projects/:id/merge_requests?updated_after=<high-water mark>&order_by=updated_at&sort=desc``
and pages with ``Link: rel="next"`` (or ``X-Next-Page``). When nothing changed the first page is
all there is: one request per call, whatever the number of live namespaces. Merge requests the
listing did not reach are read with ``GET /projects/:id/merge_requests/:iid``.

GitLab tells ``merged`` apart from ``closed``; ``locked`` (a merge in progress) counts as open.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field, ValidationError, field_validator

from dagster_branch.errors import UnexpectedResponseError
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus
from dagster_branch.sources.http import HttpClient, HttpResponse, redact_url
from dagster_branch.sources.tracking import Page, TrackedSource

__all__ = ["GitLabMergeRequests"]

DEFAULT_API_URL = "https://gitlab.com/api/v4"

_STATUS = {
    "opened": PullRequestStatus.OPEN,
    "locked": PullRequestStatus.OPEN,
    "closed": PullRequestStatus.CLOSED,
    "merged": PullRequestStatus.MERGED,
}


class _MergeRequest(BaseModel):
    """The fields we read from GitLab's merge request shape."""

    iid: int
    state: Literal["opened", "closed", "merged", "locked"]
    updated_at: datetime
    closed_at: datetime | None = None
    merged_at: datetime | None = None
    source_branch: str
    web_url: str | None = None

    def to_state(self) -> PullRequestState:
        return PullRequestState(
            number=self.iid,
            state=_STATUS[self.state],
            updated_at=self.updated_at,
            closed_at=self.closed_at,
            merged_at=self.merged_at,
            head_branch=self.source_branch,
            url=self.web_url,
        )


def _parse(payload: Any, where: str) -> PullRequestState:
    try:
        return _MergeRequest.model_validate(payload).to_state()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UnexpectedResponseError(
            f"GitLab answered {where} with a merge request we cannot read ({exc.error_count()} "
            f"problem(s), first: {first['msg']} at {'.'.join(map(str, first['loc']))}). "
            "Nothing is cleaned; check api_url points at the GitLab REST API (…/api/v4)."
        ) from exc


class _GitLabListing:
    """The GitLab side of :func:`~dagster_branch.sources.tracking.track_pull_requests`."""

    def __init__(self, client: HttpClient, project: str, page_size: int) -> None:
        self.client = client
        self.project = project
        self.page_size = page_size
        self.identity = f"gitlab:{redact_url(client.base_url)}:{project}"
        self.description = f"GitLab project {project}"
        self._root = client.url(f"projects/{quote(project, safe='')}/merge_requests")

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent

    def pages(self, *, since: datetime | None, etag: str | None) -> Iterator[Page]:
        del etag  # this GitLab endpoint answers no conditional requests
        params: dict[str, str | int] = {
            "state": "all",
            "scope": "all",
            "order_by": "updated_at",
            "sort": "desc",
            "per_page": self.page_size,
        }
        if since is not None:  # "on or after": the newest known item comes back, harmlessly
            stamp = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            params["updated_after"] = stamp
        url: str | None = self._root
        query: dict[str, str | int] | None = params
        while url is not None:
            response = self.client.get(url, params=query)
            yield Page(items=self._items(response))
            url, query = self._next(response, params)

    def _next(
        self, response: HttpResponse, params: dict[str, str | int]
    ) -> tuple[str | None, dict[str, str | int] | None]:
        if "next" in response.links:
            return response.links["next"], None
        next_page = response.headers.get("X-Next-Page", "").strip()
        if next_page.isdigit():
            return self._root, {**params, "page": int(next_page)}
        return None, None

    def _items(self, response: HttpResponse) -> list[PullRequestState]:
        payload = response.json()
        if not isinstance(payload, list):
            raise UnexpectedResponseError(
                f"GitLab answered {response.path} with {type(payload).__name__}, not a list of "
                "merge requests. Nothing is cleaned; check the project and api_url."
            )
        return [_parse(item, response.path) for item in payload]

    def fetch(self, number: int) -> PullRequestState | None:
        response = self.client.get(f"{self._root}/{number}", accept=(404,))
        if response.status == 404:
            return None
        return _parse(response.json(), response.path)


class GitLabMergeRequests(TrackedSource):
    """Merge request states of one GitLab project, for the cleanup sensor and job.

    Give the token as an ``EnvVar`` (a project or personal access token with ``read_api``).

    Example::

        import dagster as dg
        from dagster_branch import GitLabMergeRequests

        merge_requests = GitLabMergeRequests(
            project="data/analytics", token=dg.EnvVar("GITLAB_TOKEN")
        )
    """

    project: str = Field(
        description="The project whose merge requests back the branch deployments: its numeric "
        "id (CI_PROJECT_ID) or its path such as 'group/subgroup/project' (URL-encoded for you)."
    )
    token: str = Field(
        repr=False,
        description="GitLab access token with read_api scope, sent as PRIVATE-TOKEN; pass it as "
        "dg.EnvVar('GITLAB_TOKEN'). Never logged.",
    )
    api_url: str = Field(
        default_factory=lambda: os.environ.get("CI_API_V4_URL") or DEFAULT_API_URL,
        description="REST API root: CI_API_V4_URL when set, else https://gitlab.com/api/v4.",
    )

    @field_validator("project")
    @classmethod
    def _check_project(cls, value: str) -> str:
        cleaned = value.strip().strip("/")
        if not cleaned:
            raise ValueError("project is empty: give the project id or its path 'group/project'.")
        return cleaned

    def _client(self) -> HttpClient:
        return HttpClient(
            service="GitLab",
            base_url=self.api_url,
            headers={"Accept": "application/json", "User-Agent": "dagster-branch"},
            secret_headers={"PRIVATE-TOKEN": self.token},
            timeout_seconds=self.timeout_seconds,
        )

    def _listing(self, client: HttpClient) -> _GitLabListing:
        return _GitLabListing(client, self.project, self.page_size)
