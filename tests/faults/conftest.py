"""Fault proxies in front of the real test servers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest
import requests
import sqlalchemy as sa
from moto.server import ThreadedMotoServer

from tests.support.deployments import deploy
from tests.support.servers import free_port, use_test_credentials

from .proxy import HttpFaultProxy, TcpFaultProxy


@dataclass(frozen=True)
class BulkS3:
    """moto's S3 server, in a thread of this process so that tests can seed thousands of
    objects straight into its memory (a PUT each would cost a minute on a busy machine).
    Clients still talk to it over HTTP like to any S3 server."""

    endpoint_url: str

    def seed(self, bucket: str, keys: Iterable[str]) -> None:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key in keys:
            backend.put_object(bucket, key, key.encode())


@pytest.fixture(scope="session")
def _bulk_s3_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bulk_s3(_bulk_s3_server: str, monkeypatch: pytest.MonkeyPatch) -> BulkS3:
    """An empty in-process S3 server (see :class:`BulkS3`), with dummy credentials."""
    requests.post(f"{_bulk_s3_server}/moto-api/reset", timeout=10).raise_for_status()
    use_test_credentials(monkeypatch)
    return BulkS3(_bulk_s3_server)


@pytest.fixture
def bulk_s3_proxy(bulk_s3: BulkS3) -> Iterator[HttpFaultProxy]:
    """An HTTP fault proxy in front of :func:`bulk_s3`."""
    with HttpFaultProxy(bulk_s3.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def s3_proxy(s3_endpoint: str) -> Iterator[HttpFaultProxy]:
    """An HTTP fault proxy in front of the (reset) moto S3 server."""
    with HttpFaultProxy(s3_endpoint) as proxy:
        yield proxy


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[tuple[TcpFaultProxy, str]]:
    """A TCP fault proxy in front of the PostgreSQL server, and the fresh database's URL
    through it."""
    url = sa.make_url(postgres_url)
    assert url.host and url.port
    with TcpFaultProxy(url.host, url.port) as proxy:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)


__all__ = ["BulkS3", "bulk_s3", "bulk_s3_proxy", "deploy", "postgres_proxy", "s3_proxy"]
