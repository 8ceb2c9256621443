"""A small HTTP client shared by the GitHub, GitLab and Dagster+ sources.

It does the few things every Git-host call needs and nothing more:

- a timeout on every request; failed connections and reads are retried by urllib3's ``Retry``
  mounted on the ``requests`` session (every request here only reads, so sending it twice is
  safe); an HTTP error status is never retried within the call: the next tick asks again;
- rate limits turned into :class:`~dagster_branch.errors.RateLimitedError` from the headers the
  host sent (``Retry-After``, ``X-RateLimit-*`` on GitHub, ``RateLimit-*`` on GitLab): the wait
  is read, never guessed, and the request is never retried blindly;
- every other failure mapped to a :class:`~dagster_branch.errors.SourceError` subclass with
  ``raise ... from exc``: unreachable or 5xx is :class:`SourceUnavailableError`, an answer we
  cannot read is :class:`UnexpectedResponseError`;
- the token sits in a request header only, is sent to the configured origin only (a ``Link``
  header pointing elsewhere is refused), and is never part of an error, a log line or ``repr``.

Example::

    with HttpClient(service="GitHub", base_url="https://api.github.com",
                    secret_headers={"Authorization": "Bearer ..."}) as client:
        response = client.get("https://api.github.com/repos/octo/hello/pulls")
        pulls = response.json()
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util.retry import Retry

from dagster_branch.errors import (
    RateLimitedError,
    SourceError,
    SourceUnavailableError,
    UnexpectedResponseError,
)

__all__ = ["HttpClient", "HttpResponse", "redact_url"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
MESSAGE_EXCERPT_CHARS = 200


def redact_url(url: str) -> str:
    """``url`` without user info (``https://user:token@host`` → ``https://***@host``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.rsplit("@", 1)[-1].lower()


@dataclass(frozen=True)
class HttpResponse:
    """A response the client accepted (2xx, 304, or a status the caller said it handles)."""

    status: int
    url: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    links: Mapping[str, str] = field(default_factory=dict)
    service: str = "the server"

    @property
    def path(self) -> str:
        """The request path, for messages (no host, no query string)."""
        return urlsplit(self.url).path or "/"

    def json(self) -> Any:
        """The body as JSON; malformed or truncated JSON raises ``UnexpectedResponseError``."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise UnexpectedResponseError(
                f"{self.service} answered {self.path} with a body that is not valid JSON "
                f"({len(self.body)} bytes, {exc.__class__.__name__}: {exc}). Nothing is cleaned "
                "until it answers properly; check the API URL points at the real API."
            ) from exc


class HttpClient:
    """A requests session with timeouts, urllib3 retries and errors mapped to ``SourceError``.

    Args:
        service: name used in messages ("GitHub", "GitLab", "Dagster+").
        base_url: the API root; requests may only go to this origin.
        headers: non-secret headers sent with every request.
        secret_headers: headers holding credentials; their values are redacted from messages.
        timeout_seconds: connect and read timeout of each request.
        retries: how many times a failed connection or read is retried (urllib3 ``Retry``).
        backoff_seconds: urllib3's ``backoff_factor``: no pause before the first retry, then
            twice this, doubled each time.
    """

    def __init__(
        self,
        *,
        service: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        secret_headers: Mapping[str, str] | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        retries: int = 2,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self._timeout = timeout_seconds
        self._retries = retries
        # "Bearer <token>": the bare token must be redacted too.
        values = [value for value in (secret_headers or {}).values() if value]
        self._secrets = sorted({*values, *(v.split()[-1] for v in values)}, key=len, reverse=True)
        self._session = requests.Session()
        # Connection and read failures only. Statuses are not retried here: a 5xx fails the
        # call closed (the next tick asks again), and a rate limit must be waited out as the
        # host says (its reset can be an hour away), which a retry inside a tick cannot do.
        # POST is allowed because Dagster+'s GraphQL request is a query: it reads only.
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=0,
            redirect=0,
            allowed_methods=frozenset({"GET", "POST"}),
            backoff_factor=backoff_seconds,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(headers or {})
        self._session.headers.update(secret_headers or {})
        self.requests_sent = 0
        self._blocked_until: float | None = None

    def __repr__(self) -> str:
        return f"HttpClient(service={self.service!r}, base_url={redact_url(self.base_url)!r})"

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying connections."""
        self._session.close()

    def url(self, path: str) -> str:
        """``base_url`` joined with ``path``."""
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- requests -------------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> HttpResponse:
        """GET ``url``; statuses in ``accept`` (besides 2xx and 304) are returned, not raised."""
        return self.request("GET", url, params=params, headers=headers, accept=accept)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        accept: Collection[int] = (),
    ) -> HttpResponse:
        """Send one request (urllib3 retries failed connections and reads) and check it."""
        if _origin(url) != self._origin:
            raise UnexpectedResponseError(
                f"{self.service} pointed us at {redact_url(url)!r}, outside the configured API "
                f"{redact_url(self.base_url)!r}; the request was not sent, so the token stays "
                "with the configured host."
            )
        if self._blocked_until is not None and time.time() < self._blocked_until:
            known = self._blocked_until != math.inf
            wait = self._blocked_until - time.time() if known else None
            until = f"until {_reset_time(wait)}" if wait is not None else "(no reset time given)"
            raise RateLimitedError(
                f"{self.service} said no requests are left {until}; {urlsplit(url).path} was not "
                "sent. Nothing is cleaned now; the next tick after the reset asks again.",
                retry_after=wait,
            )
        try:
            raw = self._session.request(
                method,
                url,
                params=params,
                headers=headers,
                json=json_body,
                timeout=(self._timeout, self._timeout),
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            cause = exc.args[0] if exc.args else None
            # MaxRetryError: urllib3 used up every retry; otherwise it sent the request once.
            attempts = 1 + self._retries if isinstance(cause, MaxRetryError) else 1
            self.requests_sent += attempts
            reason = getattr(cause, "reason", None)
            # A refused connection is a (connect) TimeoutError subclass in urllib3: not a timeout.
            timed_out = isinstance(exc, requests.Timeout) or (
                isinstance(reason, Urllib3TimeoutError)
                and not isinstance(reason, NewConnectionError)
            )
            kind = "timed out" if timed_out else "could not connect"
            raise SourceUnavailableError(
                f"{self.service} {kind} ({method} {redact_url(self.base_url)}"
                f"{urlsplit(url).path}, {attempts} attempt(s), timeout "
                f"{self._timeout:g}s). Nothing is cleaned until it answers; check the API "
                "URL and the network, or raise timeout_seconds."
            ) from exc
        except requests.RequestException as exc:
            self.requests_sent += 1
            raise SourceUnavailableError(
                f"{self.service} request {method} {urlsplit(url).path} failed: "
                f"{exc.__class__.__name__}. Check the API URL {redact_url(self.base_url)!r}."
            ) from exc
        retried = getattr(raw.raw, "retries", None)
        self.requests_sent += 1 + len(retried.history if retried is not None else ())
        response = HttpResponse(
            status=raw.status_code,
            url=raw.url,
            headers=raw.headers,
            body=raw.content,
            links={rel: link["url"] for rel, link in raw.links.items() if "url" in link},
            service=self.service,
        )
        log.debug("%s %s -> %s", method, response.path, response.status)
        self._check(response, accept)
        self._note_quota(response)
        return response

    # The one thing urllib3's Retry cannot do for us: GitHub and GitLab announce an exhausted
    # quota in headers of a *successful* answer (X-RateLimit-Remaining: 0), and refuse with a
    # 403 (not only 429) whose reset time is in X-RateLimit-Reset. Both are read here, so the
    # call stops and the skip reason names the reset instead of spending requests on refusals.
    def _note_quota(self, response: HttpResponse) -> None:
        """Remember an exhausted quota, so the next request is not sent only to be refused."""
        headers = response.headers
        remaining = headers.get("X-RateLimit-Remaining", headers.get("RateLimit-Remaining"))
        if remaining is not None and remaining.strip() == "0":
            wait = _retry_after_seconds({"X-RateLimit-Reset": _reset_header(headers)})
            # No reset time given: send nothing more in this call rather than guess one.
            self._blocked_until = time.time() + wait if wait is not None else math.inf

    # -- status mapping -------------------------------------------------------------------------

    def _check(self, response: HttpResponse, accept: Collection[int]) -> None:
        status = response.status
        if 200 <= status < 300 or status == 304 or status in accept:
            return
        where = f"{response.path} (HTTP {status})"
        message = self._server_message(response)
        if status in (403, 429) and self._is_rate_limited(response, message):
            retry_after = _retry_after_seconds(response.headers)
            when = (
                f"it asked us to wait {retry_after:.0f}s (until {_reset_time(retry_after)})"
                if retry_after is not None
                else "it gave no reset time"
            )
            raise RateLimitedError(
                f"{self.service} rate limit reached on {where}: {when}. Nothing is cleaned now; "
                "the next tick after the reset asks again. Use a token with a higher limit, or "
                "raise the sensor's minimum interval.",
                retry_after=retry_after,
            )
        if status in (401, 403):
            raise SourceError(
                f"{self.service} refused the credentials on {where}{message}. Check that the "
                "token is valid and may read pull requests of this repository."
            )
        if status >= 500:
            raise SourceUnavailableError(
                f"{self.service} had a server error on {where}{message}. Nothing is cleaned "
                "until it answers; the next tick tries again."
            )
        if 300 <= status < 400:
            raise UnexpectedResponseError(
                f"{self.service} redirected {where} to "
                f"{redact_url(response.headers.get('Location', '?'))!r}; set the API URL to "
                "the final address."
            )
        raise UnexpectedResponseError(
            f"{self.service} rejected {where}{message}. Check the repository or project name "
            "and the API URL."
        )

    @staticmethod
    def _is_rate_limited(response: HttpResponse, message: str) -> bool:
        headers = response.headers
        remaining = headers.get("X-RateLimit-Remaining", headers.get("RateLimit-Remaining"))
        return (
            response.status == 429
            or "Retry-After" in headers
            or remaining == "0"
            or "rate limit" in message.lower()
        )

    def _server_message(self, response: HttpResponse) -> str:
        """``: <the host's message>``, trimmed and with any secret removed, or ``""``."""
        try:
            payload = json.loads(response.body)
        except ValueError:
            return ""
        text = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            return ""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return f": {text.strip()[:MESSAGE_EXCERPT_CHARS]!r}"


def _retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long the host asked us to wait, from ``Retry-After`` or the reset headers."""
    current = time.time() if now is None else now
    retry_after = headers.get("Retry-After")
    if retry_after:
        if retry_after.strip().isdigit():
            return float(retry_after.strip())
        try:
            moment = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return max(0.0, moment.timestamp() - current)
    reset = headers.get("X-RateLimit-Reset", headers.get("RateLimit-Reset"))
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset.strip()) - current)
    return None


def _reset_header(headers: Mapping[str, str]) -> str:
    return headers.get("X-RateLimit-Reset", headers.get("RateLimit-Reset", ""))


def _reset_time(retry_after: float) -> str:
    """A readable UTC time for a wait in seconds."""
    moment = datetime.fromtimestamp(time.time() + retry_after, tz=timezone.utc)
    return moment.strftime("%H:%M:%S UTC")
