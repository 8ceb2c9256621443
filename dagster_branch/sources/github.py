"""Pull request states from the GitHub REST API (github.com and GitHub Enterprise Server).

One call of :meth:`GitHubPullRequests.states_of` reads
``GET /repos/{owner}/{repo}/pulls?state=all&sort=updated&direction=desc&per_page=100`` from the
top, sends ``If-None-Match`` with the ETag of the last first page (a ``304`` costs no rate limit),
stops at the previous high-water mark and follows ``Link: rel="next"`` only as far as needed.
Pull requests the listing did not reach are read with ``GET /repos/{owner}/{repo}/pulls/{n}``.
In steady state a call sends exactly one request, whatever the number of live namespaces.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from dagster_branch.errors import UnexpectedResponseError
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus
from dagster_branch.sources.http import HttpClient, HttpResponse, redact_url
from dagster_branch.sources.tracking import Page, TrackedSource

__all__ = ["GitHubPullRequests"]

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class _Head(BaseModel):
    ref: str


class _Pull(BaseModel):
    """The fields we read from GitHub's ``pull-request-simple`` (and full pull-request) shape."""

    number: int
    state: Literal["open", "closed"]
    updated_at: datetime
    closed_at: datetime | None = None
    merged_at: datetime | None = None
    head: _Head
    html_url: str | None = None

    def to_state(self) -> PullRequestState:
        if self.merged_at is not None:
            status = PullRequestStatus.MERGED
        elif self.state == "closed":
            status = PullRequestStatus.CLOSED
        else:
            status = PullRequestStatus.OPEN
        return PullRequestState(
            number=self.number,
            state=status,
            updated_at=self.updated_at,
            closed_at=self.closed_at,
            merged_at=self.merged_at,
            head_branch=self.head.ref,
            url=self.html_url,
        )


def _parse_pull(payload: Any, where: str) -> PullRequestState:
    try:
        return _Pull.model_validate(payload).to_state()
    except ValidationError as exc:
        raise UnexpectedResponseError(
            f"GitHub answered {where} with a pull request we cannot read "
            f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']} at "
            f"{'.'.join(map(str, exc.errors()[0]['loc']))}). Nothing is cleaned; check "
            "api_url points at the GitHub REST API."
        ) from exc


class _GitHubListing:
    """The GitHub side of :func:`~dagster_branch.sources.tracking.track_pull_requests`."""

    def __init__(self, client: HttpClient, repository: str, page_size: int) -> None:
        self.client = client
        self.repository = repository
        self.page_size = page_size
        self.identity = f"github:{redact_url(client.base_url)}:{repository.lower()}"
        self.description = f"GitHub repository {repository}"

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent

    def pages(self, *, since: datetime | None, etag: str | None) -> Iterator[Page]:
        # GitHub has no "updated since" filter on this endpoint: the caller stops at `since`.
        del since
        url: str | None = self.client.url(f"repos/{self.repository}/pulls")
        params: dict[str, str | int] | None = {
            "state": "all",
            "sort": "updated",
            "direction": "desc",
            "per_page": self.page_size,
        }
        headers = {"If-None-Match": etag} if etag else None
        while url is not None:
            response = self.client.get(url, params=params, headers=headers)
            if response.status == 304:
                yield Page(not_modified=True, etag=etag)
                return
            yield Page(items=self._items(response), etag=response.headers.get("ETag"))
            url, params, headers = response.links.get("next"), None, None

    def _items(self, response: HttpResponse) -> list[PullRequestState]:
        payload = response.json()
        if not isinstance(payload, list):
            raise UnexpectedResponseError(
                f"GitHub answered {response.path} with {type(payload).__name__}, not a list of "
                "pull requests. Nothing is cleaned; check the repository name and api_url."
            )
        return [_parse_pull(item, response.path) for item in payload]

    def fetch(self, number: int) -> PullRequestState | None:
        response = self.client.get(
            self.client.url(f"repos/{self.repository}/pulls/{number}"), accept=(404,)
        )
        if response.status == 404:
            return None
        return _parse_pull(response.json(), response.path)


class GitHubPullRequests(TrackedSource):
    """Pull request states of one GitHub repository, for the cleanup sensor and job.

    Give the token as an ``EnvVar`` (a fine-grained token with "Pull requests: read" is enough).

    Example::

        import dagster as dg
        from dagster_branch import GitHubPullRequests

        pull_requests = GitHubPullRequests(
            repository="octo-org/analytics", token=dg.EnvVar("GITHUB_TOKEN")
        )
    """

    repository: str = Field(
        description="The repository whose pull requests back the branch deployments, as "
        "'owner/repo' (the value of DAGSTER_CLOUD_GIT_REPO and GITHUB_REPOSITORY)."
    )
    token: str = Field(
        repr=False,
        description="GitHub token that may read the repository's pull requests; pass it as "
        "dg.EnvVar('GITHUB_TOKEN'). Never logged.",
    )
    api_url: str = Field(
        default_factory=lambda: os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL,
        description="REST API root: GITHUB_API_URL when set, else https://api.github.com. For "
        "GitHub Enterprise Server use https://<host>/api/v3.",
    )

    @field_validator("repository")
    @classmethod
    def _check_repository(cls, value: str) -> str:
        if not _REPOSITORY.fullmatch(value.strip()):
            raise ValueError(
                f"repository={value!r} is not 'owner/repo', for example 'octo-org/analytics'."
            )
        return value.strip()

    def _client(self) -> HttpClient:
        return HttpClient(
            service="GitHub",
            base_url=self.api_url,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "dagster-branch",
            },
            secret_headers={"Authorization": f"Bearer {self.token}"},
            timeout_seconds=self.timeout_seconds,
        )

    def _listing(self, client: HttpClient) -> _GitHubListing:
        return _GitHubListing(client, self.repository, self.page_size)
