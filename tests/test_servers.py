"""One real round trip through each test server fixture."""

import json
from pathlib import Path

import requests
import sqlalchemy as sa
from pytest_httpserver import HTTPServer


def test_postgres_creates_and_drops_a_schema(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateSchema("analytics__pr_1", if_not_exists=True))
            assert sa.inspect(conn).has_schema("analytics__pr_1")
            conn.execute(sa.schema.DropSchema("analytics__pr_1", cascade=True, if_exists=True))
            assert not sa.inspect(conn).has_schema("analytics__pr_1")
    finally:
        engine.dispose()


def test_each_test_gets_a_fresh_database(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert "analytics__pr_1" not in sa.inspect(conn).get_schema_names()
    finally:
        engine.dispose()


def test_s3_server_puts_and_lists_objects_over_http(s3_client, s3_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    assert s3_endpoint.startswith("http://127.0.0.1:")
    s3_client.create_bucket(Bucket="data")
    s3_client.put_object(Bucket="data", Key="_branches/pr_1/a.txt", Body=b"hello")
    listed = s3_client.list_objects_v2(Bucket="data", Prefix="_branches/")
    assert [o["Key"] for o in listed["Contents"]] == ["_branches/pr_1/a.txt"]
    assert (
        s3_client.get_object(Bucket="data", Key="_branches/pr_1/a.txt")["Body"].read() == b"hello"
    )


def test_s3_server_starts_empty_for_each_test(s3_client) -> None:  # type: ignore[no-untyped-def]
    assert s3_client.list_buckets()["Buckets"] == []


def test_http_server_answers_with_githubs_documented_payload(httpserver: HTTPServer) -> None:
    examples = json.loads(
        (Path(__file__).parent / "fixtures" / "github-pulls-example.json").read_text()
    )
    payload = [examples["pull-request-simple"]]
    httpserver.expect_request("/repos/octocat/Hello-World/pulls").respond_with_json(payload)
    answer = requests.get(httpserver.url_for("/repos/octocat/Hello-World/pulls"), timeout=5)
    assert answer.status_code == 200
    assert answer.json()[0]["number"] == payload[0]["number"]


def test_duckdb_and_sqlite_files_live_in_the_test_folder(duckdb_url: str, sqlite_url: str) -> None:
    for url in (duckdb_url, sqlite_url):
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
                conn.execute(sa.text("INSERT INTO t VALUES (1)"))
                assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 1
        finally:
            engine.dispose()
