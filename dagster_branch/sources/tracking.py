"""Incremental tracking of pull requests from a host's "recently updated" listing.

GitHub and GitLab both list pull requests sorted by last update, newest first. This module
turns that listing into answers that cost one request per tick in steady state:

- the cursor (:class:`TrackedPulls`, JSON) keeps the high-water mark (the newest ``updated_at``
  seen), the ETag of the listing's first page, and the last known state of every pull request
  that backs a live namespace;
- each call reads the listing from the top and stops at the high-water mark, so only what
  changed since is read (GitHub answers ``304 Not Modified`` to the ETag when nothing did, which
  also costs no rate limit);
- pull requests it has never seen are looked up one by one, a bounded number per call;
- anything it cannot vouch for (a listing cut short, a pull request that does not exist) is
  reported as unknown, never as closed.

The host-specific part is a :class:`Listing`: how to read pages and one pull request.
:class:`TrackedSource` is the resource both hosts' sources share: their settings and calls.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import ClassVar, Protocol

from dagster import ConfigurableResource
from pydantic import Field

from dagster_branch.naming import Namespace, NamespaceKind
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus
from dagster_branch.sources.base import SourceAnswer, SourceCursor
from dagster_branch.sources.http import HttpClient

__all__ = ["Listing", "Page", "TrackedPulls", "TrackedSource", "track_pull_requests"]

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Page:
    """One page of the listing, newest first; ``not_modified`` when the host answered 304."""

    items: list[PullRequestState] = field(default_factory=list)
    etag: str | None = None
    not_modified: bool = False


class Listing(Protocol):
    """What a host must provide for :func:`track_pull_requests`."""

    @property
    def identity(self) -> str:
        """Changes when the configuration points at another repository (the cursor resets)."""
        ...

    @property
    def description(self) -> str:
        """Names the repository in messages, e.g. ``GitHub repository octo/hello``."""
        ...

    @property
    def requests_sent(self) -> int:
        """Requests sent so far."""
        ...

    def pages(self, *, since: datetime | None, etag: str | None) -> Iterator[Page]:
        """Pages of the listing, newest first; each ``next()`` sends one request."""
        ...

    def fetch(self, number: int) -> PullRequestState | None:
        """One pull request by number; ``None`` when the host says it does not exist."""
        ...


class TrackedPulls(SourceCursor):
    """The cursor: what the last call learned, so the next one only reads what changed."""

    kind: ClassVar[str] = "pull request source"

    etag: str | None = None
    high_water: datetime | None = None
    pulls: dict[int, PullRequestState] = {}
    not_found: list[int] = []
    no_pull_request: list[str] = []
    unmatched_branches: list[str] = []


@dataclass
class _Scan:
    """What reading the listing found."""

    seen: dict[int, PullRequestState] = field(default_factory=dict)
    etag: str | None = None
    caught_up: bool = False  # everything updated since the high-water mark was read
    whole_listing: bool = False  # every pull request of the repository was read
    pages: int = 0


def _branch_namespace(state: PullRequestState) -> Namespace | None:
    return Namespace.for_branch(state.head_branch) if state.head_branch else None


def _newer(old: PullRequestState | None, new: PullRequestState) -> bool:
    if old is None or old.updated_at is None or new.updated_at is None:
        return True
    return new.updated_at >= old.updated_at


def track_pull_requests(
    listing: Listing,
    namespaces: Collection[Namespace],
    *,
    cursor: str | None,
    max_pages: int,
    max_lookups: int,
    deadline: float | None = None,
) -> SourceAnswer:
    """Answer ``namespaces`` from the cursor plus what changed since; see the module docstring."""
    saved = TrackedPulls.load(cursor, listing.identity)
    numbers = {int(ns.pull_request_id) for ns in namespaces if ns.pull_request_id}
    branches = {ns for ns in namespaces if ns.kind is NamespaceKind.BRANCH}
    known = dict(saved.pulls)
    not_found = set(saved.not_found)
    no_pull_request = set(saved.no_pull_request)
    unmatched = set(saved.unmatched_branches)
    mapped = {_branch_namespace(state) for state in known.values()}
    need_numbers = numbers - known.keys() - not_found
    need_branches = {ns for ns in branches - mapped if ns.key not in no_pull_request | unmatched}

    # With a high-water mark and no unseen branch, read only what changed since; otherwise
    # read from the top until every namespace is found (branches have no per-name lookup).
    incremental = saved.high_water is not None and not need_branches
    scan = _read_listing(
        listing,
        high_water=saved.high_water,
        etag=saved.etag if incremental else None,
        since=saved.high_water if incremental else None,
        need_numbers=set() if incremental else set(need_numbers),
        need_branches=set(need_branches),
        max_pages=max_pages,
        deadline=deadline,
    )
    for number, state in scan.seen.items():
        if _newer(known.get(number), state):
            known[number] = state
        not_found.discard(number)
    refreshed = set(scan.seen)
    high_water, etag = saved.high_water, saved.etag
    if scan.caught_up:
        stamps = [s.updated_at for s in scan.seen.values() if s.updated_at is not None]
        high_water = max([*stamps, *([high_water] if high_water else [])], default=None)
        etag = scan.etag
    mapped = {_branch_namespace(state) for state in known.values()}
    unmatched -= {ns.key for ns in mapped if ns is not None}
    if scan.whole_listing:
        no_pull_request |= {ns.key for ns in branches - mapped}
        unmatched -= no_pull_request
        not_found |= numbers - known.keys()
    elif scan.caught_up:
        # Searched as deep as allowed without a match: say so instead of searching every call.
        # A pull request opened (or updated) later still shows up at the top of the listing.
        unmatched |= {ns.key for ns in need_branches - mapped}

    # Pull requests the listing did not reach: one request each, a bounded number per call.
    lookups = 0
    for number in sorted(numbers - known.keys() - not_found):
        if lookups >= max_lookups or _past(deadline):
            break
        lookups += 1
        fetched = listing.fetch(number)
        if fetched is None:
            not_found.add(number)
        else:
            known[number] = fetched
            refreshed.add(number)

    answer = _answer(
        listing,
        namespaces,
        known=known,
        not_found=not_found,
        no_pull_request=no_pull_request,
        unmatched=unmatched,
        trusted=scan.caught_up,
        refreshed=refreshed,
        max_lookups=max_lookups,
    )
    keep = TrackedPulls(
        identity=listing.identity,
        etag=etag,
        high_water=high_water,
        pulls={
            n: s
            for n, s in sorted(known.items())
            if n in numbers or _branch_namespace(s) in branches
        },
        not_found=sorted(not_found & numbers),
        no_pull_request=sorted(no_pull_request & {ns.key for ns in branches}),
        unmatched_branches=sorted(unmatched & {ns.key for ns in branches}),
    )
    log.debug(
        "%s: %d page(s), %d lookup(s), caught up: %s",
        listing.description,
        scan.pages,
        lookups,
        scan.caught_up,
    )
    return answer.model_copy(
        update={"cursor": keep.model_dump_json(), "requests": listing.requests_sent}
    )


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _read_listing(
    listing: Listing,
    *,
    high_water: datetime | None,
    etag: str | None,
    since: datetime | None,
    need_numbers: set[int],
    need_branches: set[Namespace],
    max_pages: int,
    deadline: float | None,
) -> _Scan:
    scan = _Scan(caught_up=high_water is None)
    pages = listing.pages(since=since, etag=etag)
    while scan.pages < max_pages and not (scan.pages and _past(deadline)):
        page = next(pages, None)
        if page is None:  # the listing ended: everything it holds was read
            scan.caught_up = True
            scan.whole_listing = since is None
            break
        scan.pages += 1
        if scan.pages == 1:
            scan.etag = page.etag
        if page.not_modified:
            scan.caught_up = True
            scan.etag = etag
            break
        for item in page.items:
            if high_water and item.updated_at and item.updated_at < high_water:
                scan.caught_up = True
            if item.number is None:
                continue
            if _newer(scan.seen.get(item.number), item):
                scan.seen[item.number] = item
            need_numbers.discard(item.number)
            branch = _branch_namespace(item)
            if branch is not None:
                need_branches.discard(branch)
        if scan.caught_up and not need_numbers and not need_branches:
            break
    return scan


def _answer(
    listing: Listing,
    namespaces: Collection[Namespace],
    *,
    known: dict[int, PullRequestState],
    not_found: set[int],
    no_pull_request: set[str],
    unmatched: set[str],
    trusted: bool,
    refreshed: set[int],
    max_lookups: int,
) -> SourceAnswer:
    by_branch: dict[Namespace, list[PullRequestState]] = {}
    for state in known.values():
        branch = _branch_namespace(state)
        if branch is not None:
            by_branch.setdefault(branch, []).append(state)
    states: dict[Namespace, PullRequestState] = {}
    unknown: dict[Namespace, str] = {}
    without: set[Namespace] = set()
    where = listing.description
    for ns in namespaces:
        if ns.kind is NamespaceKind.DEVELOPER:
            without.add(ns)
            continue
        if ns.pull_request_id:
            number = int(ns.pull_request_id)
            found = known.get(number)
            if found is None:
                unknown[ns] = (
                    f"pull request #{number} does not exist in {where} (or the token cannot see it)"
                    if number in not_found
                    else f"pull request #{number} was not looked up yet (at most {max_lookups} "
                    "lookups per call); the next call continues"
                )
                continue
            state = found
        else:
            candidates = by_branch.get(ns, [])
            if not candidates:
                if ns.key in no_pull_request:
                    without.add(ns)
                elif ns.key in unmatched:
                    unknown[ns] = (
                        f"no pull request from this branch among the most recently updated ones "
                        f"in {where}; its pull request, if any, is older than the pages read "
                        "(raise max_pages to search deeper)"
                    )
                else:
                    unknown[ns] = (
                        f"no pull request from this branch was found in {where} yet (the listing "
                        "was not read far enough); the next call continues"
                    )
                continue
            # An open pull request from the branch wins; otherwise the latest one speaks.
            state = max(
                candidates,
                key=lambda s: (s.state is PullRequestStatus.OPEN, s.updated_at or _EPOCH),
            )
        if not trusted and state.is_finished and state.number not in refreshed:
            unknown[ns] = (
                f"pull request #{state.number} was {state.state.value} at the last look, but "
                f"the listing of {where} could not be read up to date this time; not trusting "
                "the old answer"
            )
            continue
        states[ns] = state
    return SourceAnswer(states=states, unknown=unknown, without_pull_request=frozenset(without))


class TrackedSource(ConfigurableResource):  # type: ignore[type-arg]
    """A pull request source that reads the host's "recently updated" listing (GitHub, GitLab).

    Subclasses add the host's own settings (repository, token, API root) and say how to build
    the HTTP client and the :class:`Listing`; the calls and their bounds are shared.
    """

    timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Connect and read timeout of each request."
    )
    page_size: int = Field(
        default=100,
        ge=1,
        le=100,
        description="Pull (merge) requests per listing page (GitHub and GitLab allow 100).",
    )
    max_pages: int = Field(
        default=30,
        ge=1,
        description="Most listing pages read in one call (the first call, with no cursor, may "
        "need several; later calls usually need one).",
    )
    max_lookups: int = Field(
        default=50,
        ge=0,
        description="Most single pull (merge) request lookups in one call, for those the "
        "listing did not reach; the rest are looked up on the next call.",
    )

    @abstractmethod
    def _client(self) -> HttpClient:
        """A client for the host's API, holding the token."""

    @abstractmethod
    def _listing(self, client: HttpClient) -> Listing:
        """The host's listing of this repository's pull requests, read through ``client``."""

    def states_of(
        self,
        namespaces: Collection[Namespace],
        *,
        cursor: str | None = None,
        deadline: float | None = None,
    ) -> SourceAnswer:
        """The state of each namespace's pull request; one request when nothing changed."""
        with self._client() as client:
            return track_pull_requests(
                self._listing(client),
                namespaces,
                cursor=cursor,
                max_pages=self.max_pages,
                max_lookups=self.max_lookups,
                deadline=deadline,
            )

    def state_of(self, namespace: Namespace) -> PullRequestState | None:
        """The state of one namespace's pull request, read fresh; ``None`` when not found."""
        if namespace.pull_request_id:
            with self._client() as client:
                return self._listing(client).fetch(int(namespace.pull_request_id))
        return self.states_of([namespace]).states.get(namespace)
