"""The shared HTTP client: retries, rate-limit headers, status mapping, secrets."""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from dagster_branch.errors import RateLimitedError, SourceUnavailableError, UnexpectedResponseError
from dagster_branch.sources.http import HttpClient, redact_url
from tests.sources.stand_ins import json_response

SECRET = "tok_0123456789abcdef"


class SlammingServer:
    """Accepts TCP connections and closes them at once: a host that keeps dropping us."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def slamming() -> Iterator[SlammingServer]:
    server = SlammingServer()
    yield server
    server.stop()


def client(base_url: str, **kwargs: object) -> HttpClient:
    return HttpClient(
        service="Test",
        base_url=base_url,
        secret_headers={"Authorization": f"Bearer {SECRET}"},
        backoff_seconds=0.01,
        **kwargs,  # type: ignore[arg-type]
    )


def test_dropped_connections_are_retried_for_reads_only(slamming: SlammingServer) -> None:
    with client(slamming.url, retries=2) as http, pytest.raises(SourceUnavailableError):
        http.get(f"{slamming.url}/x")
    assert slamming.accepted == 3, "one try and two retries"
    with client(slamming.url, retries=2) as http, pytest.raises(SourceUnavailableError) as caught:
        http.request("PATCH", f"{slamming.url}/x")
    assert slamming.accepted == 4, "a write (neither GET nor the GraphQL POST) is sent once"
    assert "1 attempt(s)" in str(caught.value)


def test_retry_after_as_an_http_date(httpserver: HTTPServer) -> None:
    later = email.utils.formatdate(time.time() + 90, usegmt=True)
    httpserver.expect_request("/x").respond_with_response(
        json_response({"message": "slow down"}, status=429, headers={"Retry-After": later})
    )
    with client(httpserver.url_for("/")) as http, pytest.raises(RateLimitedError) as caught:
        http.get(httpserver.url_for("/x"))
    assert caught.value.retry_after is not None and 80 <= caught.value.retry_after <= 90


def test_a_rate_limit_without_any_reset_header_says_so(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_response(
        json_response({"message": "API rate limit exceeded"}, status=403)
    )
    with client(httpserver.url_for("/")) as http, pytest.raises(RateLimitedError) as caught:
        http.get(httpserver.url_for("/x"))
    assert caught.value.retry_after is None
    assert "no reset time" in str(caught.value)


def test_redirects_are_not_followed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data(
        "", status=301, headers={"Location": "https://elsewhere.example/x"}
    )
    with client(httpserver.url_for("/")) as http, pytest.raises(UnexpectedResponseError) as c:
        http.get(httpserver.url_for("/x"))
    assert "elsewhere.example" in str(c.value)
    assert len(httpserver.log) == 1


def test_secrets_stay_out_of_repr_and_urls_lose_their_user_info() -> None:
    http = client("https://user:pass@api.example.com")
    assert SECRET not in repr(http) and "pass" not in repr(http)
    assert redact_url("https://user:pass@host/p?q=1") == "https://***@host/p?q=1"
    assert redact_url("https://host/p") == "https://host/p"
