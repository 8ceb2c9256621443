"""Sample the S3 server's Python stacks with py-spy while one purge runs (benchmarks only).

``py-spy record --format raw`` writes one line per distinct stack, ``frame;frame;…;leaf N``
(outermost first, N samples). A sample whose leaf is a function counts as that function's
*self* time: the server's CPU spent in its own code, not in what it called. Only the threads
serving requests count (the accept loop only waits); a thread waiting for the GIL is sampled too,
so shares of samples, not seconds, compare two runs.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# py-spy's raw frame: "function (package/module.py:line)"; the line is left out of the name so
# one function's samples add up over its lines.
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^:()]+?)(?:\.py)?(?::\d+)?\)$")
# Only the threads that serve requests count: the main thread's accept loop only waits.
_SERVING = "ThreadingMixIn.process_request_thread"
# Where the leaf function lives, by module prefix, for the summary (first match wins).
AREAS = (
    ("moto.s3.models", "moto's S3 backend (listing, keys, deletes)"),
    ("moto.s3.responses", "moto's S3 request handlers (parsing the request)"),
    ("moto.core.serialize", "moto's response serializer (XML)"),
    ("xmltodict", "XML (xmltodict)"),
    ("xml.", "XML (xml.dom / expat)"),
    ("dateutil.", "dates (dateutil)"),
    ("moto.", "moto, other"),
    ("werkzeug.", "HTTP (werkzeug, flask, sockets)"),
    ("flask.", "HTTP (werkzeug, flask, sockets)"),
    ("http.", "HTTP (werkzeug, flask, sockets)"),
    ("socket", "HTTP (werkzeug, flask, sockets)"),
    ("ssl", "HTTP (werkzeug, flask, sockets)"),
)

SAMPLES_PER_SECOND = 100


@dataclass
class Profile:
    """The request threads' samples during one purge: by leaf function (self time), by area
    of the leaf, and by S3 operation (the moto handler the stack passed through)."""

    samples: int = 0
    self_samples: Counter[str] = field(default_factory=Counter)
    areas: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)

    def share(self, samples: int) -> str:
        return f"{samples * 100 / self.samples:.1f} %" if self.samples else "n/a"


def _frame_name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    module = match.group("path").replace("/", ".").removesuffix(".__init__")
    return f"{module}.{match.group('function')}"


def _area(leaf: str) -> str:
    return next((area for prefix, area in AREAS if leaf.startswith(prefix)), "other Python")


def _operation(frames: list[str]) -> str:
    """The S3 operation a stack served: moto's handler method for it (e.g. ``list_objects_v2``
    for ListObjectsV2, ``_bucket_response_delete_keys`` for DeleteObjects)."""
    handlers = [f for f in frames if f.startswith("moto.s3.responses.S3Response.")]
    return handlers[-1].rpartition(".")[2] if handlers else "(before moto's S3 handler)"


def parse_raw(text: str) -> Profile:
    """Aggregate py-spy's raw output over the request-serving threads."""
    profile = Profile()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or _SERVING not in stack:
            continue
        samples = int(count)
        frames = [_frame_name(frame) for frame in stack.split(";")]
        profile.samples += samples
        profile.self_samples[frames[-1]] += samples
        profile.areas[_area(frames[-1])] += samples
        profile.operations[_operation(frames)] += samples
    return profile


@contextlib.contextmanager
def recording(py_spy: Path, pid: int, raw_path: Path) -> Iterator[None]:
    """Record ``pid``'s stacks into ``raw_path`` for the duration of the ``with`` block.

    py-spy pauses the process for each sample (its default, for consistent stacks), which
    slows the server a little: a profiled run is an extra run, never one of the timed ones.
    """
    process = subprocess.Popen(
        [str(py_spy), "record", "--format", "raw", "--rate", str(SAMPLES_PER_SECOND),
         "--pid", str(pid), "--output", str(raw_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(1.0)  # py-spy attaches and takes its first samples before the purge starts
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        _, errors = process.communicate(timeout=60)
        if not raw_path.exists():
            raise RuntimeError(f"py-spy wrote no profile: {errors.decode(errors='replace')}")
