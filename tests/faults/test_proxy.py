"""The fault proxies themselves: faithful when idle, and each fault does what it says."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
import requests
import sqlalchemy as sa
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from pytest_httpserver import HTTPServer

from .proxy import (
    Drop,
    FailKeys,
    Forward,
    HttpFaultProxy,
    LoseResponse,
    Rule,
    TcpFaultProxy,
    Truncate,
    bad_gateway,
    slow_down,
)

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2)


def _client(url: str, config: Config = NO_RETRIES):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", config=config)


def test_idle_proxy_relays_s3_traffic_faithfully(s3_proxy: HttpFaultProxy) -> None:
    s3 = _client(s3_proxy.url)
    s3.create_bucket(Bucket="data")
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    s3.put_object(Bucket="data", Key="a/b c.bin", Body=payload)
    assert s3.get_object(Bucket="data", Key="a/b c.bin")["Body"].read() == payload
    assert s3.head_object(Bucket="data", Key="a/b c.bin")["ContentLength"] == len(payload)
    s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "a/b c.bin"}]})
    assert s3.list_objects_v2(Bucket="data").get("KeyCount") == 0
    assert s3_proxy.count(method="POST", query="delete") == 1
    assert {e.outcome for e in s3_proxy.log} == {"forward"}


def test_throttles_exactly_the_chosen_delete_batches(s3_proxy: HttpFaultProxy) -> None:
    s3 = _client(s3_proxy.url)
    s3.create_bucket(Bucket="data")
    s3_proxy.add(Rule(method="POST", query="delete", on={2, 3}, action=slow_down()))
    outcomes = []
    for n in range(4):
        s3.put_object(Bucket="data", Key=f"k{n}", Body=b"x")
        try:
            s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": f"k{n}"}]})
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert outcomes == ["ok", "SlowDown", "SlowDown", "ok"]
    remaining = {o["Key"] for o in s3.list_objects_v2(Bucket="data").get("Contents", [])}
    assert remaining == {"k1", "k2"}  # throttled batches never reached the server


def test_fail_keys_reports_withheld_keys_as_per_key_errors(s3_proxy: HttpFaultProxy) -> None:
    s3 = _client(s3_proxy.url)
    s3.create_bucket(Bucket="data")
    keys = [f"k{n}" for n in range(5)]
    for key in keys:
        s3.put_object(Bucket="data", Key=key, Body=b"x")
    s3_proxy.add(Rule(method="POST", query="delete", on={1}, action=FailKeys(2)))
    answer = s3.delete_objects(
        Bucket="data", Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
    )
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [
        ("k0", "SlowDown"),
        ("k1", "SlowDown"),
    ]
    remaining = {o["Key"] for o in s3.list_objects_v2(Bucket="data").get("Contents", [])}
    assert remaining == {"k0", "k1"}


def test_lost_response_means_the_server_acted(s3_proxy: HttpFaultProxy) -> None:
    s3 = _client(s3_proxy.url)
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="gone", Body=b"x")
    s3_proxy.add(Rule(method="POST", query="delete", on={1}, action=LoseResponse()))
    with pytest.raises(ConnectionClosedError):
        s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "gone"}]})
    assert s3.list_objects_v2(Bucket="data").get("KeyCount") == 0


def test_drop_refuses_before_the_server_sees_the_request(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/pulls").respond_with_json([])
    with HttpFaultProxy(httpserver.url_for("/")) as proxy:
        proxy.add(Rule(path="^/pulls$", on={1}, action=Drop()))
        with pytest.raises(requests.ConnectionError):
            requests.get(proxy.url + "/pulls", timeout=5)
        assert len(httpserver.log) == 0
        assert requests.get(proxy.url + "/pulls", timeout=5).json() == []
        assert len(httpserver.log) == 1


def test_delay_makes_a_client_time_out(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/slow").respond_with_json({"ok": True})
    with HttpFaultProxy(httpserver.url_for("/")) as proxy:
        proxy.add(Rule(path="/slow", action=Forward(delay=1.0)))
        started = time.monotonic()
        with pytest.raises(requests.Timeout):
            requests.get(proxy.url + "/slow", timeout=0.2)
        assert time.monotonic() - started < 0.9


def test_truncate_cuts_the_body_short(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/pulls").respond_with_json([{"number": n} for n in range(50)])
    with HttpFaultProxy(httpserver.url_for("/")) as proxy:
        proxy.add(Rule(path="/pulls", action=Truncate(keep_bytes=40)))
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(proxy.url + "/pulls", timeout=5).json()


def test_gateway_error_is_answered_in_place_of_the_host(httpserver: HTTPServer) -> None:
    with HttpFaultProxy(httpserver.url_for("/")) as proxy:
        proxy.add(Rule(action=bad_gateway()))
        answer = requests.get(proxy.url + "/repos/o/r/pulls", timeout=5)
        assert answer.status_code == 502
        assert len(httpserver.log) == 0


def test_refuses_non_loopback_upstreams() -> None:
    with pytest.raises(ValueError, match="loopback"):
        HttpFaultProxy("http://10.1.2.3:80")
    with pytest.raises(ValueError, match="loopback"):
        TcpFaultProxy("example.com", 5432)


def test_connection_count_is_bounded(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("ok")
    with HttpFaultProxy(httpserver.url_for("/"), max_connections=1) as proxy:
        with requests.Session() as held:
            assert held.get(proxy.url + "/x", timeout=5).text == "ok"  # keeps its connection
            with pytest.raises(requests.ConnectionError):
                requests.get(proxy.url + "/x", timeout=5, headers={"Connection": "close"})
        assert proxy.connections_refused == 1


def test_tcp_proxy_drops_before_the_chosen_statement(
    postgres_proxy: tuple[TcpFaultProxy, str],
) -> None:
    proxy, url = postgres_proxy
    engine = sa.create_engine(url, pool_pre_ping=False)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE SCHEMA a"))
            conn.execute(sa.text("CREATE SCHEMA b"))
        proxy.drop_before(b"DROP SCHEMA", occurrence=2)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA a"))
        with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA b"))
        assert proxy.fired == 1
        with engine.connect() as conn:  # a new connection gets through again
            schemas = set(sa.inspect(conn).get_schema_names())
        assert "a" not in schemas and "b" in schemas
    finally:
        engine.dispose()


def test_tcp_proxy_outage_and_recovery(postgres_proxy: tuple[TcpFaultProxy, str]) -> None:
    proxy, url = postgres_proxy
    engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        proxy.refuse()
        assert proxy.drop_connections() == 1  # the pooled connection
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        proxy.refuse(False)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_tcp_proxy_survives_concurrent_clients(postgres_proxy: tuple[TcpFaultProxy, str]) -> None:
    proxy, url = postgres_proxy
    engine = sa.create_engine(url, pool_size=8)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(20):
                with engine.connect() as conn:
                    assert conn.execute(sa.text("SELECT :n"), {"n": n}).scalar() == n
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        engine.dispose()
    assert errors == []
    assert proxy.connections_opened <= 8


def test_unreachable_endpoint_is_a_connection_error_not_a_hang(s3_endpoint: str) -> None:
    proxy = HttpFaultProxy(s3_endpoint).start()
    url = proxy.url
    proxy.stop()
    with pytest.raises(EndpointConnectionError):
        _client(url).list_buckets()
