"""Branch states from a plain git remote, for teams without an API token and for the demo.

A git remote knows branches, not pull requests, so this source answers for branch namespaces
(``br_…``) only:

- **open** while a head on the remote maps to the namespace (``git ls-remote --heads``);
  ``updated_at`` is when this source first saw the head at its current commit;
- **merged** once the branch is gone and its last known head commit is reachable from the
  default branch (checked with ``git merge-base --is-ancestor`` in a bare cache that fetches the
  default branch only: a commit reachable from it comes along with the fetch);
- **closed** once the branch is gone otherwise (deleted unmerged, or squash-merged).

A branch that still exists counts as open even when its head is reachable from the default
branch: a branch just created from ``main`` looks exactly like a merged one.
Pull request namespaces (``pr_…``) are reported unknown, developer namespaces as having no pull
request. The closing time is the first time this source saw the branch gone (kept in the cursor).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Collection, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar

from dagster import ConfigurableResource
from pydantic import BaseModel, Field, field_validator

from dagster_branch.errors import SourceUnavailableError, UnexpectedResponseError
from dagster_branch.naming import Namespace, NamespaceKind, short_hash
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus
from dagster_branch.sources.base import SourceAnswer, SourceCursor
from dagster_branch.sources.http import redact_url

__all__ = ["GitRemoteBranches"]

log = logging.getLogger(__name__)

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")


class _Head(BaseModel):
    branch: str
    sha: str
    since: datetime


class _Gone(BaseModel):
    branch: str | None = None
    state: PullRequestStatus
    at: datetime


class _GitCursor(SourceCursor):
    kind: ClassVar[str] = "git source"

    heads: dict[str, _Head] = {}
    gone: dict[str, _Gone] = {}


class GitRemoteBranches(ConfigurableResource):  # type: ignore[type-arg]
    """Branch states read from a git remote with the ``git`` command (no API, no token).

    Credentials, when the remote needs any, come from git's own configuration (SSH keys, a
    credential helper); a URL with a token in it works too and is never shown.

    Example::

        from dagster_branch import GitRemoteBranches

        branches = GitRemoteBranches(remote="https://github.com/octo-org/analytics.git")
    """

    remote: str = Field(
        repr=False,
        description="The repository to ask: a URL (https, ssh, git) or a local path. Only "
        "the host and path appear in messages.",
    )
    default_branch: str | None = Field(
        default=None,
        description="The branch merges land on; when unset, the remote's HEAD is used.",
    )
    cache_dir: str | None = Field(
        default=None,
        description="A folder for the bare repository that checks merges; a folder under the "
        "system temporary directory when unset.",
    )
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="Most seconds one git command may take."
    )

    @field_validator("remote")
    @classmethod
    def _check_remote(cls, value: str) -> str:
        if not value.strip() or value.strip().startswith("-"):
            raise ValueError("remote must be a repository URL or path, not empty or an option.")
        return value.strip()

    # -- git ------------------------------------------------------------------------------------

    @property
    def _shown(self) -> str:
        return redact_url(self.remote)

    def _remote_argument(self) -> str:
        """The remote as git should get it: local paths made absolute (git runs elsewhere)."""
        if "://" in self.remote or _SCP_LIKE.match(self.remote):
            return self.remote
        return str(Path(self.remote).expanduser().resolve())

    def _git(
        self, args: Sequence[str], *, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        try:
            return subprocess.run(
                ["git", "-c", "protocol.ext.allow=never", *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout_seconds,
                check=False,
            )
        except FileNotFoundError as exc:
            raise SourceUnavailableError(
                "The git command is not installed; install git to use GitRemoteBranches."
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise SourceUnavailableError(
                f"git {args[0]} on {self._shown} took longer than {self.timeout_seconds:g}s. "
                "Nothing is cleaned; check the network or raise timeout_seconds."
            ) from exc

    def _failure(
        self, what: str, result: subprocess.CompletedProcess[str]
    ) -> SourceUnavailableError:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        detail = redact_url(lines[0].strip())[:200] if lines else f"exit code {result.returncode}"
        detail = detail.replace(self.remote, self._shown)
        return SourceUnavailableError(
            f"git could not {what} {self._shown}: {detail}. Nothing is cleaned; check the remote "
            "and git's credentials."
        )

    def _list_heads(self) -> tuple[dict[str, str], str | None]:
        """The remote's branches (name to commit) and its default branch."""
        result = self._git(
            ["ls-remote", "--symref", self._remote_argument(), "HEAD", "refs/heads/*"]
        )
        if result.returncode != 0:
            raise self._failure("list the branches of", result)
        heads: dict[str, str] = {}
        default = self.default_branch
        for line in result.stdout.splitlines():
            left, _, ref = line.partition("\t")
            if left.startswith("ref: refs/heads/") and ref == "HEAD":
                default = default or left.removeprefix("ref: refs/heads/")
            elif ref.startswith("refs/heads/") and re.fullmatch(r"[0-9a-f]{40,64}", left):
                heads[ref.removeprefix("refs/heads/")] = left
        if not heads:
            raise UnexpectedResponseError(
                f"The remote {self._shown} has no branches at all. Nothing is cleaned: with a "
                "wrong or empty remote every branch would look deleted."
            )
        return heads, default

    def _cache(self) -> Path:
        folder = (
            Path(self.cache_dir)
            if self.cache_dir
            else (Path(tempfile.gettempdir()) / "dagster-branch-git" / short_hash(self.remote, 16))
        )
        if not (folder / "HEAD").exists():
            folder.mkdir(parents=True, exist_ok=True)
            result = self._git(["init", "--bare", "--quiet", str(folder)])
            if result.returncode != 0:
                raise self._failure("prepare a cache for", result)
        return folder

    def _reachable(self, sha: str, default: str, fetched: set[str]) -> bool:
        """Whether ``sha`` is reachable from the remote's ``default`` branch."""
        cache = self._cache()
        if default not in fetched:
            refspec = f"+refs/heads/{default}:refs/heads/{default}"
            result = self._git(
                ["fetch", "--no-tags", "--quiet", self._remote_argument(), refspec], cwd=cache
            )
            if result.returncode != 0:
                raise self._failure(f"fetch {default!r} from", result)
            fetched.add(default)
        check = self._git(["merge-base", "--is-ancestor", sha, f"refs/heads/{default}"], cwd=cache)
        # 0: an ancestor. 1: not one. Otherwise the commit is not in the cache, and since the
        # default branch was just fetched with all its history, it is not reachable from it.
        return check.returncode == 0

    # -- the interface --------------------------------------------------------------------------

    def states_of(
        self,
        namespaces: Collection[Namespace],
        *,
        cursor: str | None = None,
        deadline: float | None = None,
    ) -> SourceAnswer:
        """The state of each branch namespace, from one ``git ls-remote`` (plus a fetch when a
        branch just disappeared)."""
        del deadline  # bounded by timeout_seconds per git command
        identity = f"git:{short_hash(self.remote, 16)}:{self.default_branch or ''}"
        saved = _GitCursor.load(cursor, identity)
        heads, default = self._list_heads()
        fetched: set[str] = set()
        by_namespace = {Namespace.for_branch(branch): branch for branch in heads}
        now = datetime.now(timezone.utc)
        kept = _GitCursor(identity=identity)
        states: dict[Namespace, PullRequestState] = {}
        unknown: dict[Namespace, str] = {}
        without: set[Namespace] = set()
        for ns in namespaces:
            if ns.kind is NamespaceKind.DEVELOPER:
                without.add(ns)
            elif ns.kind is NamespaceKind.PULL_REQUEST:
                unknown[ns] = (
                    "a git remote knows branches, not pull requests: use GitHubPullRequests, "
                    "GitLabMergeRequests or DagsterPlusBranchDeployments for pr_ namespaces"
                )
            elif ns in by_namespace:
                branch = by_namespace[ns]
                sha = heads[branch]
                previous = saved.heads.get(ns.key)
                since = previous.since if previous and previous.sha == sha else now
                kept.heads[ns.key] = _Head(branch=branch, sha=sha, since=since)
                states[ns] = PullRequestState(
                    state=PullRequestStatus.OPEN, updated_at=since, head_branch=branch
                )
            else:
                gone = saved.gone.get(ns.key)
                if gone is None:
                    last = saved.heads.get(ns.key)
                    merged = False
                    if last is not None and default is not None:
                        merged = self._reachable(last.sha, default, fetched)
                    gone = _Gone(
                        branch=last.branch if last else None,
                        state=PullRequestStatus.MERGED if merged else PullRequestStatus.CLOSED,
                        at=now,
                    )
                kept.gone[ns.key] = gone
                states[ns] = PullRequestState(
                    state=gone.state,
                    updated_at=gone.at,
                    closed_at=gone.at,
                    merged_at=gone.at if gone.state is PullRequestStatus.MERGED else None,
                    head_branch=gone.branch,
                )
        return SourceAnswer(
            states=states,
            unknown=unknown,
            without_pull_request=frozenset(without),
            cursor=kept.model_dump_json(),
            requests=1 + len(fetched),
        )

    def state_of(self, namespace: Namespace) -> PullRequestState | None:
        """The state of one branch namespace, read fresh; ``None`` for other namespaces."""
        return self.states_of([namespace]).states.get(namespace)
