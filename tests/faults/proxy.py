"""Fault-injecting proxies for the test suite: real sockets, loopback only, scriptable.

Two proxies sit between a client under test and a real server:

- :class:`HttpFaultProxy` speaks HTTP/1.1 (keep-alive, ``Content-Length`` and chunked bodies,
  ``Expect: 100-continue``). Each request is matched against a script of :class:`Rule` s, in
  order; the first rule that matches and is due decides what happens to it: forward it (maybe
  after a delay), answer in the proxy's place (``500``, ``502``, ``503 SlowDown`` with S3's XML
  body, anything), drop the connection before the server sees the request, forward it and then
  lose the answer, or forward it and cut the answer short. A rule fires on chosen occurrences of
  its match ("the 2nd and 3rd ``POST ?delete``"), so a scenario is reproducible request by
  request. Every exchange is logged.
- :class:`TcpFaultProxy` relays raw bytes (PostgreSQL's wire protocol, for instance). It can
  delay traffic, drop every open connection, refuse new ones (a server outage), and drop the
  connection that is about to send a chosen byte pattern for the n-th time: "cut the link just
  before the second ``DROP SCHEMA`` reaches the server".

Both are bounded (connection count, body size, log length), bind to 127.0.0.1 only, refuse an
upstream that is not on loopback, and stop every thread they started.

Example::

    with HttpFaultProxy(s3_endpoint) as proxy:
        proxy.add(Rule(method="POST", query="delete", on={2, 3}, action=slow_down()))
        client = boto3.client("s3", endpoint_url=proxy.url)
        ...
        assert proxy.count(method="POST", query="delete", outcome="slow-down") == 2
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

__all__ = [
    "Drop",
    "Exchange",
    "FailKeys",
    "Forward",
    "HttpFaultProxy",
    "LoseResponse",
    "Respond",
    "Rule",
    "TcpFaultProxy",
    "Truncate",
    "bad_gateway",
    "internal_error",
    "slow_down",
]

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_LOG_ENTRIES = 200_000
IO_TIMEOUT_SECONDS = 30.0
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
    }
)


def _require_loopback(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"fault proxies only talk to loopback servers, not {host!r}")


# -- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forward:
    """Pass the request to the server, after ``delay`` seconds (a slow network or host)."""

    delay: float = 0.0
    name: str = "forward"


@dataclass(frozen=True)
class Respond:
    """Answer in the server's place; the server never sees the request."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    name: str = "respond"


@dataclass(frozen=True)
class Drop:
    """Close the client's connection without an answer; the server never sees the request."""

    name: str = "drop"


@dataclass(frozen=True)
class LoseResponse:
    """Forward the request (the server acts on it), then close without relaying the answer."""

    name: str = "lose-response"


@dataclass(frozen=True)
class Truncate:
    """Forward, then send the server's status and headers but only ``keep_bytes`` of the body."""

    keep_bytes: int
    name: str = "truncate"


@dataclass(frozen=True)
class FailKeys:
    """S3 ``DeleteObjects`` only: withhold the first ``count`` keys of the batch from the server
    and report each as a per-key ``<Error>`` (``code``) in an otherwise successful answer.

    That is how S3 reports partial throttling: ``200 OK`` whose body lists the keys it did not
    delete. The other keys are forwarded and deleted for real.
    """

    count: int
    code: str = "SlowDown"
    name: str = "fail-keys"


Action = Forward | Respond | Drop | LoseResponse | Truncate | FailKeys

_OBJECT = re.compile(rb"<Object>.*?</Object>", re.S)
_KEY = re.compile(rb"<Key>(.*?)</Key>", re.S)
_VERSION = re.compile(rb"<VersionId>(.*?)</VersionId>", re.S)


def _withhold_keys(body: bytes, count: int, code: str) -> tuple[bytes, bytes]:
    """The request body without the first ``count`` objects, and the ``<Error>`` elements
    that report them."""
    objects = _OBJECT.findall(body)
    withheld = objects[:count]
    errors = []
    for block in withheld:
        body = body.replace(block, b"", 1)
        key = _KEY.search(block)
        version = _VERSION.search(block)
        errors.append(
            b"<Error><Key>"
            + (key.group(1) if key else b"")
            + b"</Key>"
            + (b"<VersionId>" + version.group(1) + b"</VersionId>" if version else b"")
            + b"<Code>"
            + code.encode()
            + b"</Code><Message>Please reduce your request rate.</Message></Error>"
        )
    return body, b"".join(errors)


