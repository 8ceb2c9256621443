"""moto's S3 server with a side door for seeding objects fast (benchmarks only).

Run as ``python _moto_seedable.py S3_PORT SEED_PORT``. It serves exactly what
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
"""

from __future__ import annotations

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
    seed_server = ThreadingHTTPServer(("127.0.0.1", seed_port), _SeedHandler)
    threading.Thread(target=seed_server.serve_forever, daemon=True).start()

    import moto.server

    moto.server.main(["-H", "127.0.0.1", "-p", str(s3_port)])


if __name__ == "__main__":
    main()
