"""Service liveness: every service announces itself on ``inferwatch.v1.heartbeat.<service>.<instance>``."""

from __future__ import annotations

from inferwatch.contracts.base import Snapshot


class Heartbeat(Snapshot, frozen=True, kw_only=True, tag="heartbeat.service"):
    """One service instance is alive. ``source`` is the instance id; scrapers shard targets over these.

    Attributes:
        service: service name (``vllm-scraper``).
        version: inferwatch version.
        started_at: process start (Unix seconds).
        ready: whether the service is doing its job (connected, configured).
        reason: why not ready, or what it is doing ("idle: no targets configured").
        targets: how many upstream targets this instance owns now.
    """

    service: str
    version: str
    started_at: float
    ready: bool
    reason: str = ""
    targets: int = 0
