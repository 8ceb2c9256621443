"""moto's S3 server with a side door for seeding objects fast (benchmarks only).

Run as ``python _moto_seedable.py S3_PORT SEED_PORT [--indexed-listing]``. It serves exactly what
``python -m moto.server`` serves on ``S3_PORT`` (same werkzeug app, same access log on stderr),
and, on ``SEED_PORT``, a tiny HTTP endpoint that writes objects straight into moto's in-memory
backend of the same process. Seeding 20,000 objects through the S3 API costs over a minute on
moto (about 4 ms per request); through the side door it takes a second or two, and none of
those writes appear in the access log, so the request counts of the measured tools stay exact.

``POST /seed`` with a JSON body::

    {"bucket": "b", "prefix": "p/", "count": 20000, "versions": 1, "delete_markers_every": 0,
     "body_size": 16}

writes ``count`` keys ``<prefix>000000`` … under ``bucket`` (which must exist), each ``versions``
times (turn bucket versioning on first to keep them), and, when ``delete_markers_every`` is
``n > 0``, a delete marker on every n-th key. It answers ``{"seconds": …}``.

``POST /count`` with ``{"bucket": "b", "prefix": "p/"}`` answers ``{"keys": …, "versions": …,
"delete_markers": …}`` as held in memory (keys: current objects; versions: every stored version),
without an S3 request, so checking what a tool left behind is not counted either.
``POST /forget`` with ``{"bucket": "b"}`` drops a bucket and everything in it from memory.

``--indexed-listing`` (the memory benchmark only) answers ``ListObjectsV2`` without a delimiter
in an unversioned bucket from a sorted index of the bucket's key names, built once and kept until
the next write: moto itself visits and sorts every key of the bucket for each 1,000-key page,
so purging 300,000 keys would cost the server several minutes per tool. The pages, continuation
tokens and XML are those moto builds (the same ``_truncate_result``); only the search is faster.
It also remembers moto's parsing of timestamp strings: moto's serializer parses each listed key's
``LastModified`` string back into a datetime with dateutil (a quarter of the server's time in a
purge, ``bench_s3_purge.py --profile``), and the seeded keys share a handful of distinct strings.
The XML is unchanged: the same datetimes, formatted by moto.
"""

from __future__ import annotations

import bisect
import functools
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_seed_lock = threading.Lock()


def _seed(spec: dict[str, Any]) -> dict[str, Any]:
    backend = _backend()
    bucket = spec["bucket"]
    prefix = spec.get("prefix", "")
    count = int(spec["count"])
    versions = int(spec.get("versions", 1))
    markers_every = int(spec.get("delete_markers_every", 0))
    body = b"x" * int(spec.get("body_size", 16))
    started = time.perf_counter()
    with _seed_lock:
        for i in range(count):
            key = f"{prefix}{i:06d}"
            for _ in range(versions):
                backend.put_object(bucket, key, body)
            if markers_every and i % markers_every == 0:
                backend.delete_object(bucket, key)
    return {"seconds": time.perf_counter() - started}


def _backend() -> Any:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _index_listings(backend: Any) -> None:
    """Serve prefix listings of unversioned buckets from a sorted index (see the docstring)."""
    original_list, original_put = backend.list_objects_v2, backend.put_object
    index: dict[str, list[str]] = {}

    def put_object(bucket_name: str, *args: Any, **kwargs: Any) -> Any:
        index.pop(bucket_name, None)  # a new key: rebuild the index on the next listing
        return original_put(bucket_name, *args, **kwargs)

    def list_objects_v2(
        bucket: Any,
        prefix: str | None,
        delimiter: str | None,
        continuation_token: str | None,
        start_after: str | None,
        max_keys: int,
    ) -> Any:
        if delimiter or bucket.versioning_status is not None:
            return original_list(
                bucket, prefix, delimiter, continuation_token, start_after, max_keys
            )
        names = index.get(bucket.name)
        if names is None:
            names = index[bucket.name] = sorted(dict.keys(bucket.keys))
        prefix = prefix or ""
        after = (
            backend._pagination_tokens.get(continuation_token)
            if continuation_token
            else start_after
        )
        position = bisect.bisect_right(names, after) if after else bisect.bisect_left(names, prefix)
        found: list[Any] = []
        while position < len(names) and len(found) <= max_keys:
            name = names[position]
            position += 1
            if not name.startswith(prefix):
                break  # sorted: past the prefix's range
            if name in bucket.keys:  # deleted keys stay in the index until the next write
                found.append(bucket.keys[name])
        return backend._truncate_result(found, max_keys)

    backend.put_object, backend.list_objects_v2 = put_object, list_objects_v2


def _cache_timestamp_parsing() -> None:
    """Serve repeated timestamp strings from a cache (see the docstring): the results are
    immutable datetimes, so sharing them changes nothing but the time."""
    import moto.core.serialize

    moto.core.serialize.parse_to_aware_datetime = functools.lru_cache(maxsize=4096)(  # type: ignore[assignment]
        moto.core.serialize.parse_to_aware_datetime
    )


def _count(spec: dict[str, Any]) -> dict[str, Any]:
    from moto.s3.models import FakeDeleteMarker

    bucket = _backend().get_bucket(spec["bucket"])
    prefix = spec.get("prefix", "")
    keys = versions = markers = 0
    with _seed_lock:
        for name, stored in bucket.keys.iterlists():
            if not name.startswith(prefix):
                continue
            for version in stored:
                if isinstance(version, FakeDeleteMarker):
                    markers += 1
                else:
                    versions += 1
            if stored and not isinstance(stored[-1], FakeDeleteMarker):
                keys += 1
    return {"keys": keys, "versions": versions, "delete_markers": markers}


def _forget(spec: dict[str, Any]) -> dict[str, Any]:
    from moto.s3.models import s3_backends

    with _seed_lock:
        _backend().buckets.pop(spec["bucket"], None)
        s3_backends.bucket_accounts.pop(spec["bucket"], None)
    return {}


_ACTIONS = {"/seed": _seed, "/count": _count, "/forget": _forget}


class _SeedHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            answer = _ACTIONS[self.path](json.loads(self.rfile.read(length)))
            status = 200
        except Exception as exc:  # report any seeding problem to the caller
            answer, status = {"error": f"{type(exc).__name__}: {exc}"}, 500
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: stderr carries only the S3 server's access log."""


def main() -> None:
    s3_port, seed_port = int(sys.argv[1]), int(sys.argv[2])
    if "--indexed-listing" in sys.argv[3:]:
        _index_listings(_backend())
        _cache_timestamp_parsing()
    seed_server = ThreadingHTTPServer(("127.0.0.1", seed_port), _SeedHandler)
    threading.Thread(target=seed_server.serve_forever, daemon=True).start()

    import moto.server

    moto.server.main(["-H", "127.0.0.1", "-p", str(s3_port)])


if __name__ == "__main__":
    main()
