"""Service liveness: every service announces itself on ``inferwatch.v2.heartbeat.<service>.<instance>``.

Version 2 moved the service into its own subject token (v1: ``inferwatch.v1.heartbeat.service.<instance>``,
with service, host and pid packed into the last token), so a peer subscribes to its own service's
heartbeats and NATS permissions let each service publish only its own. The payload did not change:
v1 heartbeats still decode, and the aggregator and vllm-scraper read them for one more release
(`contracts.subjects.HEARTBEAT_V1_FILTER`), so a rolling upgrade loses no replica.
"""

from __future__ import annotations

from typing import ClassVar

from inferwatch.contracts.base import Snapshot


class Heartbeat(Snapshot, frozen=True, kw_only=True, tag="heartbeat.service"):
    """One service instance is alive. ``source`` is the instance id; scrapers shard targets over these.

    Attributes:
        service: service name (``vllm-scraper``); the subject's kind token.
        version: inferwatch version.
        started_at: process start (Unix seconds).
        ready: whether the service is doing its job (connected, configured).
        reason: why not ready, or what it is doing ("idle: no targets configured").
        targets: how many upstream targets this instance owns now.
    """

    SUBJECT_VERSION: ClassVar[int] = 2
    SUBJECT_KIND_FIELD: ClassVar[str] = "service"

    service: str
    version: str
    started_at: float
    ready: bool
    reason: str = ""
    targets: int = 0