def _s3_error(status: int, code: str, message: str, name: str) -> Respond:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>FAULTPROXY</RequestId><HostId>fault-proxy</HostId></Error>"
    ).encode()
    return Respond(status, body, (("Content-Type", "application/xml"),), name=name)


def slow_down() -> Respond:
    """S3's throttling answer: ``503 SlowDown`` with its XML error body."""
    return _s3_error(503, "SlowDown", "Please reduce your request rate.", "slow-down")


def internal_error() -> Respond:
    """S3's ``500 InternalError`` (also a fine generic 500)."""
    return _s3_error(
        500, "InternalError", "We encountered an internal error. Please try again.", "error-500"
    )


def bad_gateway() -> Respond:
    """What a load balancer in front of a Git host answers when the host is down."""
    return Respond(
        502,
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        (("Content-Type", "text/html"),),
        name="bad-gateway",
    )


# -- rules -------------------------------------------------------------------------------------


@dataclass
class Rule:
    """Which requests a fault applies to.

    Args:
        method: HTTP method to match (any when ``None``).
        path: regular expression searched in the path (any when ``None``).
        query: a query parameter name that must be present (``"delete"`` for DeleteObjects).
        when: an extra predicate on the request (method, path, query string, body).
        on: the occurrences of this match (1-based) the action applies to; every one when
            ``None``. Matching requests outside ``on`` are counted, then passed on.
        action: what to do with a due request.
    """

    action: Action
    method: str | None = None
    path: str | None = None
    query: str | None = None
    when: Callable[[str, str, str, bytes], bool] | None = None
    on: Collection[int] | None = None
    seen: int = field(default=0, init=False)

    def matches(self, method: str, path: str, query: str, body: bytes) -> bool:
        if self.method is not None and method.upper() != self.method.upper():
            return False
        if self.path is not None and not re.search(self.path, path):
            return False
        if self.query is not None and self.query not in _query_names(query):
            return False
        return self.when is None or self.when(method, path, query, body)


def _is_checksum(header: str) -> bool:
    name = header.lower()
    return name == "content-md5" or name.startswith(("x-amz-checksum-", "x-amz-sdk-checksum"))


def _query_names(query: str) -> set[str]:
    return {part.split("=", 1)[0] for part in query.split("&") if part}


@dataclass(frozen=True)
class Exchange:
    """One request as the proxy saw it, and what became of it."""

    method: str
    path: str
    query: str
    outcome: str
    status: int | None
    started: float
    finished: float


