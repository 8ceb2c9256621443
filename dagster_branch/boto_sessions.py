"""boto3 sessions that share botocore's model loader, so a new session costs milliseconds.

Every resource instance makes its own boto3 session (sessions are not thread-safe, and each
instance may name its own profile). A fresh botocore session loads and parses the S3 service
model and the endpoint rules, about 1.5 MB of JSON, which takes 0.2-0.3 s of CPU; the sensor and
the cleanup job build their resources again for each tick and run. botocore's loader caches
what it has parsed per loader instance, so the sessions made here share one loader: the first
session pays for the models, the next ones about 0.05 s. Credentials, profiles and
configuration stay per session; only the read-only service data is shared.

Example::

    client = new_session(profile_name=None).client("s3")
"""

from __future__ import annotations

import threading

import boto3
import botocore.loaders
import botocore.session

__all__ = ["new_session"]

_LOCK = threading.Lock()
_shared_loader: botocore.loaders.Loader | None = None


def new_session(profile_name: str | None = None) -> boto3.session.Session:
    """A new boto3 session for ``profile_name``, reading service models through the process's
    shared loader (the first session's own, so ``AWS_DATA_PATH`` is still honoured)."""
    global _shared_loader
    core = botocore.session.Session()
    with _LOCK:
        if _shared_loader is None:
            _shared_loader = core.get_component("data_loader")
        else:
            core.register_component("data_loader", _shared_loader)
    return boto3.session.Session(botocore_session=core, profile_name=profile_name)
