"""Fault proxies in front of the real test servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from .proxy import HttpFaultProxy, TcpFaultProxy


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
