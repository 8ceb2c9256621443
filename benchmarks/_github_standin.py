"""A local stand-in for the GitHub REST API's pull-request endpoints (benchmarks only).

Run as ``python _github_standin.py PORT PULLS LIVE [OWNER/REPO]``. It holds ``PULLS`` pull requests
of one repository (``acme/warehouse`` unless named; ``LIVE`` of them open) and answers, in GitHub's
documented shapes:

- ``GET /repos/{owner}/{repo}/pulls?state=&sort=&direction=&per_page=&page=``: a JSON array of
  pull objects, a ``Link`` header (``next``, ``last``, ``first``, ``prev``), a weak ``ETag``, and
  ``304 Not Modified`` with no body when ``If-None-Match`` matches (GitHub does not count those
  against the rate limit, and neither do we);
- ``GET /repos/{owner}/{repo}/pulls/{number}``: one pull object, or ``404`` with GitHub's error
  body;
- ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` / ``-Used`` on every answer.

It runs in its own process so that serving costs are not charged to the client being measured.
Control paths (never counted): ``GET /_bench/stats`` answers the request counts;
``POST /_bench/close`` with ``{"numbers": [...], "minutes_ago": 15}`` closes (merges) those pull
requests; ``POST /_bench/reset-stats`` zeroes the counts.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

OWNER, REPO = "acme", "warehouse"
RATE_LIMIT = 5000
PULL_DOCS = "https://docs.github.com/rest/pulls/pulls#get-a-pull-request"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _repo_object(base_url: str) -> dict[str, Any]:
    # A realistic slice of GitHub's repository object, which every pull repeats in head and base.
    api = f"{base_url}/repos/{OWNER}/{REPO}"
    return {
        "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": REPO,
        "full_name": f"{OWNER}/{REPO}", "private": True,
        "owner": {"login": OWNER, "id": 1, "type": "Organization", "site_admin": False,
                  "url": f"{base_url}/users/{OWNER}", "html_url": f"https://github.com/{OWNER}"},
        "html_url": f"https://github.com/{OWNER}/{REPO}", "description": "Data platform",
        "fork": False, "url": api, "pulls_url": f"{api}/pulls{{/number}}",
        "git_url": f"git://github.com/{OWNER}/{REPO}.git",
        "clone_url": f"https://github.com/{OWNER}/{REPO}.git", "default_branch": "main",
        "created_at": "2021-01-26T19:01:12Z", "updated_at": "2026-01-26T19:14:43Z",
        "pushed_at": "2026-01-26T19:06:43Z", "size": 108, "stargazers_count": 80,
        "watchers_count": 80, "language": "Python", "forks_count": 9, "open_issues_count": 0,
        "visibility": "private", "topics": ["dagster", "data"], "archived": False,
    }  # fmt: skip


class PullStore:
    """The repository's pull requests, newest number last, guarded by one lock."""

    def __init__(self, total: int, live: int, base_url: str) -> None:
        self.lock = threading.Lock()
        self.base_url = base_url
        self.repo = _repo_object(base_url)
        now = datetime.now(timezone.utc)
        start = now - timedelta(days=400)
        # The open pull requests are every second one among the most recent 2 * live.
        open_numbers = set(range(total - 2 * live + 2, total + 1, 2))
        self.pulls: dict[int, dict[str, Any]] = {}
        step = (now - timedelta(hours=2) - start) / total
        for number in range(1, total + 1):
            created = start + step * number
            updated = created + timedelta(minutes=30 + number % 50)
            is_open = number in open_numbers
            merged = (number % 5) != 0
            self.pulls[number] = {
                "number": number,
                "state": "open" if is_open else "closed",
                "created_at": created,
                "updated_at": updated,
                "closed_at": None if is_open else updated,
                "merged_at": None if is_open or not merged else updated,
                "head_ref": f"feature/change-{number}",
            }
        self.open_numbers = sorted(open_numbers)
        self.counts: dict[str, int] = {}
        self.remaining = RATE_LIMIT

    def close(self, numbers: list[int], minutes_ago: float) -> None:
        moment = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
        with self.lock:
            for number in numbers:
                pull = self.pulls[number]
                pull.update(state="closed", updated_at=moment, closed_at=moment, merged_at=moment)

    def render(self, pull: dict[str, Any]) -> dict[str, Any]:
        number = pull["number"]
        api = f"{self.base_url}/repos/{OWNER}/{REPO}"

        def when(key: str) -> str | None:
            return _iso(pull[key]) if pull[key] is not None else None

        sha = hashlib.sha1(str(number).encode()).hexdigest()
        return {
            "url": f"{api}/pulls/{number}", "id": 100000 + number,
            "node_id": f"PR_kwDO{number:08d}", "html_url": f"https://github.com/{OWNER}/{REPO}/pull/{number}",
            "diff_url": f"https://github.com/{OWNER}/{REPO}/pull/{number}.diff",
            "issue_url": f"{api}/issues/{number}", "number": number, "state": pull["state"],
            "locked": False, "title": f"Change {number}: rework the orders model",
            "user": {"login": f"dev{number % 40}", "id": 5000 + number % 40, "type": "User",
                     "site_admin": False},
            "body": "Reworks the orders model.\n\nSee the branch deployment for the preview.",
            "labels": [], "milestone": None, "active_lock_reason": None,
            "created_at": when("created_at"), "updated_at": when("updated_at"),
            "closed_at": when("closed_at"), "merged_at": when("merged_at"),
            "merge_commit_sha": sha if pull["merged_at"] else None,
            "assignee": None, "assignees": [], "requested_reviewers": [], "draft": False,
            "head": {"label": f"{OWNER}:{pull['head_ref']}", "ref": pull["head_ref"], "sha": sha,
                     "user": {"login": OWNER, "id": 1}, "repo": self.repo},
            "base": {"label": f"{OWNER}:main", "ref": "main", "sha": "0" * 40,
                     "user": {"login": OWNER, "id": 1}, "repo": self.repo},
            "author_association": "MEMBER", "auto_merge": None,
        }  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    store: PullStore  # set on the class by main()
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every keep-alive answer (GitHub has no such stall).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: counts are kept in memory, not in a log."""

    def _count(self, kind: str) -> None:
        with self.store.lock:
            self.store.counts[kind] = self.store.counts.get(kind, 0) + 1
            self.store.counts["total"] = self.store.counts.get("total", 0) + 1

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _rate_headers(self, charged: bool) -> dict[str, str]:
        with self.store.lock:
            if charged:
                self.store.remaining = max(0, self.store.remaining - 1)
            remaining = self.store.remaining
        reset = int((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp())
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Used": str(RATE_LIMIT - remaining),
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Resource": "core",
        }

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        spec = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/_bench/close":
            self.store.close([int(n) for n in spec["numbers"]], float(spec.get("minutes_ago", 15)))
            self._send(200, {"closed": len(spec["numbers"])})
        elif self.path == "/_bench/reset-stats":
            with self.store.lock:
                self.store.counts = {}
            self._send(200, {})
        else:
            self._send(404, {"message": "Not Found"})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/_bench/stats":
            with self.store.lock:
                counts = dict(self.store.counts)
            self._send(200, {"counts": counts, "open": self.store.open_numbers})
            return
        segments = [s for s in parts.path.split("/") if s]
        if segments[:4] != ["repos", OWNER, REPO, "pulls"]:
            self._count("not-found")
            self._send(404, {"message": "Not Found",
                             "documentation_url": "https://docs.github.com/rest"})  # fmt: skip
            return
        if len(segments) == 5 and segments[4].isdigit():
            self._one(int(segments[4]))
        elif len(segments) == 4:
            self._list(parse_qs(parts.query))
        else:
            self._count("not-found")
            self._send(404, {"message": "Not Found"})

    def _etag_answer(self, kind: str, body: Any, headers: dict[str, str]) -> None:
        payload = json.dumps(body, sort_keys=True).encode()
        etag = 'W/"' + hashlib.sha256(payload).hexdigest()[:40] + '"'
        if self.headers.get("If-None-Match") == etag:
            self._count(kind + " 304")
            self._send(304, None, {"ETag": etag, **headers, **self._rate_headers(False)})
            return
        self._count(kind)
        self._send(200, body, {"ETag": etag, **headers, **self._rate_headers(True)})

    def _one(self, number: int) -> None:
        with self.store.lock:
            pull = self.store.pulls.get(number)
            body = self.store.render(pull) if pull else None
        if body is None:
            self._count("pull 404")
            self._send(404, {"message": "Not Found", "documentation_url": PULL_DOCS})
            return
        self._etag_answer("GET /pulls/{n}", body, {})

    def _list(self, query: dict[str, list[str]]) -> None:
        state = query.get("state", ["open"])[0]
        sort = query.get("sort", ["created"])[0]
        direction = query.get("direction", ["desc"])[0]
        per_page = max(1, min(100, int(query.get("per_page", ["30"])[0])))
        page = max(1, int(query.get("page", ["1"])[0]))
        key = "updated_at" if sort in {"updated", "long-running", "popularity"} else "created_at"
        with self.store.lock:
            chosen = [p for p in self.store.pulls.values() if state == "all" or p["state"] == state]
            chosen.sort(key=lambda p: (p[key], p["number"]), reverse=direction == "desc")
            last_page = max(1, -(-len(chosen) // per_page))
            body = [self.store.render(p) for p in chosen[(page - 1) * per_page : page * per_page]]
        base = f"{self.store.base_url}/repos/{OWNER}/{REPO}/pulls"
        common = {"state": state, "sort": sort, "direction": direction, "per_page": per_page}

        def link(number: int, rel: str) -> str:
            return f'<{base}?{urlencode({**common, "page": number})}>; rel="{rel}"'

        links = []
        if page < last_page:
            links += [link(page + 1, "next"), link(last_page, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"Link": ", ".join(links)} if links else {}
        self._etag_answer(f"GET /pulls?state={state}", body, headers)


def main() -> None:
    global OWNER, REPO
    port, total, live = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if len(sys.argv) > 4:
        OWNER, REPO = sys.argv[4].split("/", 1)
    Handler.store = PullStore(total, live, f"http://127.0.0.1:{port}")
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