# -- HTTP proxy --------------------------------------------------------------------------------


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, proxy: HttpFaultProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        if not self.proxy._admit(request):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.proxy._release(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IO_TIMEOUT_SECONDS
    server: _HttpServer
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr line."""

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        with contextlib.suppress(OSError):
            super().finish()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise ValueError("request body too large for the fault proxy")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ValueError("request body too large for the fault proxy")
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        started = time.monotonic()
        proxy = self.server.proxy
        split = urlsplit(self.path)
        path, query = split.path, split.query
        body = self._read_body()
        action = proxy._decide(self.command, path, query, body)
        status: int | None = None
        try:
            if isinstance(action, Drop):
                self._hang_up()
            elif isinstance(action, Respond):
                time.sleep(action.delay)
                status = action.status
                self._send(action.status, list(action.headers), action.body)
            else:
                time.sleep(action.delay if isinstance(action, Forward) else 0.0)
                errors = b""
                if isinstance(action, FailKeys):
                    body, errors = _withhold_keys(body, action.count, action.code)
                if errors and not _OBJECT.search(body):  # every key withheld: S3 answers alone
                    status, headers, answer = (
                        200,
                        [("Content-Type", "application/xml")],
                        (
                            b'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="'
                            b'http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>'
                        ),
                    )
                else:
                    status, headers, answer = self._forward(body, rewritten=bool(errors))
                if errors and status == 200:
                    answer = answer.replace(b"</DeleteResult>", errors + b"</DeleteResult>")
                if isinstance(action, LoseResponse):
                    self._hang_up()
                elif isinstance(action, Truncate):
                    self._send(status, headers, answer, keep=action.keep_bytes)
                    self._hang_up()
                else:
                    self._send(status, headers, answer)
        finally:
            proxy._record(
                Exchange(self.command, path, query, action.name, status, started, time.monotonic())
            )

    def _forward(
        self, body: bytes, *, rewritten: bool = False
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if rewritten:  # the body changed: its checksums must too
            headers = {k: v for k, v in headers.items() if not _is_checksum(k)}
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        for attempt in (1, 2):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=IO_TIMEOUT_SECONDS
                )
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                answer = response.read()
                return response.status, response.getheaders(), answer
            except (OSError, http.client.HTTPException):
                # A kept-alive upstream connection may have been closed by the server: retry once.
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    return 502, [("Content-Type", "text/plain")], b"fault proxy: upstream failed"
        raise AssertionError("unreachable")

    def _send(
        self, status: int, headers: list[tuple[str, str]], body: bytes, *, keep: int | None = None
    ) -> None:
        self.send_response_only(status)
        upstream_length = None
        for name, value in headers:
            if name.lower() == "content-length":
                upstream_length = value
            elif name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", upstream_length or "0")
            body = b""
        elif status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if keep is None else body[:keep])
        self.wfile.flush()

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Bounded:
    """Connection bookkeeping shared by both proxies."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.connections_opened = 0
        self.connections_refused = 0

    def _admit(self, sock: socket.socket) -> bool:
        with self._lock:
            if len(self._open) >= self.max_connections:
                self.connections_refused += 1
                return False
            self._open.add(sock)
            self.connections_opened += 1
            return True

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _close_open(self) -> int:
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(sockets)


class HttpFaultProxy(_Bounded):
    """An HTTP/1.1 reverse proxy on 127.0.0.1 that injects faults by script.

    Example::

        with HttpFaultProxy(httpserver.url_for("/")) as proxy:
            proxy.add(Rule(path="/pulls", action=Forward(delay=2.0)))  # a slow Git host
            requests.get(proxy.url + "/repos/o/r/pulls", timeout=0.5)  # ReadTimeout
    """

    def __init__(self, upstream_url: str, *, max_connections: int = 64) -> None:
        super().__init__(max_connections)
        split = urlsplit(upstream_url)
        if split.scheme != "http" or not split.hostname or not split.port:
            raise ValueError(f"upstream must be http://127.0.0.1:<port>, not {upstream_url!r}")
        _require_loopback(split.hostname)
        self.upstream_host = split.hostname
        self.upstream_port = split.port
        self.rules: list[Rule] = []
        self.log: list[Exchange] = []
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The proxy's base URL, to give to the client instead of the server's."""
        if self._server is None:
            raise RuntimeError("start the proxy first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, rule: Rule) -> Rule:
        """Append a rule to the script (first matching, due rule wins)."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget every rule: from now on everything is forwarded untouched."""
        with self._lock:
            self.rules.clear()

    def count(
        self,
        *,
        method: str | None = None,
        query: str | None = None,
        path: str | None = None,
        outcome: str | None = None,
    ) -> int:
        """How many logged exchanges match (same matching as :class:`Rule`)."""
        with self._lock:
            log = list(self.log)
        return sum(
            1
            for e in log
            if (method is None or e.method == method.upper())
            and (query is None or query in _query_names(e.query))
            and (path is None or re.search(path, e.path))
            and (outcome is None or e.outcome == outcome)
        )

    def _decide(self, method: str, path: str, query: str, body: bytes) -> Action:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path, query, body):
                    continue
                rule.seen += 1
                if rule.on is None or rule.seen in rule.on:
                    return rule.action
        return Forward()

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            if len(self.log) < MAX_LOG_ENTRIES:
                self.log.append(exchange)

    def start(self) -> HttpFaultProxy:
        """Listen on a free loopback port and serve in a background thread."""
        self._server = _HttpServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and hang up on every client."""
        if self._server is not None:
            self._server.shutdown()
            self._close_open()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> HttpFaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- TCP proxy ---------------------------------------------------------------------------------


@dataclass
class _Trigger:
    pattern: bytes
    occurrence: int
    then_refuse: bool
    seen: int = 0
    fired: bool = False
    action: Callable[[], None] | None = None  # run_before: act, then forward (no drop)


class TcpFaultProxy(_Bounded):
    """A byte relay on 127.0.0.1 in front of a TCP server, with switchable faults.

    Example::

        with TcpFaultProxy("127.0.0.1", pg.port) as proxy:
            url = pg.url(db).replace(str(pg.port), str(proxy.port))
            proxy.drop_before(b"DROP SCHEMA", occurrence=2)  # cut the link before the 2nd drop
    """

    def __init__(self, host: str, port: int, *, max_connections: int = 64) -> None:
        super().__init__(max_connections)
        _require_loopback(host)
        self.upstream = (host, port)
        self.delay = 0.0
        self.refusing = False
        self.triggers: list[_Trigger] = []
        self.drops = 0
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        """The loopback port clients should connect to."""
        if self._listener is None:
            raise RuntimeError("start the proxy first")
        return int(self._listener.getsockname()[1])

    def drop_connections(self) -> int:
        """Close every open connection now (both directions); returns how many."""
        dropped = self._close_open() // 2
        with self._lock:
            self.drops += dropped
        return dropped

    def refuse(self, refusing: bool = True) -> None:
        """While refusing, every new connection is accepted and closed at once (an outage)."""
        self.refusing = refusing

    def drop_before(
        self, pattern: bytes, *, occurrence: int = 1, then_refuse: bool = False
    ) -> None:
        """Drop the connection about to send ``pattern`` for the ``occurrence``-th time.

        The bytes holding the pattern never reach the server. With ``then_refuse`` the proxy
        also starts refusing new connections (the server stays unreachable until
        :meth:`refuse` ``(False)``).
        """
        with self._lock:
            self.triggers.append(_Trigger(pattern, occurrence, then_refuse))

    def run_before(
        self, pattern: bytes, action: Callable[[], None], *, occurrence: int = 1
    ) -> None:
        """Run ``action`` right before the bytes holding ``pattern`` are forwarded for the
        ``occurrence``-th time, then forward them: the client waits meanwhile, as if its
        statement were slow to arrive, and ``action`` (another client, say) goes first."""
        with self._lock:
            self.triggers.append(_Trigger(pattern, occurrence, False, action=action))

    @property
    def fired(self) -> int:
        """How many :meth:`drop_before` and :meth:`run_before` triggers have fired."""
        with self._lock:
            return sum(1 for t in self.triggers if t.fired)

    def start(self) -> TcpFaultProxy:
        """Listen on a free loopback port and accept in a background thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection and join every thread."""
        self._stopping.set()
        self._close_open()
        for thread in list(self._threads):
            thread.join(timeout=10)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> TcpFaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.refusing:
                with self._lock:
                    self.connections_refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=IO_TIMEOUT_SECONDS)
            except OSError:
                client.close()
                continue
            if not self._admit(client):
                client.close()
                server.close()
                continue
            with self._lock:
                self._open.add(server)
            self._spawn(self._pump, client, server, True)
            self._spawn(self._pump, server, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        tail = b""
        try:
            source.settimeout(None)
            while not self._stopping.is_set():
                chunk = source.recv(65536)
                if not chunk:
                    break
                if outbound:
                    window = tail + chunk
                    drop, actions = self._fire(window)
                    for action in actions:
                        action()
                    if drop:
                        with self._lock:
                            self.drops += 1
                        break
                    tail = window[-self._longest_pattern() :] if self.triggers else b""
                    if self.delay:
                        time.sleep(self.delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                self._release(sock)
                sock.close()

    def _longest_pattern(self) -> int:
        return max(len(t.pattern) for t in self.triggers) - 1 or 1

    def _fire(self, window: bytes) -> tuple[bool, list[Callable[[], None]]]:
        """Whether to drop the connection now, and the actions to run before forwarding."""
        drop = False
        actions: list[Callable[[], None]] = []
        with self._lock:
            for trigger in self.triggers:
                if trigger.fired:
                    continue
                hits = window.count(trigger.pattern)
                trigger.seen += hits
                if hits and trigger.seen >= trigger.occurrence:
                    trigger.fired = True
                    if trigger.action is not None:
                        actions.append(trigger.action)
                        continue
                    drop = True
                    if trigger.then_refuse:
                        self.refusing = True
        return drop, actions
