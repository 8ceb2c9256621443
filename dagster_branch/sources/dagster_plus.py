"""Pull request states as Dagster+ records them on its branch deployments.

One GraphQL request per call::

    POST https://<organization>.dagster.cloud/<deployment>/graphql
    Dagster-Cloud-Api-Token: <token>

    query BranchDeployments($limit: Int!, $pullRequestStatus: PullRequestStatus) {
      branchDeployments(limit: $limit, pullRequestStatus: $pullRequestStatus) {
        nodes { deploymentName branchDeploymentGitMetadata {
          branchName repoName pullRequestStatus pullRequestNumber } }
      }
    }

This API is not versioned. The answer is parsed with strict models and anything unexpected (a
GraphQL ``errors`` list, a ``PythonError`` or ``UnauthorizedError`` result, a missing field, an
unknown status) fails the whole call with :class:`~dagster_branch.errors.UnexpectedResponseError`:
nothing is cleaned on an answer we do not understand.

Dagster+ reports no closing time, so a pull request's ``closed_at`` is the first time this source
saw it closed (kept in the cursor): the grace period counts from then.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from dagster import ConfigurableResource
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dagster_branch.errors import (
    DagsterBranchConfigError,
    DagsterBranchNamingError,
    UnexpectedResponseError,
)
from dagster_branch.naming import Namespace, NamespaceKind
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus
from dagster_branch.sources.base import SourceAnswer, SourceCursor
from dagster_branch.sources.http import HttpClient, redact_url

__all__ = ["DagsterPlusBranchDeployments"]

log = logging.getLogger(__name__)

QUERY = """
query DagsterBranchDeployments($limit: Int!, $pullRequestStatus: PullRequestStatus) {
  branchDeployments(limit: $limit, pullRequestStatus: $pullRequestStatus) {
    __typename
    nodes {
      deploymentName
      branchDeploymentGitMetadata {
        branchName
        repoName
        pullRequestStatus
        pullRequestNumber
      }
    }
  }
}
""".strip()

ERROR_TYPENAMES = ("PythonError", "UnauthorizedError")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _GitMetadata(_Strict):
    branchName: str | None = None  # GraphQL field names, as sent
    repoName: str | None = None
    pullRequestStatus: Literal["OPEN", "CLOSED", "MERGED"] | None = None
    pullRequestNumber: str | None = None


class _Node(_Strict):
    deploymentName: str
    branchDeploymentGitMetadata: _GitMetadata | None


class _Connection(_Strict):
    typename: str | None = Field(default=None, alias="__typename")
    nodes: list[_Node] | None = None
    message: str | None = None  # present on PythonError / UnauthorizedError results


class _Data(_Strict):
    branchDeployments: _Connection


class _Envelope(_Strict):
    data: _Data | None = None
    errors: list[dict[str, Any]] | None = None


class _Cursor(SourceCursor):
    """First time each finished namespace was seen finished (Dagster+ has no closing time)."""

    kind: ClassVar[str] = "Dagster+ source"

    finished_since: dict[str, datetime] = {}


class DagsterPlusBranchDeployments(ConfigurableResource):  # type: ignore[type-arg]
    """Pull request states from the Dagster+ GraphQL API, for teams without a Git host token.

    The API token needs read access to the deployment (an organization or user token).

    Example::

        import dagster as dg
        from dagster_branch import DagsterPlusBranchDeployments

        pull_requests = DagsterPlusBranchDeployments(
            organization="hooli", api_token=dg.EnvVar("DAGSTER_CLOUD_API_TOKEN")
        )
    """

    organization: str = Field(
        description="Dagster+ organization name: the <org> of https://<org>.dagster.cloud."
    )
    api_token: str = Field(
        repr=False,
        description="Dagster+ API token, sent as Dagster-Cloud-Api-Token; pass it as "
        "dg.EnvVar('DAGSTER_CLOUD_API_TOKEN'). Never logged.",
    )
    deployment: str = Field(
        default="prod", description="The full deployment whose GraphQL endpoint is asked."
    )
    url: str | None = Field(
        default=None,
        description="GraphQL endpoint, when not https://<organization>.dagster.cloud/"
        "<deployment>/graphql (an EU organization, a proxy).",
    )
    repository: str | None = Field(
        default=None,
        description="Only branch deployments of this repository, as Dagster+ records it: "
        "'owner/repo' from GitHub, the bare project name ('shop', not 'group/shop') from GitLab. "
        "Needed when several repositories deploy to the organization, since pull request "
        "numbers repeat across repositories.",
    )
    limit: int = Field(
        default=1000,
        ge=1,
        le=10000,
        description="Most branch deployments asked for. When the answer is full, namespaces "
        "not in it are reported unknown rather than guessed.",
    )
    timeout_seconds: float = Field(
        default=15.0, gt=0, le=120, description="Connect and read timeout of the request."
    )

    @field_validator("organization")
    @classmethod
    def _check_organization(cls, value: str) -> str:
        if not value.strip() or "/" in value or "." in value:
            raise ValueError(
                f"organization={value!r} must be the bare organization name, such as 'hooli' "
                "(set url for a non-standard endpoint)."
            )
        return value.strip()

    @property
    def endpoint(self) -> str:
        """The GraphQL URL this source posts to."""
        return self.url or f"https://{self.organization}.dagster.cloud/{self.deployment}/graphql"

    # -- the request ----------------------------------------------------------------------------

    def _nodes(self) -> tuple[list[_Node], int]:
        with HttpClient(
            service="Dagster+",
            base_url=self.endpoint,
            headers={"Content-Type": "application/json", "User-Agent": "dagster-branch"},
            secret_headers={"Dagster-Cloud-Api-Token": self.api_token},
            timeout_seconds=self.timeout_seconds,
        ) as client:
            response = client.request(
                "POST",
                self.endpoint,
                json_body={
                    "query": QUERY,
                    "variables": {"limit": self.limit, "pullRequestStatus": None},
                },
            )
            payload = response.json()
            return self._parse(payload), client.requests_sent

    def _parse(self, payload: Any) -> list[_Node]:
        fail = "Nothing is cleaned until Dagster+ answers as expected."
        try:
            envelope = _Envelope.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise UnexpectedResponseError(
                f"Dagster+ answered branchDeployments in an unexpected shape ({first['msg']} at "
                f"{'.'.join(map(str, first['loc']))}); its GraphQL API may have changed. {fail}"
            ) from exc
        if envelope.errors:
            messages = "; ".join(str(e.get("message", e))[:200] for e in envelope.errors[:3])
            raise UnexpectedResponseError(
                f"Dagster+ answered with GraphQL errors: {messages}. {fail}"
            )
        if envelope.data is None:
            raise UnexpectedResponseError(f"Dagster+ answered without data. {fail}")
        result = envelope.data.branchDeployments
        if result.typename in ERROR_TYPENAMES or result.nodes is None:
            detail = (result.message or "")[:200]
            raise UnexpectedResponseError(
                f"Dagster+ answered branchDeployments with {result.typename or 'no nodes'}"
                f"{': ' + detail if detail else ''}. Check the API token's access to "
                f"{self.deployment!r}. {fail}"
            )
        return result.nodes

    # -- the interface --------------------------------------------------------------------------

    def _check_repository(self, nodes: list[_Node]) -> None:
        """Refuse a GitLab path: Dagster+ records GitLab projects by their bare name."""
        metas = [n.branchDeploymentGitMetadata for n in nodes]
        recorded = {meta.repoName for meta in metas if meta is not None}
        if not self.repository or "/" not in self.repository or self.repository in recorded:
            return
        bare = self.repository.rsplit("/", 1)[-1]
        if bare in recorded:
            raise DagsterBranchConfigError(
                f"repository={self.repository!r} matches no Dagster+ branch deployment, but "
                f"some are recorded under {bare!r}: Dagster+ records a GitLab project by its "
                f"bare name. Set repository={bare!r}."
            )

    def _by_namespace(self, nodes: list[_Node]) -> dict[Namespace, list[tuple[str, str | None]]]:
        """Each namespace's (status, repository) pairs, over every matching deployment."""
        self._check_repository(nodes)
        found: dict[Namespace, list[tuple[str, str | None]]] = {}
        for node in nodes:
            meta = node.branchDeploymentGitMetadata
            if meta is None or (self.repository and meta.repoName != self.repository):
                continue
            status = meta.pullRequestStatus or "OPEN"  # a live deployment without a PR status
            try:
                if meta.pullRequestNumber:
                    found.setdefault(Namespace.for_pull_request(meta.pullRequestNumber), []).append(
                        (status, meta.repoName)
                    )
                if meta.branchName:
                    found.setdefault(Namespace.for_branch(meta.branchName), []).append(
                        (status, meta.repoName)
                    )
            except DagsterBranchNamingError:
                log.warning(
                    "Skipping branch deployment %s: unusable git metadata", node.deploymentName
                )
        return found

    def states_of(
        self,
        namespaces: Collection[Namespace],
        *,
        cursor: str | None = None,
        deadline: float | None = None,
    ) -> SourceAnswer:
        """The state of each namespace's pull request, from one GraphQL request."""
        del deadline  # one request: its timeout is the bound
        identity = f"dagster-plus:{redact_url(self.endpoint)}:{self.repository or '*'}"
        saved = _Cursor.load(cursor, identity)
        nodes, sent = self._nodes()
        found = self._by_namespace(nodes)
        full = len(nodes) >= self.limit
        now = datetime.now(timezone.utc)
        states: dict[Namespace, PullRequestState] = {}
        unknown: dict[Namespace, str] = {}
        without: set[Namespace] = set()
        finished_since: dict[str, datetime] = {}
        for ns in namespaces:
            if ns.kind is NamespaceKind.DEVELOPER:
                without.add(ns)
                continue
            entries = found.get(ns, [])
            repos = {repo for _, repo in entries}
            statuses = {status for status, _ in entries}
            if not entries:
                unknown[ns] = (
                    f"no Dagster+ branch deployment matches it among the {len(nodes)} returned"
                    + (f" (the answer is full: raise limit above {self.limit})" if full else "")
                )
            elif len(repos) > 1:
                names = ", ".join(sorted(map(str, repos)))
                unknown[ns] = (
                    f"branch deployments of several repositories match it ({names}); set "
                    "repository to say which one this Dagster project deploys"
                )
            elif "OPEN" in statuses:
                states[ns] = _state(ns, PullRequestStatus.OPEN, None)
            else:
                status = (
                    PullRequestStatus.MERGED if "MERGED" in statuses else PullRequestStatus.CLOSED
                )
                since = saved.finished_since.get(ns.key, now)
                finished_since[ns.key] = since
                states[ns] = _state(ns, status, since)
        new_cursor = _Cursor(identity=identity, finished_since=finished_since)
        return SourceAnswer(
            states=states,
            unknown=unknown,
            without_pull_request=frozenset(without),
            cursor=new_cursor.model_dump_json(),
            requests=sent,
        )

    def state_of(self, namespace: Namespace) -> PullRequestState | None:
        """The state of one namespace's pull request, asked fresh; ``None`` when unknown."""
        return self.states_of([namespace]).states.get(namespace)


def _state(ns: Namespace, status: PullRequestStatus, since: datetime | None) -> PullRequestState:
    number = int(ns.pull_request_id) if ns.pull_request_id else None
    return PullRequestState(
        number=number,
        state=status,
        closed_at=since if status is PullRequestStatus.CLOSED else None,
        merged_at=since if status is PullRequestStatus.MERGED else None,
    )
